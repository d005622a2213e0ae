"""`sdfb run` as a real process against the session's Prefect server, for the tests that
kill it, break its input or fill its disk."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def sdfb_run(
    run_dir: Path,
    api_url: str,
    overrides: list[str] = (),
    kill_at: str = "",
    config: str = "configs/smoke.yaml",
    args: list[str] = (),
) -> subprocess.CompletedProcess:
    """Run `sdfb run --config CONFIG --run-dir RUN_DIR --set ... ARGS`;
    `kill_at` arms a kill point (`sdfb.faults`)."""
    env = {**os.environ, "PREFECT_API_URL": api_url, "SDFB_KILL_AT": kill_at}
    command = [sys.executable, "-m", "cli.main", "run", "--config", config, "--run-dir", str(run_dir)]
    command += [arg for item in overrides for arg in ("--set", item)] + list(args)
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
