"""The skip-or-compute step every table-writing task shares: a finished output (manifest with the same key) is
reused, anything else is computed, timed and written atomically with its manifest last."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
from prefect import get_run_logger
from prefect.exceptions import MissingContextError

from sdfb.store import StageKey, is_finished, read_manifest, write_table


def task_logger() -> logging.Logger | logging.LoggerAdapter:
    """The Prefect run logger, or a plain logger when a task's `.fn` is called outside a run (tests, debugging)."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger("sdfb.tasks")


def run_stage(
    stage: str,
    path: Path,
    key: StageKey,
    schema: pa.Schema,
    compute: Callable[[], pd.DataFrame | tuple[pd.DataFrame, dict[str, Any]]],
    redo: Callable[[dict[str, Any]], bool] | None = None,
) -> str:
    """`redo(manifest)` may ask for a finished output to be computed again (the critique stage does when some
    requests failed last time; its cache makes that cost only the failed ones)."""
    logger = task_logger()
    if is_finished(path, key):
        if redo is None or not redo(read_manifest(path)):
            logger.info("%s: finished earlier, reusing %s", stage, path)
            return str(path)
        logger.info("%s: finished earlier with failures, computing again (cached parts are reused)", stage)
    started = time.perf_counter()
    result = compute()
    frame, extra = result if isinstance(result, tuple) else (result, {})
    seconds = time.perf_counter() - started
    write_table(
        frame, path, schema, key, {"stage": stage, "seconds": seconds, "finished_at": time.time(), **extra}
    )
    logger.info("%s: wrote %d rows to %s in %.1fs", stage, len(frame), path, seconds)
    return str(path)
