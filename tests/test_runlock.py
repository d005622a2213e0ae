"""One run per run folder: a second process is refused at once with the holder's pid, the lock dies with its
holder (even by SIGKILL), and a folder that cannot be written is a clear error."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from sdfb.runlock import RunFolderError, run_lock

ROOT = Path(__file__).resolve().parents[1]
HOLD = (
    "import sys, time; from sdfb.runlock import run_lock\n"
    "with run_lock(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(120)\n"
)


@pytest.fixture
def holder(tmp_path):
    """A real second process holding the run folder."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path / "run")], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    assert process.stdout.readline().strip() == "held"
    yield process
    process.kill()
    process.wait()


def test_a_folder_held_by_another_process_is_refused_naming_its_pid(holder, tmp_path):
    # The holder keeps the lock until this test ends, so a lock that waited would never return: raising at all
    # shows it was refused at once.
    with pytest.raises(RunFolderError, match=f"in use by pid {holder.pid}"), run_lock(tmp_path / "run"):
        pass
    assert holder.poll() is None  # still held when refused


def test_the_lock_dies_with_its_holder_even_by_sigkill(holder, tmp_path):
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    with run_lock(tmp_path / "run"):
        assert (tmp_path / "run" / ".sdfb.lock").read_text() == str(os.getpid())


def test_nested_holds_in_one_process_share_the_lock(tmp_path):
    with run_lock(tmp_path / "run"), run_lock(tmp_path / "run"):
        pass
    with run_lock(tmp_path / "run"):  # released after the outer hold ends
        pass


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_run_folder_is_a_clear_error(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(RunFolderError, match="cannot be written"), run_lock(folder):
            pass
    finally:
        folder.chmod(0o700)


def test_sdfb_run_on_a_folder_in_use_stops_at_once_and_keeps_its_outputs(holder, tmp_path):
    from typer.testing import CliRunner

    from cli.main import app

    run_dir = tmp_path / "run"
    (run_dir / "eval").mkdir(parents=True)
    kept = run_dir / "eval" / "problems.parquet"
    kept.write_bytes(b"earlier output")
    args = ["run", "--config", str(ROOT / "configs" / "smoke.yaml"), "--run-dir", str(run_dir)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert f"in use by pid {holder.pid}" in " ".join(result.output.split())
    assert kept.read_bytes() == b"earlier output"
    # the CLI ends only processes its own run started, never its caller's (here the holder, a child of this
    # one)
    assert holder.poll() is None
