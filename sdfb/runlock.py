"""One run at a time per run folder: an advisory lock file holding the owner's pid. The operating system drops
the lock when its process dies, even by SIGKILL, so a crashed run never leaves a stale lock behind."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

LOCK_NAME = ".sdfb.lock"
_HELD: dict[Path, int] = {}  # folders this process holds, with how many nested holders


class RunFolderError(RuntimeError):
    """The run folder cannot be used: another run holds it, or it cannot be written."""


def _open(path: Path):
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return open(path, "a+")  # noqa: SIM115  (held open for the lock's lifetime)
    except OSError as exc:
        raise RunFolderError(
            f"run folder {path.parent} cannot be written ({exc.strerror}); make it writable or pass another "
            "--run-dir (finished outputs in it are kept)"
        ) from None


@contextlib.contextmanager
def run_lock(run_dir: Path | str) -> Iterator[None]:
    """Hold `run_dir` for this process; raise RunFolderError at once when another process holds it. Nested
    holds in one process (the CLI, then the flow it starts) share the lock."""
    root = Path(run_dir).resolve()
    if root in _HELD:
        _HELD[root] += 1
        try:
            yield
        finally:
            _HELD[root] -= 1
        return
    handle = _open(root / LOCK_NAME)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        owner = handle.read().strip() or "unknown"
        handle.close()
        raise RunFolderError(
            f"run folder {root} in use by pid {owner}; wait for that run to finish (or "
            "stop it), or pass another --run-dir"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    _HELD[root] = 1
    try:
        yield
    finally:
        del _HELD[root]
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()
