"""Scheduled runs for real: a throwaway PostgreSQL, a real `prefect server` on it (docker/server.sh), a
real process worker (docker/worker.sh), the smoke deployment registered by `sdfb deploy`, run through the
worker to COMPLETED and checked through the REST API; an interval schedule that fires on its own; a worker
stopped mid-run leaving a crashed flow run that the next run of the deployment resumes, recomputing no
finished stage. The server runs with basic auth (PREFECT_SERVER_API_AUTH_STRING, as docker/server.sh
requires): every client below sends PREFECT_API_AUTH_STRING, and a request or worker without it is refused.

Marker `server`: in the default run. Needs the PostgreSQL binaries (initdb, pg_ctl) on PATH.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest
from sdfb_process import ROOT

pytestmark = [pytest.mark.server, pytest.mark.flow]

BIN = Path(sys.executable).parent
AUTH = ("sdfb-test", secrets.token_hex(12))  # the server's USER:PASSWORD
AUTH_STRING = ":".join(AUTH)


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_postgres(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root (CI containers), run it as the `postgres` user."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@pytest.fixture(scope="module")
def postgres():
    if not shutil.which("initdb") or not shutil.which("pg_ctl"):
        pytest.fail(
            "PostgreSQL binaries (initdb, pg_ctl) are not on PATH; install PostgreSQL to run this test"
        )
    root = Path(
        tempfile.mkdtemp(prefix="sdfb-pg-")
    )  # not under pytest's folder: the postgres user must reach it
    data, port = root / "data", _port()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
    subprocess.run(
        _as_postgres(["initdb", "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"]),
        check=True,
        capture_output=True,
    )
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1"
    start = ["pg_ctl", "-D", str(data), "-l", str(root / "log"), "-w", "-t", "60", "-o", options, "start"]
    subprocess.run(_as_postgres(start), check=True, capture_output=True)
    try:
        _sql(port, "CREATE ROLE prefect LOGIN PASSWORD 'prefect-pw'", "CREATE DATABASE prefect OWNER prefect")
        yield f"postgresql+asyncpg://prefect:prefect-pw@127.0.0.1:{port}/prefect"
    finally:
        subprocess.run(_as_postgres(["pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop"]))
        shutil.rmtree(root, ignore_errors=True)


def _sql(port: int, *statements: str) -> None:
    import asyncio

    import asyncpg

    async def run():
        conn = await asyncpg.connect(host="127.0.0.1", port=port, user="postgres", database="postgres")
        try:
            for statement in statements:
                await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(run())


def _start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """A process in its own group (stopped with its children), output to `log`."""
    return subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True
    )


def _stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, grace: float = 20) -> None:
    """`sig` to the process and every process it started, then SIGKILL to whatever is left after `grace`
    seconds: how systemd stops a service (its whole control group). A worker starts each flow run in a
    session of its own, so the runs get the signal too and report their state first."""
    import psutil

    try:
        tree = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        tree = []
    for member in tree:
        with contextlib.suppress(psutil.NoSuchProcess):
            member.send_signal(sig)
    _, alive = psutil.wait_procs(tree, timeout=grace)
    for member in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            member.kill()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.fixture(scope="module")
def server(postgres, tmp_path_factory):
    home = tmp_path_factory.mktemp("prefect-home")
    port = _port()
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env |= {
        "PATH": f"{BIN}:{env['PATH']}",
        "PREFECT_HOME": str(home),
        "PREFECT_API_DATABASE_CONNECTION_URL": postgres,
        "SDFB_SERVER_HOST": "127.0.0.1",
        "SDFB_SERVER_PORT": str(port),
        "PREFECT_SERVER_API_AUTH_STRING": AUTH_STRING,
        "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "2",  # schedules fire within seconds
        "PREFECT_UI_ENABLED": "false",
    }
    proc = _start(["bash", "docker/server.sh"], env, home / "server.log")
    url = f"http://127.0.0.1:{port}/api"
    try:
        _wait(lambda: _healthy(url), 120, f"the Prefect server ({home / 'server.log'})", proc)
        yield {"url": url, "home": home, "env": env}
    finally:
        _stop(proc)


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _wait(check, timeout: float, what: str, proc: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"{what} exited with {proc.returncode}")
        time.sleep(1)
    pytest.fail(f"{what}: not ready within {timeout:.0f}s")


def _client_env(server, **extra) -> dict[str, str]:
    server_only = ("PREFECT_API_DATABASE", "PREFECT_SERVER_API_AUTH", "SDFB_SERVER")
    env = {k: v for k, v in server["env"].items() if not k.startswith(server_only)}
    return env | {"PREFECT_API_URL": server["url"], "PREFECT_API_AUTH_STRING": AUTH_STRING} | extra


def _worker(server, pool: str, log: Path) -> subprocess.Popen:
    # SDFB_GPU_SLOT=1: runs take a slot of the sdfb-gpu limit (worker.sh creates it) as they would on a GPU
    env = _client_env(server, SDFB_POOL=pool, SDFB_WORKER_NAME=f"test-{log.stem}", SDFB_GPU_SLOT="1")
    return _start(["bash", "docker/worker.sh"], env, log)


def _api(server, method: str, path: str, **body):
    response = httpx.request(
        method, f"{server['url']}{path}", json=body if method == "POST" else None, timeout=30, auth=AUTH
    )
    response.raise_for_status()
    return response.json()


def _deployments_file(tmp: Path, run_dir: Path) -> Path:
    """The smoke deployment writing into `run_dir`, and one with a 2-second schedule (deployed to a pool no
    worker polls: its runs are created by the scheduler and never executed)."""
    file = tmp / "prefect.yaml"
    smoke = {"config": "configs/smoke.yaml", "overrides": ["rounds=1", "eval.k=1"], "run_dir": str(run_dir)}
    file.write_text(
        json.dumps(
            {
                "deployments": [
                    {
                        "name": "smoke-test",
                        "entrypoint": "flows/deployments.py:run_recipe",
                        "parameters": smoke,
                    },
                    {
                        "name": "every-2s",
                        "entrypoint": "flows/deployments.py:run_recipe",
                        "parameters": smoke | {"run_dir": str(tmp / "never")},
                        "schedules": [{"interval": 2, "active": True}],
                    },
                ]
            }
        )
    )
    return file


def _sdfb(server, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "cli.main", *args]
    return subprocess.run(cmd, cwd=ROOT, env=_client_env(server), capture_output=True, text=True, timeout=300)


def _run_deployment(server, name: str) -> str:
    dep = _api(server, "GET", f"/deployments/name/sdfb-run/{name}")
    return _api(server, "POST", f"/deployments/{dep['id']}/create_flow_run")["id"]


def _final_state(server, flow_run: str, timeout: float = 600) -> dict:
    def done():
        state = _api(server, "GET", f"/flow_runs/{flow_run}")["state"]
        return state if state["type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED") else None

    return _wait(done, timeout, f"flow run {flow_run}")


def _manifests(run_dir: Path) -> dict[str, str]:
    return {
        str(p.relative_to(run_dir)): json.loads(p.read_text())["written_at"]
        + json.loads(p.read_text())["content_hash"]
        for p in run_dir.rglob("*.manifest.json")
    }


def test_a_deployment_runs_through_a_worker_on_postgres_and_resumes_after_the_worker_dies(server, tmp_path):
    run_dir = tmp_path / "run"
    pool = "sdfb-test"
    worker = _worker(server, pool, tmp_path / "worker-1.log")
    try:
        _wait(lambda: _pool_ready(server, pool), 120, "the worker's pool", worker)
        file = str(_deployments_file(tmp_path, run_dir))
        deployed = _sdfb(
            server, "deploy", "--pool", pool, "--file", file, "--only", "smoke-test", "--zombie-seconds", "40"
        )
        assert deployed.returncode == 0, deployed.stderr[-2000:]
        _api(server, "POST", "/work_pools/", name="idle", type="process")  # no worker polls it
        deployed = _sdfb(server, "deploy", "--pool", "idle", "--file", file, "--only", "every-2s")
        assert deployed.returncode == 0, deployed.stderr[-2000:]

        # 1. A run of the deployment completes through the worker; its tasks and artifacts are on the server.
        first = _run_deployment(server, "smoke-test")
        state = _final_state(server, first)
        assert state["type"] == "COMPLETED", (state, (tmp_path / "worker-1.log").read_text()[-3000:])
        runs = _api(server, "POST", "/flow_runs/filter")
        child = [r for r in runs if r["parent_task_run_id"] and r["state"]["type"] == "COMPLETED"]
        assert child and "model:tiny" in child[0]["tags"]  # the pipeline subflow says what runs
        assert _api(server, "GET", f"/flow_runs/{first}")["name"].startswith("smoke-step_aligned-")
        task_runs = _api(
            server, "POST", "/task_runs/filter", flow_runs={"id": {"any_": [r["id"] for r in child]}}
        )
        names = {t["name"].split(" (")[0] for t in task_runs if t["state"]["type"] == "COMPLETED"}
        assert {"rollouts", "grades", "distill", "scores", "summary"} <= names
        keys = {a["key"] for a in _api(server, "POST", "/artifacts/filter")}
        assert any(k and k.endswith("results") for k in keys), keys
        assert (run_dir / "summary.json").exists()
        logs = _api(server, "POST", "/logs/filter", logs={"flow_run_id": {"any_": [r["id"] for r in child]}})
        assert any("holding a slot of sdfb-gpu" in log["message"] for log in logs)
        limit = _api(server, "GET", "/v2/concurrency_limits/sdfb-gpu")
        assert (limit["limit"], limit["active_slots"]) == (1, 0)  # taken during the run, given back after it

        # 2. The interval schedule fires on its own (the scheduler service creates its runs).
        scheduled = _api(server, "GET", "/deployments/name/sdfb-run/every-2s")
        fired = _wait(
            lambda: _api(
                server, "POST", "/flow_runs/filter", deployments={"id": {"any_": [scheduled["id"]]}}
            ),
            60,
            "a scheduled run",
        )
        assert fired[0]["auto_scheduled"] or fired[0]["created_by"] is None
        _api(server, "POST", f"/deployments/{scheduled['id']}/pause_deployment")

        # 3. A second run in a fresh folder; once round 1's critiques are written the worker and its flow run
        # are killed outright (SIGKILL: a lost machine). Their heartbeats stop, and the automation `sdfb
        # deploy` created marks the run CRASHED.
        shutil.rmtree(run_dir)
        second = _run_deployment(server, "smoke-test")
        _wait(lambda: (run_dir / "round_0001" / "critiques.parquet.manifest.json").exists(), 600, "round 1")
        _stop(worker, signal.SIGKILL, grace=10)
        state = _final_state(server, second, timeout=240)
        assert state["type"] == "CRASHED", state
        children = [r for r in _api(server, "POST", "/flow_runs/filter") if r["parent_task_run_id"]]
        inner = [r for r in children if r["id"] not in {c["id"] for c in child}]
        assert inner and all(
            _final_state(server, r["id"], timeout=120)["type"] == "CRASHED" for r in inner
        ), inner  # the pipeline subflow inside it too: it sent heartbeats of its own
        before = _manifests(run_dir)
        assert "summary.json" not in {p.name for p in run_dir.iterdir()}

        # 4. A new worker runs the deployment again: it finishes, and no finished stage was computed again.
        worker = _worker(server, pool, tmp_path / "worker-2.log")
        third = _run_deployment(server, "smoke-test")
        assert _final_state(server, third)["type"] == "COMPLETED"
        after = _manifests(run_dir)
        recomputed = [path for path, stamp in before.items() if after.get(path) != stamp]
        assert recomputed == []
        assert set(after) > set(before)  # the unfinished stages, and only those, were computed
        print(  # the figures the README reports (pytest -s)
            f"resumed after the kill: {len(before)} finished outputs kept, {len(recomputed)} recomputed, "
            f"{len(set(after) - set(before))} unfinished ones computed"
        )
    finally:
        _stop(worker)


def _pool_ready(server, pool: str) -> bool:
    try:
        _api(server, "GET", f"/work_pools/{pool}")
        return True
    except httpx.HTTPStatusError:
        return False


def test_deploying_a_missing_or_invalid_config_fails_at_deploy_time(server, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ndistill: {learning_rte: 0.1}\n")
    file = tmp_path / "prefect.yaml"
    for config, message in ((str(tmp_path / "missing.yaml"), "does not exist"), (str(bad), "learning_rte")):
        entry = {
            "name": "x",
            "entrypoint": "flows/deployments.py:run_recipe",
            "parameters": {"config": config},
        }
        file.write_text(json.dumps({"deployments": [entry]}))
        done = _sdfb(server, "deploy", "--pool", "any", "--file", str(file))
        assert done.returncode == 2 and message in done.stderr and "deployment 'x'" in done.stderr


def test_sdfb_serve_runs_a_deployment_without_a_pool_or_worker(server, tmp_path):
    """`sdfb serve` (Prefect's serve) registers the deployments and
    runs what is started from the API itself."""
    run_dir = tmp_path / "served"
    params = {"config": "configs/smoke.yaml", "overrides": ["rounds=1", "eval.k=1"], "run_dir": str(run_dir)}
    entry = {"name": "served", "entrypoint": "flows/deployments.py:run_recipe", "parameters": params}
    file = tmp_path / "prefect.yaml"
    file.write_text(json.dumps({"deployments": [entry]}))
    cmd = [sys.executable, "-m", "cli.main", "serve", "--file", str(file)]
    served = _start(cmd, _client_env(server), tmp_path / "serve.log")
    try:
        _wait(lambda: _deployment_exists(server, "served"), 120, "the served deployment", served)
        run = _run_deployment(server, "served")
        state = _final_state(server, run)
        assert state["type"] == "COMPLETED", (tmp_path / "serve.log").read_text()[-3000:]
        assert (run_dir / "summary.json").exists()
    finally:
        _stop(served, signal.SIGINT)


def _deployment_exists(server, name: str) -> bool:
    try:
        _api(server, "GET", f"/deployments/name/sdfb-run/{name}")
        return True
    except httpx.HTTPStatusError:
        return False


def _without_vllm(tmp_path: Path) -> str:
    """A PYTHONPATH entry whose `vllm` module fails to import: how a machine without vLLM looks to Python
    (a stand-in for the failure path: uninstalling vLLM from the shared test environment is not an option)."""
    shadow = tmp_path / "no-vllm"
    shadow.mkdir()
    (shadow / "vllm.py").write_text("raise ImportError('No module named vllm')\n")
    return str(shadow)


def test_a_worker_without_vllm_says_which_extra_to_install(server, tmp_path):
    env = _client_env(server, SDFB_POOL="no-vllm", PYTHONPATH=_without_vllm(tmp_path))
    worker = _start(["bash", "docker/worker.sh"], env, tmp_path / "worker.log")
    try:
        log = tmp_path / "worker.log"
        _wait(lambda: "vllm is not installed" in log.read_text(), 120, "the warning", worker)
        assert "make install-vllm " in log.read_text() and "docs/install.md" in log.read_text()
    finally:
        _stop(worker)


def test_a_run_that_needs_vllm_where_it_is_missing_says_which_extra_to_install(server, tmp_path):
    env = _client_env(server, PYTHONPATH=_without_vllm(tmp_path))
    cmd = [
        sys.executable,
        "-m",
        "cli.main",
        "run",
        "--config",
        "configs/smoke.yaml",
        "--run-dir",
        str(tmp_path / "r"),
    ]
    done = subprocess.run(
        [*cmd, "--set", "rollout.engine=vllm"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert "vLLM is not installed" in done.stderr and "make install-vllm`" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_api_refuses_whoever_lacks_the_auth_string_and_serves_whoever_has_it(server, tmp_path):
    url = server["url"]
    assert (
        httpx.get(f"{url}/health", timeout=10).status_code == 200
    )  # probes stay open (compose healthchecks)
    for auth in (None, ("sdfb-test", "wrong"), ("intruder", AUTH[1])):
        refused = httpx.post(f"{url}/flow_runs/filter", json={}, auth=auth, timeout=10)
        assert refused.status_code == 401, (auth, refused.text)
        assert (
            httpx.get(f"{url}/deployments/name/sdfb-run/smoke-test", auth=auth, timeout=10).status_code == 401
        )
    assert httpx.post(f"{url}/flow_runs/filter", json={}, auth=AUTH, timeout=10).status_code == 200
    assert _events_socket_refused(url, token=None) and _events_socket_refused(url, token="wrong")
    assert not _events_socket_refused(url, token=AUTH_STRING)

    env = _client_env(server, SDFB_POOL="no-auth", SDFB_WORKER_NAME="test-no-auth", SDFB_API_WAIT="10")
    del env["PREFECT_API_AUTH_STRING"]
    worker = subprocess.run(
        ["bash", "docker/worker.sh"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert worker.returncode == 2, worker.stderr[-2000:]
    assert "HTTP 401" in worker.stderr and "PREFECT_API_AUTH_STRING is not set" in worker.stderr
    assert AUTH[1] not in worker.stdout + worker.stderr


def _events_socket_refused(url: str, token: str | None) -> bool:
    """Whether the server's event stream (a websocket, outside the HTTP middleware) turns this client away: it
    authenticates with a first `auth` message carrying the auth string."""
    import asyncio

    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    async def attempt() -> bool:
        socket_url = url.replace("http", "ws", 1) + "/events/out"
        async with connect(socket_url, subprotocols=["prefect"], open_timeout=10) as ws:
            await ws.send(json.dumps({"type": "auth", "token": token}))
            try:
                reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
            except ConnectionClosed:
                return True
            return reply.get("type") != "auth_success"

    return asyncio.run(attempt())
