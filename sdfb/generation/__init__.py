"""Generation: the `Generator` interface (`base`), its Hugging Face (`hf`) and vLLM
(`vllm_backend`) backends, and the one engine registry (`engines`). `make_generator` picks the
configured backend; nothing heavy is imported here.
"""

from __future__ import annotations

from pathlib import Path

from sdfb.config import ModelConfig, VLLMConfig
from sdfb.generation.base import Completion, Generation, Generator, Progress
from sdfb.generation.devices import vllm_available
from sdfb.generation.engines import live_engines, policy_engine, release_engines, sleep_engines, vllm_engine
from sdfb.generation.hf import HFGenerator
from sdfb.generation.vllm_backend import EngineStartError, PromptTooLongError

__all__ = [
    "Completion",
    "EngineStartError",
    "Generation",
    "Generator",
    "HFGenerator",
    "Progress",
    "PromptTooLongError",
    "live_engines",
    "make_generator",
    "policy_engine",
    "release_engines",
    "resolve_engine",
    "sleep_engines",
    "vllm_engine",
]


def resolve_engine(engine: str) -> str:
    """`auto` means vLLM when it is importable, else HF."""
    if engine != "auto":
        return engine
    return "vllm" if vllm_available() else "hf"


def make_generator(
    model: ModelConfig, engine: str, vllm: VLLMConfig, seed: int, adapter: Path | str | None, batch_size: int
) -> Generator:
    """The configured backend (`rollout.engine`) with `adapter` applied. The vLLM engine comes
    from the registry (one per flow run), since starting one is slow; HF models are loaded per
    call, which is cheap next to generating. `batch_size`: HF only."""
    if resolve_engine(engine) == "hf":
        return HFGenerator(
            model.name_or_path, model.dtype, adapter, batch_size, trust_remote_code=model.trust_remote_code
        )
    return policy_engine(model, vllm, seed, adapter)
