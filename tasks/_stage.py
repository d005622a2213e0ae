"""The skip-or-compute step every table-writing task shares: a finished output (manifest with the same key) is
reused, anything else is computed from the stage's declared config keys, timed and written atomically with its
manifest last. Paths, keys and the config view all come from the stage table in `sdfb.stages`."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NONE
from prefect.exceptions import MissingContextError

from sdfb import faults, shared
from sdfb.config import RunConfig
from sdfb.stages import absent_inputs, config_view, output_path, stage, stage_key
from sdfb.store import is_finished, read_manifest, write_errors, write_table
from tasks._failure import remember_failure

Inputs = dict[str, str | None]
Compute = Callable[..., pd.DataFrame | tuple[pd.DataFrame, dict[str, Any]]]


def stage_task(name: str, run_name: str | None = None, **options: Any):
    """The task decorator every sdfb task uses: no Prefect result caching (a finished stage is found by its
    manifest), task runs named `run_name` (a template over the task's parameters, e.g. `distill (round
    {round_index})`), and the failure hook that lets a failed run name its stage (`tasks._failure`)."""
    return task(
        name=name, task_run_name=run_name or name, cache_policy=NONE, on_failure=[remember_failure], **options
    )


def task_logger() -> logging.Logger | logging.LoggerAdapter:
    """The Prefect run logger, or a plain logger when a task's `.fn` is called outside a run (tests, debugging)."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger("sdfb.tasks")


def run_stage(
    name: str,
    cfg: RunConfig,
    run_dir: str,
    inputs: Inputs,
    compute: Compute,
    redo: Callable[[dict[str, Any]], bool] | None = None,
    **params: Any,
) -> str:
    """Reuse stage `name`'s finished output, or call `compute(view, inputs, **params)` (view: only the config keys
    the stage declares) and write its table. `redo(manifest)` may ask for a finished output to be computed again
    (the critique stage does when some requests failed last time; its cache makes that cost only those)."""
    logger = task_logger()
    path = output_path(run_dir, name, **params)
    key = stage_key(cfg, name, inputs, **params)
    if not is_finished(path, key) and shared.adopt(path, key, run_dir):
        logger.info("%s: computed by another run of this experiment, reusing it", name)
    if is_finished(path, key):
        if redo is None or not redo(read_manifest(path)):
            logger.info("%s: finished earlier, reusing %s", name, path)
            return str(path)
        logger.info("%s: finished earlier with failures, computing again (cached parts are reused)", name)
    faults.point(f"start:{name}")
    started = time.perf_counter()
    with write_errors(run_dir, name):
        result = compute(config_view(cfg, name), inputs, **params)
        frame, extra = result if isinstance(result, tuple) else (result, {})
        seconds = time.perf_counter() - started
        schema = next(iter(stage(name).outputs.values())).schema
        write_table(
            frame, path, schema, key, {"stage": name, "seconds": seconds, "finished_at": time.time(), **extra}
        )
    shared.publish(path, run_dir)
    logger.info("%s: wrote %d rows to %s in %.1fs", name, len(frame), path, seconds)
    faults.point(f"done:{name}")
    return str(path)


def finished(name: str, cfg: RunConfig, run_dir: str, inputs: Inputs, **params: Any) -> bool:
    """True when every output of stage `name` is finished under the current key (multi-output stages)."""
    key = stage_key(cfg, name, inputs, **params)
    return all(is_finished(output_path(run_dir, name, out, **params), key) for out in stage(name).outputs)


def stage_paths(name: str, run_dir: str, **params: Any) -> dict[str, Path]:
    return {out: output_path(run_dir, name, out, **params) for out in stage(name).outputs}


def flow_inputs(cfg: RunConfig, name: str, round_index: int) -> dict[str, tuple[str, int] | None]:
    """Which stage, of which round, produces each input the flow passes stage `name` of round `round_index`: the
    previous round's checkpoint for `adapter` and `previous` (none in round 1), the difficulty filter only when
    `data.filter` is on, else the stage of that name."""
    producers: dict[str, tuple[str, int] | None] = {}
    for inp in stage(name).inputs:
        if inp in ("adapter", "previous"):
            producers[inp] = ("distill", round_index - 1) if round_index > 1 else None
        elif inp in absent_inputs(cfg):
            producers[inp] = None
        else:  # a stage without rounds (eval_problems) is the same output for every round
            producers[inp] = (inp, round_index if "round" in stage(inp).params else 0)
    return producers


def _round_params(name: str, round_index: int) -> dict[str, int]:
    return {"round": round_index} if "round" in stage(name).params else {}


def unfinished_inputs(cfg: RunConfig, run_dir: str, name: str, round_index: int) -> list[str]:
    """The stages upstream of stage `name` of round `round_index` that a flow run with `cfg` would compute (again):
    outputs missing, or finished under another config or other inputs. Labelled 'stage (round N)'."""
    ready: dict[tuple[str, int], bool] = {}

    def check(producer: str, r: int) -> bool:
        if (producer, r) not in ready:
            inputs, ok = {}, True
            for inp, source in flow_inputs(cfg, producer, r).items():
                ok = (source is None or check(*source)) and ok
                inputs[inp] = (
                    None if source is None else str(output_path(run_dir, source[0], **_round_params(*source)))
                )
            ready[producer, r] = ok and finished(producer, cfg, run_dir, inputs, **_round_params(producer, r))
        return ready[producer, r]

    for source in flow_inputs(cfg, name, round_index).values():
        if source is not None:
            check(*source)
    return [f"{s} (round {r})" if _round_params(s, r) else s for (s, r), ok in ready.items() if not ok]
