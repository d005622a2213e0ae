"""`sdfb run` without a configured Prefect server starts Prefect's
temporary server itself, first, and ends it."""

import os
import subprocess
import sys

import psutil
import pytest
from sdfb_process import ROOT

from cli.server import start_early_server


def _leftovers(home: str) -> list[int]:
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("PREFECT_HOME") == home:
                found.append(proc.pid)
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    return found


@pytest.mark.flow
def test_a_run_without_a_server_uses_the_one_it_started_first_and_ends_it(tmp_path):
    home = str(tmp_path / "prefect")
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"} | {"PREFECT_HOME": home}
    command = [sys.executable, "-m", "cli.main", "run", "--config", "configs/smoke.yaml"]
    command += ["--run-dir", str(tmp_path / "run"), "--set", "rounds=1", "--set", "eval.k=1"]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Starting temporary server" not in done.stdout + done.stderr  # Prefect did not start a second one
    assert (tmp_path / "run" / "summary.json").exists()
    assert (tmp_path / "run" / "report.html").stat().st_size > 0  # a single run draws its report too
    assert f"report: {tmp_path / 'run' / 'report.html'}" in done.stdout.replace("\n", "")
    assert _leftovers(home) == []


@pytest.mark.parametrize(
    "env", [{"PREFECT_API_URL": "http://127.0.0.1:4200/api"}, {"SDFB_EARLY_SERVER": "0"}]
)
def test_a_configured_server_or_the_opt_out_starts_nothing(monkeypatch, env):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert start_early_server() is None


def test_a_server_set_in_the_prefect_profile_starts_nothing(monkeypatch, tmp_path):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path))
    (tmp_path / "profiles.toml").write_text(
        'active = "team"\n[profiles.team]\nPREFECT_API_URL = "http://prefect.internal:4200/api"\n'
    )
    assert start_early_server() is None
