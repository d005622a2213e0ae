"""`sdfb serve-critic` with an API key: the key reaches vLLM through its environment (never the command
line, which `ps` shows), and the readiness probe sends it, since vLLM then refuses /v1 requests without it."""

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
    monkeypatch.setattr(serve, "server_command", lambda *args, **kwargs: ["vllm-stand-in"])
    monkeypatch.setattr(serve.subprocess, "Popen", _Exited)
    with (
        pytest.raises(serve.ServerStartError),
        serve.vllm_server("tiny", api_key="k3y", log_file=tmp_path / "log"),
    ):
        pass
    assert _Exited.started["env"]["VLLM_API_KEY"] == "k3y"
    assert "k3y" not in " ".join(_Exited.started["command"])


class _Exited:
    """A stand-in for the server process that records its command line and exits at once."""

    returncode = 1
    started: dict = {}

    def __init__(self, command, env, **kwargs):
        _Exited.started = {"command": command, "env": env}

    def poll(self):
        return 1

    def terminate(self):
        pass

    def wait(self, timeout=None):
        return 1


def test_serve_critic_gives_vllm_the_engine_settings_and_the_arguments_after_the_separator(
    monkeypatch, tiny_model_path
):
    monkeypatch.setattr(serve.subprocess, "Popen", _Exited)
    args = ["serve-critic", "tiny", "-tp", "2", "--dtype", "bfloat16", "--max-model-len", "1024"]
    args += ["--kv-cache-gib", "0.1", "--no-prefix-caching", "--", "--max-num-seqs", "8", "--enforce-eager"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "exited with 1" in result.output  # the stand-in exited
    command = _Exited.started["command"]
    pairs = dict(zip(command, command[1:], strict=False))
    assert pairs["--tensor-parallel-size"] == "2" and pairs["--dtype"] == "bfloat16"
    assert pairs["--max-model-len"] == "1024" and "--no-enable-prefix-caching" in command
    assert command[-3:] == ["--max-num-seqs", "8", "--enforce-eager"]  # last, as given


def test_serve_critic_defaults_to_one_device_and_the_models_own_dtype(monkeypatch, tiny_model_path):
    command = serve.server_command("tiny", 8123, "tiny", 512, kv_cache_gib=0.1)
    pairs = dict(zip(command, command[1:], strict=False))
    assert pairs["--tensor-parallel-size"] == "1" and pairs["--dtype"] == "auto"


@pytest.mark.parametrize(
    ("passed", "named"),
    [
        (["--port", "9000"], "--port"),
        (["--max_model_len=9"], "--max-model-len"),
        (["-tp", "4"], "--tensor-parallel-size"),
        (["--api-key", "x"], "--api-key-env"),
    ],
)
def test_serve_critic_refuses_a_passed_through_flag_it_sets_itself_and_names_its_own_option(
    monkeypatch, passed, named
):
    monkeypatch.setattr(serve.subprocess, "Popen", _Exited)
    _Exited.started = {}
    result = CliRunner().invoke(app, ["serve-critic", "tiny", "--", *passed])
    assert result.exit_code == 2
    assert "set by sdfb serve-critic itself" in result.output and f"use {named}" in result.output
    assert not _Exited.started  # refused before anything started


def test_serve_critic_refuses_options_it_does_not_know_before_the_separator():
    result = CliRunner().invoke(app, ["serve-critic", "tiny", "--enforce-eager"])
    assert result.exit_code == 2 and "--enforce-eager" in result.output
