"""The skip-or-compute step every stage's task shares: finished outputs (manifests with the same
key) are reused, anything else is computed from the stage's declared config keys, timed and written
atomically, manifests last. Paths, keys and the config view come from the stage table in
`sdfb.stages`; what is finished, from `sdfb.resume`."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NONE
from prefect.exceptions import MissingContextError

from sdfb import faults, shared
from sdfb.config import RunConfig
from sdfb.resume import Inputs, stage_paths
from sdfb.stages import config_view, stage, stage_key
from sdfb.store import StageKey, finish_folder, is_finished, read_manifest, write_errors, write_table
from tasks._failure import remember_failure

__all__ = ["Inputs", "StageRun", "compute_stage", "run_stage", "stage_task", "task_logger"]

Tables = pd.DataFrame | dict[str, pd.DataFrame]
# A table, or a multi-output stage's tables by output name (its folders the compute saved itself), optionally
# with extra manifest fields; None: this process writes nothing (another rank of a multi-process launch does).
Compute = Callable[..., Tables | tuple[Tables, dict[str, Any]] | None]


def stage_task(name: str, run_name: str | None = None, **options: Any):
    """The task decorator every sdfb task uses: no Prefect result caching (a finished stage is found by its
    manifest), task runs named `run_name` (a template over the task's parameters, e.g. `distill (round
    {round_index})`), and the failure hook that lets a failed run name its stage (`tasks._failure`)."""
    return task(
        name=name, task_run_name=run_name or name, cache_policy=NONE, on_failure=[remember_failure], **options
    )


def task_logger() -> logging.Logger | logging.LoggerAdapter:
    """The Prefect run logger, or a plain logger when a task's `.fn` is
    called outside a run (tests, debugging)."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger("sdfb.tasks")


@dataclass(frozen=True)
class StageRun:
    """What `compute_stage` did: the stage's outputs by name, whether it computed them now (False: finished
    earlier, or adopted from another run of the experiment), and the extra manifest fields it wrote."""

    paths: dict[str, Path]
    computed: bool
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        """The main output (the stage table's first)."""
        return next(iter(self.paths.values()))


def run_stage(
    name: str,
    cfg: RunConfig,
    run_dir: str,
    inputs: Inputs,
    compute: Compute,
    redo: Callable[[dict[str, Any]], bool] | None = None,
    **params: Any,
) -> str:
    """`compute_stage`, for the tasks that only need the main output's path."""
    return str(compute_stage(name, cfg, run_dir, inputs, compute, redo, **params).path)


def compute_stage(
    name: str,
    cfg: RunConfig,
    run_dir: str,
    inputs: Inputs,
    compute: Compute,
    redo: Callable[[dict[str, Any]], bool] | None = None,
    **params: Any,
) -> StageRun:
    """Reuse stage `name`'s finished outputs, or call `compute(view, inputs, **params)` (view: only
    the config keys the stage declares) and write its tables. `redo(manifest)` may ask for a
    finished output to be computed again (the critique stage does when some requests failed last
    time; its cache makes that cost only those)."""
    logger = task_logger()
    paths = stage_paths(name, run_dir, **params)
    main = next(iter(paths.values()))
    key = stage_key(cfg, name, inputs, **params)
    if not _finished(paths, key) and shared.adopt(main, key, run_dir):
        logger.info("%s: computed by another run of this experiment, reusing it", name)
    if _finished(paths, key):
        if redo is None or not redo(read_manifest(main)):
            logger.info("%s: finished earlier, reusing %s", name, main)
            return StageRun(paths, computed=False)
        logger.info("%s: finished earlier with failures, computing again (cached parts are reused)", name)
    faults.point(f"start:{name}")
    started = time.perf_counter()
    with write_errors(run_dir, name):
        result = compute(config_view(cfg, name), inputs, **params)
        if result is None:  # not the writing process
            return StageRun(paths, computed=True)
        tables, extra = result if isinstance(result, tuple) else (result, {})
        tables = tables if isinstance(tables, dict) else {name: tables}
        extra = {"seconds": time.perf_counter() - started, "finished_at": time.time(), **extra}
        _write(name, paths, key, tables, extra)
    shared.publish(main, run_dir)
    rows = len(tables[name]) if name in tables else sum(map(len, tables.values()))
    logger.info("%s: wrote %d rows to %s in %.1fs", name, rows, paths.get(name, main), extra["seconds"])
    faults.point(f"done:{name}")
    return StageRun(paths, computed=True, extra=extra)


def _finished(paths: dict[str, Path], key: StageKey) -> bool:
    return all(is_finished(path, key) for path in paths.values())


def _write(name: str, paths: dict[str, Path], key: StageKey, tables: dict, extra: dict[str, Any]) -> None:
    """Tables first, then the manifests of folders (saved by the compute), so a finished folder means finished
    tables. The stage's time is counted once, on the output named after the stage."""
    outputs = stage(name).outputs
    assert set(tables) == {o for o, spec in outputs.items() if spec.schema is not None}, (name, set(tables))
    ordered = [o for o in outputs if o in tables] + [o for o in outputs if o not in tables]
    for out in ordered:
        fields = {**extra, "stage": out} | ({} if out == name else {"seconds": 0.0})
        if out in tables:
            write_table(tables[out], paths[out], outputs[out].schema, key, fields)
        else:
            finish_folder(paths[out], key, fields)
