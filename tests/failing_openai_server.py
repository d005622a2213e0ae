"""A tiny OpenAI-compatible `/v1/chat/completions` server on 127.0.0.1 that
fails on purpose, for failure paths only.

The success path is tested against a real vLLM server elsewhere; this one only imitates what can go
wrong (errors, rate limits, stalls, bodies that are not chat completions) and answers `ok` where a
test must see a retry succeed. Standard library only (`http.server.ThreadingHTTPServer` in a
background thread); not a test module.

How a request is answered (its "mode"), first rule that applies:
  1. `server.force`, when set: every request;
  2. the next entry of `script`, consumed one HTTP request at a time (retries included);
  3. a marker `[[mode:NAME]]` in the last user message, so one conversation can fail while others succeed;
  4. `default`.
Modes: ok, 500, 429 (with `Retry-After`), slow (stalls past the client's timeout, then answers ok), garbage
(200, text/html, not JSON), empty (a chat completion whose content is ""), not_chat (200 JSON `{"hello":
1}`), drop (closes the connection without answering).
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODES = ("ok", "500", "429", "slow", "garbage", "empty", "not_chat", "drop")
_MARKER = re.compile(r"\[\[mode:([a-z0-9_]+)\]\]")


def marker(mode: str) -> str:
    """Text to put in a user message so that conversation is answered
    with `mode` (unless forced or scripted)."""
    assert mode in MODES, f"unknown mode {mode!r}; known: {MODES}"
    return f"[[mode:{mode}]]"


@dataclass(frozen=True)
class Received:
    path: str
    mode: str
    authorization: str | None
    body: Any  # the parsed JSON body, or None when it was not JSON

    @property
    def last_user_message(self) -> str:
        messages = self.body.get("messages", []) if isinstance(self.body, dict) else []
        users = [m.get("content", "") for m in messages if m.get("role") == "user"]
        return users[-1] if users else ""


class FailingOpenAIServer:
    def __init__(
        self,
        script: Iterable[str] = (),
        default: str = "ok",
        reply: str = "a reply",
        completion_tokens: int = 7,
        ok_delay: float = 0.0,  # seconds an ok answer takes (to see concurrency)
        slow_seconds: float = 30.0,  # how long `slow` stalls (cut short when the server stops)
        retry_after: str = "0",
    ):
        self.script: deque[str] = deque(script)
        for mode in (*self.script, default):
            assert mode in MODES, f"unknown mode {mode!r}; known: {MODES}"
        self.default = default
        self.force: str | None = None
        self.reply = reply
        self.completion_tokens = completion_tokens
        self.ok_delay = ok_delay
        self.slow_seconds = slow_seconds
        self.retry_after = retry_after
        self.received: list[Received] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- what tests read ---
    @property
    def base_url(self) -> str:
        assert self._httpd is not None, "start the server first"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.received)

    @property
    def authorizations(self) -> list[str | None]:
        with self._lock:
            return [r.authorization for r in self.received]

    def modes(self) -> list[str]:
        with self._lock:
            return [r.mode for r in self.received]

    # --- lifecycle ---
    def start(self) -> FailingOpenAIServer:
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        httpd.daemon_threads = True  # a stalled handler never holds up stop()
        httpd.owner = self  # type: ignore[attr-defined]
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()  # wakes stalled handlers
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FailingOpenAIServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- used by the handler ---
    def _choose(self, body: Any) -> str:
        with self._lock:
            if self.force is not None:
                return self.force
            if self.script:
                return self.script.popleft()
        text = Received("", "", None, body).last_user_message
        found = _MARKER.search(text) if isinstance(text, str) else None
        return found.group(1) if found and found.group(1) in MODES else self.default

    def _enter(self) -> None:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def _record(self, received: Received) -> None:
        with self._lock:
            self.received.append(received)

    def _leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def _wait(self, seconds: float) -> None:
        self._stop.wait(seconds)

    def completion(self, body: Any, content: str) -> dict:
        model = body.get("model", "") if isinstance(body, dict) else ""
        return {
            "id": "chatcmpl-failing-server",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": {
                "prompt_tokens": 3,
                "completion_tokens": self.completion_tokens,
                "total_tokens": 3 + self.completion_tokens,
            },
        }


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive with Content-Length, as real servers answer

    def log_message(self, *args) -> None:
        pass  # keep the test output clean

    def do_POST(self) -> None:
        owner: FailingOpenAIServer = self.server.owner  # type: ignore[attr-defined]
        owner._enter()
        try:
            body: Any = None
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with contextlib.suppress(ValueError):
                body = json.loads(raw)
            routed = self.path.rstrip("/") == "/v1/chat/completions"
            mode = owner._choose(body) if routed else "not_found"
            owner._record(Received(self.path, mode, self.headers.get("Authorization"), body))
            if routed:
                self._answer(owner, mode, body)
            else:
                self._send(404, {"error": {"message": f"no route {self.path}"}})
        except ConnectionError:
            pass  # the client gave up (its timeout or deadline): nobody is left to answer
        finally:
            owner._leave()

    def _answer(self, owner: FailingOpenAIServer, mode: str, body: Any) -> None:
        if mode == "ok":
            owner._wait(owner.ok_delay)
            self._send(200, owner.completion(body, owner.reply))
        elif mode == "500":
            self._send(
                500, {"error": {"message": "the failing server failed on purpose", "type": "server_error"}}
            )
        elif mode == "429":
            self._send(
                429,
                {"error": {"message": "rate limited on purpose", "type": "rate_limit"}},
                {"Retry-After": owner.retry_after},
            )
        elif mode == "slow":
            owner._wait(owner.slow_seconds)
            self._send(200, owner.completion(body, owner.reply))
        elif mode == "garbage":
            self._send_bytes(200, b"<html><body>502 Bad Gateway from a proxy</body></html>", "text/html")
        elif mode == "empty":
            self._send(200, owner.completion(body, ""))
        elif mode == "not_chat":
            self._send(200, {"hello": 1})
        elif mode == "drop":
            self.close_connection = True  # no status line at all: the client sees the connection close
        else:
            raise AssertionError(f"unknown mode {mode!r}")

    def _send(self, status: int, payload: dict, headers: dict[str, str] | None = None) -> None:
        self._send_bytes(status, json.dumps(payload).encode(), "application/json", headers)

    def _send_bytes(
        self, status: int, data: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()


@contextlib.contextmanager
def failing_openai_server(**kwargs) -> Iterator[FailingOpenAIServer]:
    """`with failing_openai_server(script=["500", "ok"]) as server: ... server.base_url ...`"""
    server = FailingOpenAIServer(**kwargs).start()
    try:
        yield server
    finally:
        server.stop()


def closed_port_url() -> str:
    """A base_url on 127.0.0.1 where nothing listens (the port was free a moment ago)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"
