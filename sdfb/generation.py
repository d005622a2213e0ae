"""The generation interface used by rollouts and benchmark scoring, and its Hugging Face `generate` backend.

Completions keep the exact sampled token ids and their log-probs under the policy's raw (unprocessed) logits.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from sdfb.config import RunConfig, SamplingConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Completion:
    token_ids: list[int]  # sampled ids, including the end-of-sequence token when the model stopped
    logprobs: list[float]  # log p(token) under the raw logits, one per token id
    text: str  # decoded without special tokens
    finish_reason: str  # stop | length


@dataclass(frozen=True)
class Generation:
    prompt_ids: list[int]
    completions: list[Completion]  # `sampling.n` per prompt


class Generator(Protocol):
    """Anything that samples `n` completions per chat-rendered prompt with a given (optional) LoRA adapter."""

    tokenizer: object

    def generate(
        self, prompts: list[str], sampling: SamplingConfig, want_logprobs: bool = True
    ) -> list[Generation]: ...


class HFGenerator:
    """Batched, left-padded `transformers` generate on one loaded model (base plus an optional adapter)."""

    def __init__(
        self, model_name: str, dtype: str = "auto", adapter: Path | None = None, batch_size: int = 16
    ):
        from sdfb.models import load_model, load_tokenizer

        self.tokenizer = load_tokenizer(model_name)
        self.model = load_model(model_name, dtype=dtype, adapter=adapter).eval()
        self.batch_size = batch_size

    def generate(
        self, prompts: list[str], sampling: SamplingConfig, want_logprobs: bool = True
    ) -> list[Generation]:
        import torch

        tok = self.tokenizer
        encoded = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
        # Longest-first batches waste less padding; results go back in the caller's order.
        order = sorted(range(len(prompts)), key=lambda i: -len(encoded[i]))
        results: dict[int, Generation] = {}
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            torch.manual_seed(sampling.seed + start)
            for i, completions in zip(
                idx, self._batch([encoded[i] for i in idx], sampling, want_logprobs), strict=True
            ):
                results[i] = Generation(encoded[i], completions)
        return [results[i] for i in range(len(prompts))]

    def _batch(
        self, batch: list[list[int]], sampling: SamplingConfig, want_logprobs: bool
    ) -> list[list[Completion]]:
        import torch

        tok, model = self.tokenizer, self.model
        width = max(len(ids) for ids in batch)
        pad = tok.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for ids in batch])
        attention = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in batch])
        greedy = sampling.temperature == 0
        eos_ids = _eos_ids(model, tok)
        with torch.inference_mode():
            out = model.generate(
                input_ids=input_ids,
                attention_mask=attention,
                do_sample=not greedy,
                temperature=None if greedy else sampling.temperature,
                top_p=None if greedy else sampling.top_p,
                top_k=None if greedy else (sampling.top_k or None),
                num_return_sequences=sampling.n,
                max_new_tokens=sampling.max_new_tokens,
                pad_token_id=pad,
                eos_token_id=eos_ids,
                output_logits=want_logprobs,
                return_dict_in_generate=True,
            )
        new_tokens = out.sequences[:, width:]
        if want_logprobs:
            logits = torch.stack(out.logits, dim=1).float()  # (batch*n, steps, vocab), raw
            token_logprobs = (
                torch.log_softmax(logits, dim=-1).gather(-1, new_tokens.unsqueeze(-1)).squeeze(-1)
            )
        grouped: list[list[Completion]] = []
        for row in range(new_tokens.shape[0]):
            ids = new_tokens[row].tolist()
            stop = next((j for j, t in enumerate(ids) if t in eos_ids), None)
            kept = ids if stop is None else ids[: stop + 1]
            lps = token_logprobs[row, : len(kept)].tolist() if want_logprobs else []
            text = tok.decode(kept, skip_special_tokens=True)
            completion = Completion(kept, lps, text, "length" if stop is None else "stop")
            if row % sampling.n == 0:
                grouped.append([])
            grouped[-1].append(completion)
        return grouped


def _eos_ids(model, tokenizer) -> list[int]:
    configured = model.generation_config.eos_token_id
    ids = set(configured if isinstance(configured, list) else [configured] if configured is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return sorted(ids)


_ENGINES: dict[tuple, Generator] = {}


def resolve_engine(engine: str) -> str:
    """`auto` means vLLM when it is importable, else HF."""
    if engine != "auto":
        return engine
    from sdfb.vllm_engine import vllm_available

    return "vllm" if vllm_available() else "hf"


def make_generator(cfg: RunConfig, adapter: Path | str | None, batch_size: int) -> Generator:
    """The configured backend with `adapter` applied. The vLLM engine is created once per process (a flow run)
    and reused by every later stage and round; HF models are loaded per call (about 2 s for the default model)."""
    engine = resolve_engine(cfg.rollout.engine)
    if engine == "hf":
        return HFGenerator(
            cfg.model.name_or_path, dtype=cfg.model.dtype, adapter=adapter, batch_size=batch_size
        )
    generator = engine_for(
        cfg.model.name_or_path,
        cfg.model.dtype,
        cfg.rollout.vllm,
        max_lora_rank=cfg.distill.lora.r,
        seed=cfg.seed,
    )
    generator.set_adapter(adapter)
    return generator


def engine_for(
    model_name: str, dtype: str, vllm_cfg, max_lora_rank: int, seed: int, section: str = "rollout.vllm"
):
    """The process's vLLM engine for these settings, started on first use (the solver's and an LLM critic's)."""
    from sdfb.vllm_engine import VLLMGenerator

    key = (model_name, dtype, vllm_cfg, max_lora_rank, seed)
    if key not in _ENGINES:
        log.info("starting the vLLM engine for %s", model_name)
        _ENGINES[key] = VLLMGenerator(
            model_name, dtype, vllm_cfg, max_lora_rank=max_lora_rank, seed=seed, section=section
        )
    return _ENGINES[key]


def live_engines() -> int:
    return len(_ENGINES)


def sleep_engines() -> None:
    """Release accelerator memory held by engines before training (no-op on CPU)."""
    for generator in _ENGINES.values():
        generator.sleep()


def release_engines() -> None:
    """Shut every engine down (end of a flow run)."""
    import gc

    while _ENGINES:
        _, generator = _ENGINES.popitem()
        generator.close()
    gc.collect()
