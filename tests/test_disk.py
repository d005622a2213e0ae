"""A full disk and a read-only run folder, for real: the run folder lies on a small tmpfs (a real file
system that fills up and can be remounted read-only), so every write fails the way it would on a user's
machine. Mounting needs root (CI runs as root); as another user the read-only case falls back to
permissions and the full-disk case is skipped, saying why."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sdfb_process import sdfb_run

from sdfb.store import MANIFEST_SUFFIX, verified_manifest

ROOT = Path(__file__).resolve().parents[1]


def _mount(folder: Path, options: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(
            f"cannot mount a tmpfs here ({done.stderr.decode().strip()}); run as root to test a full disk"
        )


def _remount(folder: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(folder)], check=True)


@pytest.fixture
def small_disk(tmp_path):
    """A 256 KiB file system: room for the smoke run's tables, not for its first LoRA checkpoint (~270 KB)."""
    folder = tmp_path / "disk"
    _mount(folder, "size=256k")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=False)


def _sdfb_run(run_dir: Path, api_url: str) -> subprocess.CompletedProcess:
    return sdfb_run(run_dir, api_url, ["rounds=1"])


def _finished(run_dir: Path) -> dict[str, bytes]:
    """Every output its manifest vouches for, with its bytes (manifests of half-written outputs would
    fail)."""
    outputs = {}
    for manifest in run_dir.rglob(f"*{MANIFEST_SUFFIX}"):
        output = manifest.with_name(manifest.name.removesuffix(MANIFEST_SUFFIX))
        assert verified_manifest(output) is not None, (
            f"{manifest} vouches for an output that does not match it"
        )
        if output.is_file():
            outputs[str(output.relative_to(run_dir))] = output.read_bytes()
    return outputs


def _one_error_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr[-3000:]
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr[-3000:]
    return errors[0]


@pytest.mark.flow
def test_a_disk_that_fills_up_stops_the_run_in_one_line_and_the_rerun_resumes_once_there_is_room(
    small_disk, api_url, tiny_model_path
):
    run_dir = small_disk / "run"
    full = _sdfb_run(run_dir, api_url)
    assert full.returncode == 2, full.stderr[-3000:]
    line = _one_error_line(full.stderr)
    assert "stage distill could not write its outputs" in line and "no space left on device" in line
    kept = _finished(run_dir)
    assert any(name.endswith("contexts.parquet") for name in kept)  # the stages before it finished
    assert not [p for p in run_dir.rglob("*") if p.name.endswith(".tmp")]  # no partial file left behind

    _remount(small_disk, "size=64m")  # the user frees space
    resumed = _sdfb_run(run_dir, api_url)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    after = _finished(run_dir)
    assert {name: after[name] for name in kept} == kept  # finished stages reused as they were
    assert "round_0001/tokens.parquet" in after


def test_a_read_only_run_folder_stops_sdfb_run_at_once_and_its_outputs_stay(tmp_path):
    as_root = os.geteuid() == 0
    top = tmp_path / "disk"
    if as_root:
        _mount(top, "size=1m")
    run_dir = top / "run"
    (run_dir / "eval").mkdir(parents=True)
    finished = run_dir / "eval" / "problems.parquet"
    finished.write_bytes(b"an earlier output")
    _remount(top, "ro") if as_root else run_dir.chmod(0o500)
    try:
        command = [
            sys.executable,
            "-m",
            "cli.main",
            "run",
            "-c",
            "configs/smoke.yaml",
            "--run-dir",
            str(run_dir),
        ]
        result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert result.returncode == 2
        line = _one_error_line(result.stderr)
        assert f"run folder {run_dir} cannot be written" in line and "--run-dir" in line
        assert finished.read_bytes() == b"an earlier output"
    finally:
        if as_root:
            subprocess.run(["umount", "-l", str(top)], check=False)
        else:
            run_dir.chmod(0o700)
