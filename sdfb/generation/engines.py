"""The one registry of in-process vLLM engines: started on first use, shared by every later stage and round of a
flow run (the solver's and an LLM critic's), put to sleep while training runs, released when the flow run ends.

Nothing else holds an engine across calls; callers ask here and never keep one.
"""

from __future__ import annotations

import gc
import logging

from sdfb.config import VLLMConfig
from sdfb.generation.vllm_backend import VLLMGenerator

log = logging.getLogger(__name__)

# Keyed by everything the engine is built from; VLLMConfig is frozen, so equal settings hash equal.
_ENGINES: dict[tuple[str, str, VLLMConfig, int, bool], VLLMGenerator] = {}


def vllm_engine(
    model_name: str,
    dtype: str,
    vllm: VLLMConfig,
    seed: int,
    section: str = "rollout.vllm",
    trust_remote_code: bool = False,
) -> VLLMGenerator:
    """The process's vLLM engine for these settings, started on first use. `section` names where the settings
    live in the config (`rollout.vllm`, `critic.vllm`), for error messages."""
    key = (model_name, dtype, vllm, seed, trust_remote_code)
    if key not in _ENGINES:
        log.info("starting the vLLM engine for %s", model_name)
        _ENGINES[key] = VLLMGenerator(model_name, dtype, vllm, seed, section, trust_remote_code)
    return _ENGINES[key]


def live_engines() -> int:
    return len(_ENGINES)


def sleep_engines() -> None:
    """Release accelerator memory held by engines before training (no-op on CPU)."""
    for engine in _ENGINES.values():
        engine.sleep()


def release_engines() -> None:
    """Shut every engine down (end of a flow run)."""
    while _ENGINES:
        _, engine = _ENGINES.popitem()
        engine.close()
    gc.collect()
