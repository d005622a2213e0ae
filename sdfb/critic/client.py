"""A bounded-concurrency client for OpenAI-compatible chat endpoints (vLLM's server, hosted APIs).

Retries with exponential back-off on 408/409/429/5xx, connection errors and timeouts are the `openai` SDK's
own; this module adds the concurrency bound, a deadline per request (all retries included), per-request
results that never raise, and a callback per finished request so callers can keep partial progress. The API
key is passed in, never logged and never part of an error message.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChatResult:
    text: str | None  # None when no reply came back
    error: str = ""  # why not; empty when text is set
    seconds: float = 0.0
    completion_tokens: int = 0


@dataclass
class ClientStats:
    requests: int = 0  # chat requests made (each may take several HTTP attempts)
    http_attempts: int = 0  # HTTP requests sent, retries included
    http_statuses: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)  # kind of failure -> requests that ended in it
    seconds: float = 0.0  # wall time of the whole batch
    completion_tokens: int = 0
    request_seconds: float = 0.0  # summed over requests, queueing behind the concurrency bound excluded

    def as_dict(self) -> dict:
        return {
            "requests": self.requests,
            "http_attempts": self.http_attempts,
            "retries": max(self.http_attempts - self.requests, 0),
            "http_statuses": {str(k): v for k, v in sorted(self.http_statuses.items())},
            "errors": dict(self.errors),
            "seconds": round(self.seconds, 3),
            "completion_tokens": self.completion_tokens,
            "mean_request_seconds": round(self.request_seconds / self.requests, 3) if self.requests else 0.0,
        }


@dataclass(frozen=True)
class Endpoint:
    base_url: str
    model: str
    api_key: str | None
    concurrency: int = 8
    max_retries: int = 4
    request_timeout: float = 120.0
    deadline: float = 600.0


def _describe(exc: BaseException) -> tuple[str, str]:
    """(kind, message) of a failed request, without the request's headers (the key lives there)."""
    import openai

    if isinstance(exc, asyncio.TimeoutError):
        return "deadline", "the request's deadline passed (critic.openai.deadline_seconds), retries included"
    if isinstance(exc, openai.APITimeoutError):
        return "timeout", "timed out on every attempt (critic.openai.request_timeout_seconds)"
    if isinstance(exc, openai.APIConnectionError):
        return "connection", f"could not connect: {exc.__cause__ or exc}"
    if isinstance(exc, openai.APIStatusError):
        return f"http_{exc.status_code}", f"HTTP {exc.status_code}: {str(exc.message)[:200]}"
    if isinstance(
        exc, openai.APIResponseValidationError | ValueError | TypeError | AttributeError | IndexError
    ):
        return "invalid_response", f"the reply is not a chat completion: {str(exc)[:200]}"
    raise exc


def chat_many(
    conversations: list[list[dict[str, str]]],
    endpoint: Endpoint,
    sampling: dict,
    on_done: Callable[[int, ChatResult], None] | None = None,
) -> tuple[list[ChatResult], ClientStats]:
    """One chat completion per conversation, at most `endpoint.concurrency`
    in flight; never raises for a request.

    `on_done(i, result)` runs as each request finishes, so a failure
    later in the batch loses nothing finished.
    """
    coro = _chat_all(conversations, endpoint, sampling, on_done)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:  # called from async code: use a loop of our own
        return pool.submit(asyncio.run, coro).result()


def _client(endpoint: Endpoint, stats: ClientStats):
    """An async OpenAI client whose HTTP hooks count attempts (retries included) and response statuses."""
    import openai

    async def count_request(_request) -> None:
        stats.http_attempts += 1

    async def count_response(response) -> None:
        stats.http_statuses[response.status_code] += 1

    http_client = openai.DefaultAsyncHttpxClient(
        event_hooks={"request": [count_request], "response": [count_response]}
    )
    return openai.AsyncOpenAI(
        base_url=endpoint.base_url,
        api_key=endpoint.api_key or "EMPTY",  # local servers take any key
        max_retries=endpoint.max_retries,
        timeout=endpoint.request_timeout,
        http_client=http_client,
    )


async def _chat_one(client, messages, endpoint: Endpoint, sampling: dict, stats: ClientStats) -> ChatResult:
    """One request under its deadline (all retries included); every
    failure becomes a ChatResult with a reason."""
    import openai

    started = time.perf_counter()
    try:
        reply = await asyncio.wait_for(
            client.chat.completions.create(model=endpoint.model, messages=messages, **sampling),
            endpoint.deadline,
        )
        choice = reply.choices[0]
        text = choice.message.content or ""
        if not isinstance(text, str):
            raise TypeError(f"message content is {type(text).__name__}, not text")
        tokens = reply.usage.completion_tokens if reply.usage else 0
        return ChatResult(text, "", time.perf_counter() - started, tokens)
    except (TimeoutError, openai.OpenAIError, ValueError, TypeError, AttributeError, IndexError) as exc:
        kind, message = _describe(exc)
        if endpoint.api_key:  # a server may echo the request's key in its error text
            message = message.replace(endpoint.api_key, "[redacted]")
        stats.errors[kind] += 1
        return ChatResult(None, message, time.perf_counter() - started)


async def _chat_all(conversations, endpoint: Endpoint, sampling: dict, on_done):
    stats = ClientStats(requests=len(conversations))
    client = _client(endpoint, stats)
    gate = asyncio.Semaphore(endpoint.concurrency)
    results: list[ChatResult | None] = [None] * len(conversations)

    async def one(i: int, messages: list[dict[str, str]]) -> None:
        async with gate:
            result = await _chat_one(client, messages, endpoint, sampling, stats)
        results[i] = result
        stats.completion_tokens += result.completion_tokens
        stats.request_seconds += result.seconds
        if on_done is not None:
            on_done(i, result)

    started = time.perf_counter()
    try:
        await asyncio.gather(*(one(i, m) for i, m in enumerate(conversations)))
    finally:
        await client.close()
    stats.seconds = time.perf_counter() - started
    return results, stats
