"""`sdfb serve-critic` with an API key: the key reaches vLLM through its environment (never the command line, which
`ps` shows), and the readiness probe sends it, since vLLM then refuses /v1 requests without it."""

import contextlib
import http.server
import threading

import pytest
from typer.testing import CliRunner

from cli.main import app
from sdfb.critic import serve


class _NeedsKey(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (the http.server name)
        ok = self.headers.get("Authorization") == "Bearer k3y"
        body = b'{"data": [{"id": "tiny"}]}' if ok else b'{"error": "Unauthorized"}'
        self.send_response(200 if ok else 401)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def keyed_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NeedsKey)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def test_the_readiness_probe_sends_the_api_key_a_keyed_server_requires(keyed_server):
    assert not serve._ready(keyed_server)
    assert not serve._ready(keyed_server, "wrong")
    assert serve._ready(keyed_server, "k3y")


def test_serve_critic_gives_the_server_the_key_from_the_named_variable(monkeypatch):
    seen = {}

    @contextlib.contextmanager
    def fake_server(model, **kwargs):
        seen.update(kwargs)
        yield "http://127.0.0.1:1/v1"

    def stop(_seconds):
        raise KeyboardInterrupt

    monkeypatch.setattr(serve, "vllm_server", fake_server)
    monkeypatch.setattr("time.sleep", stop)
    monkeypatch.setenv("MY_CRITIC_KEY", "s3cret-value")
    result = CliRunner().invoke(app, ["serve-critic", "tiny", "--api-key-env", "MY_CRITIC_KEY"])
    assert result.exit_code == 0, result.output
    assert seen["api_key"] == "s3cret-value"
    assert "API key: $MY_CRITIC_KEY" in result.stdout and "s3cret-value" not in result.stdout

    monkeypatch.delenv("MY_CRITIC_KEY")
    result = CliRunner().invoke(app, ["serve-critic", "tiny", "--api-key-env", "MY_CRITIC_KEY"])
    assert result.exit_code == 0 and seen["api_key"] is None and "no API key" in result.stdout


def test_the_key_goes_to_vllm_in_its_environment_not_on_its_command_line(monkeypatch, tmp_path):
    started = {}

    class Exited:
        returncode = 1

        def __init__(self, command, env, **kwargs):
            started.update(command=command, env=env)

        def poll(self):
            return 1

        def terminate(self):
            pass

        def wait(self, timeout=None):
            return 1

    monkeypatch.setattr(serve, "server_command", lambda *args: ["vllm-stand-in"])
    monkeypatch.setattr(serve.subprocess, "Popen", Exited)
    with (
        pytest.raises(serve.ServerStartError),
        serve.vllm_server("tiny", api_key="k3y", log_file=tmp_path / "log"),
    ):
        pass
    assert started["env"]["VLLM_API_KEY"] == "k3y"
    assert "k3y" not in " ".join(started["command"])
