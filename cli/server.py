"""Prefect's temporary API server, started by `sdfb run` / `sdfb experiment` as their first step when no
PREFECT_API_URL is set, so its boot overlaps the loading of torch and the flows instead of following it.

Prefect itself starts the same server (uvicorn on 127.0.0.1, UI off) only when the flow is first
called, and imports its whole server package in the command's own process to do so. Set
SDFB_EARLY_SERVER=0 to leave it to Prefect. The server is one of the command's child processes and
ends with them (`common.end_children`).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cli.common import send_logs


@dataclass
class EarlyServer:
    process: subprocess.Popen
    url: str

    def wait(self, timeout: float = 120.0) -> None:
        """Block until the API answers. A server that exited (a port taken meanwhile) hands the job back to
        Prefect, which starts its own."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                os.environ.pop("PREFECT_API_URL", None)
                return
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"Prefect's temporary server at {self.url} did not answer within {timeout:.0f}s")


def start_early_server() -> EarlyServer | None:
    """Start the temporary server unless a server is configured (PREFECT_API_URL, in the environment or the
    active Prefect profile) or SDFB_EARLY_SERVER=0; PREFECT_API_URL then points this process at it."""
    if (
        os.environ.get("SDFB_EARLY_SERVER", "1") == "0"
        or os.environ.get("PREFECT_API_URL")
        or _profile_api_url()
    ):
        return None
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    import importlib.util

    app_dir = Path(importlib.util.find_spec("prefect").origin).parent.parent
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--app-dir",
            str(app_dir),
            "--factory",
            "prefect.server.api.server:create_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "error",
            "--lifespan",
            "on",
        ],
        env={
            **os.environ,
            "PREFECT_UI_ENABLED": "0",
            "PREFECT__SERVER_EPHEMERAL": "1",
            "PREFECT__SERVER_FINAL": "1",
        },
    )
    url = f"http://127.0.0.1:{port}/api"
    os.environ["PREFECT_API_URL"] = url
    return EarlyServer(process, url)


def _profile_api_url() -> bool:
    """Whether the active Prefect profile sets an API URL (`prefect config set PREFECT_API_URL=...`); read
    from the profiles file without importing prefect."""
    import tomllib

    home = Path(os.environ.get("PREFECT_HOME", Path.home() / ".prefect")).expanduser()
    path = Path(os.environ.get("PREFECT_PROFILES_PATH", home / "profiles.toml")).expanduser()
    try:
        profiles = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return False
    active = os.environ.get("PREFECT_PROFILE") or profiles.get("active", "ephemeral")
    return bool(profiles.get("profiles", {}).get(active, {}).get("PREFECT_API_URL"))


@contextlib.contextmanager
def early_server() -> Iterator[EarlyServer | None]:
    """`start_early_server` for the block; afterwards the run's last log lines are sent, the server stopped
    and PREFECT_API_URL restored (the CLI may be called again in one process)."""
    before = os.environ.get("PREFECT_API_URL")
    server = start_early_server()
    try:
        yield server
    finally:
        if server is not None:
            send_logs()
            server.process.terminate()
            try:
                server.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                server.process.kill()
                server.process.wait()
            if before is None:
                os.environ.pop("PREFECT_API_URL", None)
            else:
                os.environ["PREFECT_API_URL"] = before
