"""The one registry of in-process vLLM engines: started on first use, shared by every later
stage and round of a flow run (the solver's and an LLM critic's), put to sleep while training
runs, released when the flow run ends.

Nothing else holds an engine across calls; callers ask here and never keep one.
"""

from __future__ import annotations

import atexit
import gc
import logging
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sdfb.config import ModelConfig, VLLMConfig
from sdfb.generation.devices import on_gpu
from sdfb.generation.vllm_backend import VLLMGenerator

log = logging.getLogger(__name__)

# Keyed by everything the engine is built from; VLLMConfig is frozen, so equal settings hash equal.
_ENGINES: dict[tuple[str, str, VLLMConfig, int, bool, bool], VLLMGenerator] = {}
_MERGED: dict[str, Path] = {}  # adapter folder -> its merged weights (temporary folders of this process)
_CHECKPOINTS: set[str] = set()  # weights folders of engines started for a checkpoint (not the base model)
_AT_EXIT: list[bool] = []  # whether the exit handler is registered


def vllm_engine(
    model_name: str,
    dtype: str,
    vllm: VLLMConfig,
    seed: int,
    section: str = "rollout.vllm",
    trust_remote_code: bool = False,
    lora: bool = True,
) -> VLLMGenerator:
    """The process's vLLM engine for these settings, started on first use. `section` names where the
    settings live in the config (`rollout.vllm`, `critic.vllm`), for error messages; `lora`: whether
    requests may carry an adapter (engines that never get one run without vLLM's LoRA layers)."""
    key = (model_name, dtype, vllm, seed, trust_remote_code, lora)
    if key not in _ENGINES:
        log.info("starting the vLLM engine for %s", model_name)
        _ENGINES[key] = VLLMGenerator(model_name, dtype, vllm, seed, section, trust_remote_code, lora)
        _release_at_exit()
    return _ENGINES[key]


def _release_at_exit() -> None:
    """Release what is still running when the interpreter exits, before the handlers of the
    libraries the engine imported (atexit runs the last registered first): an engine left to
    interpreter teardown loses its worker processes to multiprocessing's exit handler while its own
    threads still wait on them. Registered once."""
    if not _AT_EXIT:
        atexit.register(_release_left_over)
        _AT_EXIT.append(True)


def _release_left_over() -> None:
    if _ENGINES:
        log.info("releasing %d vLLM engine(s) left running at exit", len(_ENGINES))
        release_engines()


def policy_engine(
    model: ModelConfig, vllm: VLLMConfig, seed: int, adapter: Path | str | None, section: str = "rollout.vllm"
) -> VLLMGenerator:
    """The engine that samples from the base model plus `adapter`: the base engine with the
    LoRA adapter applied per request, or (merging, the CPU default) an engine over the merged
    weights. A full fine-tune's checkpoint is a model folder of its own and always gets its own
    engine. One checkpoint engine lives at a time."""
    trust = model.trust_remote_code
    folder = Path(adapter) if adapter is not None else None
    full = (
        folder is not None
        and (folder / "config.json").is_file()
        and not (folder / "adapter_config.json").is_file()
    )
    per_request = adapters_per_request(vllm)
    if folder is None or (not full and per_request):  # merging: no request ever carries an adapter
        engine = vllm_engine(model.name_or_path, model.dtype, vllm, seed, section, trust, lora=per_request)
        engine.set_adapter(adapter)
        return engine
    weights = folder.resolve() if full else merged_weights(model, folder)
    _release_checkpoints(keep=str(weights))
    _CHECKPOINTS.add(str(weights))
    engine = vllm_engine(str(weights), model.dtype, vllm, seed, section, trust, lora=False)
    engine.set_adapter(None)
    return engine


def adapters_per_request(vllm: VLLMConfig) -> bool:
    """Whether the policy's LoRA adapters are applied per request (`rollout.vllm.merge_adapters: false`,
    the GPU default) rather than merged into an engine of their own (the CPU default)."""
    return on_gpu() if vllm.merge_adapters is None else not vllm.merge_adapters


def merged_weights(model: ModelConfig, adapter: Path) -> Path:
    """The base model with `adapter` merged in, saved once per process in a temporary folder (removed when its
    engine is released)."""
    key = str(adapter.resolve())
    if key not in _MERGED:
        from sdfb.models import load_model, load_tokenizer

        merged = load_model(model.name_or_path, "float32", adapter, trust_remote_code=model.trust_remote_code)
        folder = Path(tempfile.mkdtemp(prefix="sdfb-merged-"))
        merged.merge_and_unload().save_pretrained(folder)
        load_tokenizer(model.name_or_path, model.trust_remote_code).save_pretrained(folder)
        log.info("merged %s into %s for generation", adapter, folder)
        _MERGED[key] = folder
    return _MERGED[key]


def _release_checkpoints(keep: str) -> None:
    """Shut down engines over checkpoint weights other than `keep` (the base engines stay)."""
    for key in [k for k in _ENGINES if k[0] != keep and k[0] in _CHECKPOINTS]:
        _ENGINES.pop(key).close()
        _CHECKPOINTS.discard(key[0])
    for adapter, folder in list(_MERGED.items()):
        if str(folder) != keep:
            shutil.rmtree(_MERGED.pop(adapter), ignore_errors=True)


def live_engines() -> int:
    return len(_ENGINES)


def sleep_engines() -> None:
    """Release accelerator memory held by engines before training (no-op on CPU)."""
    for engine in _ENGINES.values():
        engine.sleep()


def release_engines() -> None:
    """Shut every engine down (end of a flow run), all at once: each engine's processes take seconds to exit
    (docs/engines.md), and a run often ends with more than one."""
    engines = list(_ENGINES.values())
    _ENGINES.clear()
    if engines:
        with ThreadPoolExecutor(len(engines)) as pool:
            list(pool.map(lambda engine: engine.close(), engines))  # re-raises the first failure
    for folder in _MERGED.values():
        shutil.rmtree(folder, ignore_errors=True)
    _MERGED.clear()
    _CHECKPOINTS.clear()
    gc.collect()
