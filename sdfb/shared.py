"""Stage outputs shared between the run folders of one experiment seed: a run folder that names a shared
folder adopts a finished output from it when the stage key matches, and publishes what it computes there.

Keys cover the declared config keys and the content of every input, so an output is only
ever shared between runs that would have computed the same thing. Outputs are hard links (a
copy across file systems), never moved."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from sdfb.atomic import atomic_path, write_text
from sdfb.config import config_hash
from sdfb.store import StageKey, is_finished, manifest_path, verified_manifest

LINK_FILE = "shared.json"  # in a run folder: where its shared outputs live


def link_run(run_dir: Path | str, shared_dir: Path | str) -> None:
    """Make `run_dir` adopt from and publish to `shared_dir` (stored relative, so the tree can move)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    relative = os.path.relpath(Path(shared_dir).resolve(), run_dir.resolve())
    write_text(run_dir / LINK_FILE, json.dumps({"shared": relative}))


def shared_root(run_dir: Path | str) -> Path | None:
    link = Path(run_dir) / LINK_FILE
    if not link.is_file():
        return None
    return (Path(run_dir) / json.loads(link.read_text())["shared"]).resolve()


def _place(source: Path, target: Path) -> None:
    """Put `source`'s content at `target` atomically: a hard link, or a copy where links cannot be made."""
    with atomic_path(target) as tmp:
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copy2(source, tmp)


def _transfer(source: Path, target: Path) -> None:
    _place(source, target)
    _place(manifest_path(source), manifest_path(target))  # manifest last: its presence means finished


def _key_dir(key: StageKey) -> str:
    """Shared copies live under their key, so runs whose outputs differ never replace each other's."""
    return config_hash([key.schema_version, key.config_hash, key.input_hashes])


def _shared_copy(root: Path, key: StageKey, path: Path, run_dir: Path | str) -> Path:
    return root / _key_dir(key) / path.resolve().relative_to(Path(run_dir).resolve())


def adopt(path: Path | str, key: StageKey, run_dir: Path | str) -> bool:
    """Take the shared copy of `path` (a table) when it is finished under `key`; False when there is none."""
    root, path = shared_root(run_dir), Path(path)
    if root is None or path.suffix != ".parquet":
        return False
    source = _shared_copy(root, key, path, run_dir)
    if not is_finished(source, key):
        return False
    _transfer(source, path)
    return True


def publish(path: Path | str, run_dir: Path | str) -> None:
    """Offer a finished table to the other runs of the shared folder."""
    root, path = shared_root(run_dir), Path(path)
    manifest = verified_manifest(path) if root is not None and path.suffix == ".parquet" else None
    if manifest is None:
        return
    key = StageKey(manifest["schema_version"], manifest["config_hash"], manifest["input_hashes"])
    target = _shared_copy(root, key, path, run_dir)
    if not is_finished(target, key):
        _transfer(path, target)


def shared_uses(run_dirs: list[Path], shared_dir: Path) -> dict[str, int]:
    """For each shared table, how many of `run_dirs` hold that very execution (the same manifest)."""
    uses = {}
    for manifest in sorted(Path(shared_dir).glob("*/**/*.parquet.manifest.json")):
        key_dir, *parts = manifest.relative_to(shared_dir).parts
        relative = Path(*parts)
        body = manifest.read_bytes()
        held = [d for d in run_dirs if (d / relative).is_file() and (d / relative).read_bytes() == body]
        uses[f"{key_dir}/{str(relative).removesuffix('.manifest.json')}"] = len(held)
    return uses
