"""Run-folder persistence: atomic Parquet writes with a manifest
written last, and the skip-if-finished check.

A stage's output counts as finished only when its manifest exists and
records the same config and input hashes.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from sdfb import faults
from sdfb.atomic import atomic_path, write_text

MANIFEST_SUFFIX = ".manifest.json"
_PACKAGES = ("sdfb", "torch", "transformers", "trl", "peft", "prefect", "pyarrow", "pandas", "math-verify")


def manifest_path(path: Path) -> Path:
    return path.with_name(path.name + MANIFEST_SUFFIX)


def file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def output_hash(path: Path) -> str:
    """Hash of a finished output: the manifest's recorded content hash (a folder's or a file's)."""
    return read_manifest(path)["content_hash"]


def package_versions() -> dict[str, str]:
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


@dataclass(frozen=True)
class StageKey:
    """What a stage's output depends on: its schema version, config section and inputs."""

    schema_version: int
    config_hash: str
    input_hashes: dict[str, str]


class CorruptOutputError(ValueError):
    """A finished output whose content no longer matches its manifest (truncated, altered, half-copied)."""


class OutputWriteError(OSError):
    """A stage could not write its outputs: the disk is full or the run folder is read-only."""


_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
_READ_ONLY = (errno.EROFS, errno.EACCES, errno.EPERM)


def _write_problem(exc: BaseException, folder: Path) -> str | None:
    """What went wrong if `exc` is a full disk or an unwritable run folder (libraries that write files,
    such as safetensors, report the OS error only in their message), else None."""
    code = exc.errno if isinstance(exc, OSError) else None
    text = str(exc)
    if code in _NO_SPACE or "No space left on device" in text or "os error 28" in text:
        return "no space left on device"
    inside = isinstance(exc, OSError) and str(exc.filename or "").startswith(str(folder))
    if (code in _READ_ONLY and inside) or "Read-only file system" in text or "os error 30" in text:
        return "the run folder is not writable (read-only file system or permissions)"
    return None


@contextlib.contextmanager
def write_errors(folder: Path | str, stage: str) -> Iterator[None]:
    """Turn a full disk or a read-only run folder inside stage `stage` into one
    OutputWriteError that says what to do. Outputs are written atomically, so nothing finished
    is touched and no partial output is left."""
    try:
        yield
    except Exception as exc:  # classified here, re-raised unchanged unless it is a write failure
        problem = _write_problem(exc, Path(folder).resolve())
        if problem is None:
            raise
        raise OutputWriteError(
            f"stage {stage} could not write its outputs in {folder}: {problem}. Free space or make the "
            "folder writable (or pass another --run-dir) and rerun: finished stages are kept"
        ) from exc


def read_manifest(path: Path) -> dict[str, Any]:
    return json.loads(manifest_path(Path(path)).read_text())


def content_hash(path: Path) -> str:
    """A file's hash, or a folder's: every file's relative path and hash, in order."""
    path = Path(path)
    if path.is_file():
        return file_hash(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(file.relative_to(path).as_posix().encode())
        digest.update(file_hash(file).encode())
    return digest.hexdigest()[:16]


def _manifest_digest(manifest: dict[str, Any]) -> str:
    body = {k: v for k, v in manifest.items() if k != "manifest_hash"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()[:16]


def verified_manifest(path: Path) -> dict[str, Any] | None:
    """The output's manifest when the manifest is intact (its own hash) and the output's content still has the
    recorded hash; None when either is missing, unreadable, altered or truncated."""
    path, mpath = Path(path), manifest_path(Path(path))
    if not mpath.exists() or not path.exists():
        return None
    try:
        manifest = json.loads(mpath.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    if not isinstance(manifest, dict) or manifest.get("manifest_hash") != _manifest_digest(manifest):
        return None
    return manifest if manifest.get("content_hash") == content_hash(path) else None


def is_finished(path: Path, key: StageKey) -> bool:
    """True when `path` and its manifest are intact and the manifest
    records the same schema, config and inputs."""
    manifest = verified_manifest(path)
    return (
        manifest is not None
        and manifest.get("schema_version") == key.schema_version
        and manifest.get("config_hash") == key.config_hash
        and manifest.get("input_hashes") == key.input_hashes
    )


def _write_manifest(path: Path, key: StageKey, content: str, extra: dict[str, Any]) -> None:
    manifest = {
        "path": path.name,
        "schema_version": key.schema_version,
        "config_hash": key.config_hash,
        "input_hashes": key.input_hashes,
        "content_hash": content,
        "versions": package_versions(),
        "written_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **extra,
    }
    manifest = json.loads(json.dumps(manifest, default=str))  # as it will read back
    manifest["manifest_hash"] = _manifest_digest(manifest)
    write_text(manifest_path(path), json.dumps(manifest, indent=2, sort_keys=True))


def write_table(
    frame: pd.DataFrame, path: Path, schema: pa.Schema, key: StageKey, extra: dict[str, Any] | None = None
) -> Path:
    """Write `frame` with `schema` to a temporary name, rename it into place, then write the manifest."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    manifest_path(path).unlink(missing_ok=True)  # an old manifest must not vouch for a new file
    table = pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    faults.point(f"unvouched:{path.name}")
    extra = {"rows": table.num_rows, "schema": schema.names, **(extra or {})}
    _write_manifest(path, key, file_hash(path), extra)
    return path


def finish_folder(path: Path, key: StageKey, extra: dict[str, Any] | None = None) -> Path:
    """Write the manifest of a folder output (a checkpoint) once everything in it is saved."""
    _write_manifest(Path(path), key, content_hash(path), extra or {})
    return path


def read_table(path: Path) -> pd.DataFrame:
    """A finished stage table; its content is checked against its manifest
    first, so a damaged file is never used."""
    path = Path(path)
    if not manifest_path(path).exists():
        raise FileNotFoundError(
            f"{path} has no manifest: the stage that writes it did not finish; rerun the flow"
        )
    if verified_manifest(path) is None:
        raise CorruptOutputError(
            f"{path} does not match its manifest (truncated or altered since it was written); rerun the "
            "flow: the stage that writes it will be recomputed"
        )
    return pq.read_table(path).to_pandas()
