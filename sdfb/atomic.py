"""Atomic replacement of a file or folder: write under a temporary sibling name, then rename it into place.

A reader never sees a half-written output: until the rename the target holds the old content (or nothing).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(target: Path | str) -> Iterator[Path]:
    """Yield a fresh temporary path beside `target`; when the block succeeds, rename it
    onto `target` (a file is replaced atomically; a folder replaces the old folder, which
    is removed first), when it fails, remove it.

    The temporary name is unique per call, so two writers never write into each other's temporary file.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    try:
        yield tmp
        if tmp.is_dir():
            if target.exists():
                shutil.rmtree(target)
            tmp.rename(target)
        else:
            os.replace(tmp, target)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)


def write_text(target: Path | str, text: str) -> Path:
    """Replace `target` with `text` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_text(text)
    return Path(target)
