"""What the `sdfb` commands share: the consoles, the errors a user can fix (printed as one line), and stopping
cleanly on SIGTERM / Ctrl-C, ending only the processes the command itself started."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import typer
from rich.console import Console

from cli.quiet import short_errors
from sdfb.config import ConfigError, RunConfig, load_config

console = Console()
err = Console(stderr=True, soft_wrap=True)  # an error stays one line, however narrow the terminal


def user_errors() -> tuple[type[BaseException], ...]:
    from sdfb.critic import CriticUnavailableError
    from sdfb.generation import EngineStartError, PromptTooLongError
    from sdfb.models import ModelNotFoundError, UntrustedCodeError
    from sdfb.problems import DataError
    from sdfb.runlock import RunFolderError
    from sdfb.store import CorruptOutputError, OutputWriteError

    return (
        ConfigError,
        DataError,
        ModelNotFoundError,
        UntrustedCodeError,
        EngineStartError,
        PromptTooLongError,
        CriticUnavailableError,
        RunFolderError,
        CorruptOutputError,
        OutputWriteError,
    )


_FORCE_AFTER = 30.0  # seconds the graceful unwind may take before the run is ended by force


def interrupt(signum, frame) -> None:
    """SIGTERM / Ctrl-C: unwind (engines shut down, stages not finished are left without
    manifests); if that has not ended the process in _FORCE_AFTER seconds, or a second
    signal comes, end its children and exit."""
    if getattr(interrupt, "armed", False):
        force_exit()
    interrupt.armed = True
    timer = threading.Timer(_FORCE_AFTER, force_exit)
    timer.daemon = True  # never keeps a process that unwound in time alive
    timer.start()
    raise KeyboardInterrupt(f"signal {signum}")


def force_exit() -> None:
    end_children(grace=5.0)
    os._exit(130)


def children() -> set[int]:
    import psutil

    return {child.pid for child in psutil.Process().children(recursive=True)}


def end_children(grace: float = 10.0, keep: set[int] = frozenset()) -> None:
    """Stop every process this run started that is still alive (engine cores, grading workers), except `keep`:
    terminate, then kill what has not exited after `grace` seconds."""
    import psutil

    children = [c for c in psutil.Process().children(recursive=True) if c.pid not in keep]
    for child in children:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.terminate()
    _, alive = psutil.wait_procs(children, timeout=grace)
    for child in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()


@contextlib.contextmanager
def interrupt_handlers() -> Iterator[None]:
    """SIGTERM and Ctrl-C unwind (KeyboardInterrupt) while active; the previous handlers come back after."""
    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def progress_bars() -> contextlib.AbstractContextManager:
    """Progress bars for rollouts, training and scoring when someone watches a terminal;
    nothing under a worker or with output going to a file (`sdfb.progress.wanted`;
    SDFB_PROGRESS=0 or 1 decides either way)."""
    from sdfb.progress import terminal_bars, wanted

    return terminal_bars() if wanted() else contextlib.nullcontext()


@contextlib.contextmanager
def guarded(target: Path) -> Iterator[None]:
    """Hold the folder `target` (a second command on it stops at once), print errors the user can fix as
    one line (exit 2), stop cleanly on SIGTERM / Ctrl-C (exit 130) and end the processes this command
    started, keeping any that were there before (when the CLI is called in-process)."""
    from sdfb.runlock import run_lock

    earlier = children()
    try:
        with interrupt_handlers(), run_lock(target), short_errors(user_errors()), progress_bars():
            yield
    except user_errors() as exc:
        err.print(f"[red]error:[/red] {exc}\nfinished stages in {target} are kept; fix the input and rerun.")
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        err.print(f"stopped; finished stages in {target} are kept, rerun the same command to resume")
        raise typer.Exit(130) from None
    finally:
        send_logs()
        end_children(keep=earlier)


def send_logs() -> None:
    """Send the run's last log lines while a temporary Prefect server still runs (at exit it stops first)."""
    import sys

    if "prefect.logging.handlers" in sys.modules:
        from prefect.logging.handlers import APILogWorker

        APILogWorker.drain_all(timeout=5)


def config_or_exit(config: Path | None, overrides: list[str] | None) -> RunConfig:
    """The resolved config, or exit 2 with the message that names the bad key or value."""
    try:
        return load_config(config, overrides or [])
    except ConfigError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
