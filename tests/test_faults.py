"""Faults injected for real: `sdfb run` (a real process, on the smoke recipe, against the
session's Prefect server) is killed with SIGKILL at stage boundaries and inside every kind of
work, rerun after each kill, and the finished run folder is compared with an uninterrupted
run's. Also SIGTERM: no engine process outlives the run.

The kill itself is real (the process sends itself SIGKILL at a named point, `sdfb.faults`); only where it
happens is chosen, so each point is hit on every machine instead of by timing luck.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from sdfb_process import sdfb_run

from sdfb.store import MANIFEST_SUFFIX, verified_manifest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.faults, pytest.mark.flow]
RECIPE = ["rounds=1", "distill.save_steps=1"]

# In order: each run resumes what the previous killed run finished and is killed at the next point.
KILL_POINTS = [
    "start:eval_problems",  # before any work
    "generate:batch",  # inside base scoring (its first generation batch)
    "unvouched:base.parquet",  # scoring samples written, manifest not yet
    "done:scores",  # boundary after base scoring
    "generate:batch",  # inside round 1 rollouts
    "grade:answers",  # inside grading: answers extracted, not yet compared
    "unvouched:grades.parquet",
    "critique:replies",  # inside the critique stage: the critic has answered, nothing checked yet
    "grade:result",  # inside the critique stage: a critique's answer graded in the worker pool
    "done:contexts",  # boundary before distillation
    "distill:step:2",  # mid-training: step 2 done, its checkpoint not saved (step 1's is)
    "unvouched:distill.parquet",  # weights saved, records half written
    "generate:batch",  # inside the final scoring
]
KEYS = ["problem_id", "sample_index"]


def _sdfb_run(run_dir: Path, api_url: str, kill_at: str = "") -> subprocess.CompletedProcess:
    return sdfb_run(run_dir, api_url, RECIPE, kill_at=kill_at)


def _tables(run_dir: Path) -> dict[str, pd.DataFrame]:
    return {
        str(p.relative_to(run_dir)).removesuffix(".parquet"): pd.read_parquet(p)
        for p in sorted(run_dir.rglob("*.parquet"))
    }


def _manifests_vouch_only_for_whole_outputs(run_dir: Path) -> None:
    for manifest in run_dir.rglob(f"*{MANIFEST_SUFFIX}"):
        output = manifest.with_name(manifest.name.removesuffix(MANIFEST_SUFFIX))
        assert verified_manifest(output) is not None, (
            f"{manifest} vouches for an output that does not match it"
        )


@pytest.fixture(scope="module")
def reference(api_url, tiny_model_path, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    result = _sdfb_run(run_dir, api_url)
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


def test_a_run_killed_at_every_point_resumes_to_the_uninterrupted_result(api_url, reference, tmp_path):
    run_dir = tmp_path / "run"
    resumed = 0  # kills after which the next run got past the point where the last one died
    for i, point in enumerate(KILL_POINTS):
        result = _sdfb_run(run_dir, api_url, kill_at=point)
        assert result.returncode == -signal.SIGKILL, f"{point} was never reached: {result.stderr[-2000:]}"
        _manifests_vouch_only_for_whole_outputs(run_dir)
        resumed += i > 0
    final = _sdfb_run(run_dir, api_url)
    assert final.returncode == 0, final.stderr[-3000:]
    resumed += 1
    _manifests_vouch_only_for_whole_outputs(run_dir)

    got, want = _tables(run_dir), _tables(reference)
    assert set(got) == set(want)
    lost = 0
    for name, table in want.items():
        lost += max(0, len(table) - len(got[name]))
        assert len(got[name]) == len(table), f"{name}: {len(got[name])} rows, uninterrupted {len(table)}"
        if set(KEYS) <= set(table.columns) and "position" not in table.columns:
            assert not got[name].duplicated(KEYS).any(), f"{name} has duplicate rows"
        # every table, training's included: a round trains from its own seed, whatever the process did before
        pd.testing.assert_frame_equal(got[name], table, obj=name)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert [s["checkpoint"] for s in summary["scores"]] == ["base", "round_0001"]
    print(f"kill points {len(KILL_POINTS)}, resumed {resumed}, rows lost {lost}")
    assert resumed == len(KILL_POINTS) and lost == 0


def _descendants(pid: int) -> set[int]:
    import psutil

    try:
        return {p.pid for p in psutil.Process(pid).children(recursive=True)}
    except psutil.NoSuchProcess:
        return set()


def _alive(pids: set[int]) -> set[int]:
    import psutil

    return {p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE}


@pytest.mark.vllm
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "ctrl-c"])
def test_stopping_a_run_leaves_no_engine_process_behind(api_url, tiny_model_path, tmp_path, sig):
    env = {**os.environ, "PREFECT_API_URL": api_url}
    command = [
        sys.executable,
        "-m",
        "cli.main",
        "run",
        "--config",
        "configs/smoke.yaml",
        "--run-dir",
        str(tmp_path / "run"),
        *(a for item in RECIPE for a in ("--set", item)),
        "--set",
        "rollout.engine=vllm",
        "--set",
        "rollout.vllm.max_model_len=512",
    ]
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    seen: set[int] = set()
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and len(seen) < 2:  # the engine core (and its worker) have started
        seen |= _descendants(process.pid)
        time.sleep(0.5)
    assert process.poll() is None and seen, "the run ended before its engine started"
    time.sleep(2)
    seen |= _descendants(process.pid)
    process.send_signal(sig)
    assert process.wait(timeout=120) != 0
    deadline = time.monotonic() + 30
    while _alive(seen) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _alive(seen) == set(), f"left behind: {_alive(seen)}"
