"""Progress bars on a terminal (rich) for the `progress(done, total)` callbacks the
library's long loops take (rollouts, scoring, training steps). Off unless a caller turns
them on around its work with `terminal_bars()`.

The library never decides by itself: the CLI asks `wanted()` (a terminal, no Prefect worker),
so a worker's runs and output sent to a file stay quiet. While bars are on, log handlers that
write to the terminal print above them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

Progress = Callable[[int, int], None]

_active: list[Any] = []  # the rich Progress while terminal_bars() runs (a list: no global statement)
_lock = threading.Lock()


def wanted(stream: Any = None, environ: dict[str, str] | None = None) -> bool:
    """Whether bars help whoever watches: SDFB_PROGRESS=1 or 0 decides; otherwise only on a
    terminal, and not in a flow run a Prefect worker started (it sets
    PREFECT__FLOW_RUN_ID), whose output goes to its logs."""
    env = os.environ if environ is None else environ
    if env.get("SDFB_PROGRESS") in ("0", "1"):
        return env["SDFB_PROGRESS"] == "1"
    stream = sys.stderr if stream is None else stream
    return bool(getattr(stream, "isatty", lambda: False)()) and "PREFECT__FLOW_RUN_ID" not in env


@contextlib.contextmanager
def terminal_bars(console: Any = None) -> Iterator[None]:
    """While active, `reporting()` callbacks draw a bar each on `console` (default: stderr)."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.progress import Progress as Bars

    bars = Bars(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console or Console(stderr=True),
    )
    with bars, _logs_above(bars.console):
        _active.append(bars)
        try:
            yield
        finally:
            _active.remove(bars)


def reporting(description: str, inner: Progress | None = None) -> Progress | None:
    """The callback for a loop: `inner` (if any) plus, while terminal bars are on, a
    bar named `description` that appears at the first report and gives way to a
    one-line summary when done reaches total."""
    if not _active:
        return inner
    bars = _active[-1]
    task = []
    started = time.monotonic()

    def progress(done: int, total: int) -> None:
        with _lock:
            if not task:
                task.append(bars.add_task(description, total=total or None))
            if task[0] in bars.task_ids:
                bars.update(task[0], completed=done, total=total or None)
                if total and done >= total:
                    bars.remove_task(task[0])
                    bars.console.print(
                        f"{description}: {done}/{total} in {time.monotonic() - started:.0f}s", highlight=False
                    )
        if inner:
            inner(done, total)

    return progress


@contextlib.contextmanager
def _logs_above(console: Any) -> Iterator[None]:
    """Send log handlers that write to the terminal through `console`, so that their lines
    print above the bars instead of being drawn over: handlers that print with a rich Console
    of their own (Prefect's) print with this one; plain stream handlers write to the redirected
    sys.stderr, which rich's live display forwards."""
    terminal = {id(sys.__stderr__), id(sys.__stdout__)}
    named = (v for v in logging.Logger.manager.loggerDict.values() if isinstance(v, logging.Logger))
    handlers = {h for lg in (logging.getLogger(), *named) for h in lg.handlers}
    moved = []
    for handler in handlers:
        own = getattr(handler, "console", None)
        if own is not None and hasattr(own, "print") and id(own.file) in terminal:
            moved.append((handler, "console", own))
            handler.console = console
        elif isinstance(handler, logging.StreamHandler) and id(handler.stream) in terminal:
            moved.append((handler, "stream", handler.stream))
            handler.stream = sys.stderr  # rich's proxy while the bars are live on a terminal
    try:
        yield
    finally:
        for handler, attribute, old in moved:
            setattr(handler, attribute, old)
