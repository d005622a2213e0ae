"""LLM critics: a frozen model prompted with the versioned critic prompt, served by an
in-process vLLM engine or any OpenAI-compatible endpoint, with every reply kept in the
content-addressed cache as soon as it arrives."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, Protocol

from sdfb.config import CriticConfig, SamplingConfig
from sdfb.critic.base import Critique, CritiqueRequest
from sdfb.critic.cache import CritiqueCache, cache_key
from sdfb.critic.client import ChatResult, Endpoint, chat_many
from sdfb.critic.prompt import CriticPrompt, parse_reply
from sdfb.names import CriticCase, CritiqueStatus
from sdfb.prompts import parse_attempt

log = logging.getLogger(__name__)


class ChatBackend(Protocol):
    def complete(
        self, conversations: list[list[dict[str, str]]], on_done: Callable[[int, ChatResult], None]
    ) -> tuple[list[ChatResult], dict[str, Any]]: ...


class OpenAIBackend:
    def __init__(self, cfg: CriticConfig, api_key: str | None):
        ep = cfg.openai
        self.endpoint = Endpoint(
            base_url=ep.base_url,
            model=cfg.model or "",
            api_key=api_key,
            concurrency=ep.concurrency,
            max_retries=ep.max_retries,
            request_timeout=ep.request_timeout_seconds,
            deadline=ep.deadline_seconds,
        )
        d = cfg.decoding
        self.sampling = {
            "temperature": d.temperature,
            "top_p": d.top_p,
            "max_tokens": d.max_tokens,
            "seed": d.seed,
        }

    def complete(self, conversations, on_done):
        results, stats = chat_many(conversations, self.endpoint, self.sampling, on_done)
        return results, stats.as_dict()


class VLLMBackend:
    """The critic on an in-process engine of its own, started once per process (flow run), never with an
    adapter: the critic is frozen. Beside the solver's engine on one GPU, give the two engines memory
    shares that fit together (`critic.vllm.gpu_memory_utilization` and
    `rollout.vllm.gpu_memory_utilization`)."""

    def __init__(self, cfg: CriticConfig, seed: int):
        self.cfg = cfg
        self.seed = seed

    def complete(self, conversations, on_done):
        from sdfb.generation import vllm_engine

        started = time.perf_counter()
        engine = vllm_engine(
            self.cfg.model or "",
            self.cfg.dtype,
            self.cfg.vllm,
            self.seed,
            section="critic.vllm",
            trust_remote_code=self.cfg.trust_remote_code,
            lora=False,  # a critic never takes an adapter
        )
        engine.set_adapter(None)
        tok = engine.tokenizer
        prompts = [
            tok.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in conversations
        ]
        lengths = [len(tok(p, add_special_tokens=False)["input_ids"]) for p in prompts]
        fits = [i for i, n in enumerate(lengths) if n < engine.max_model_len]
        d = self.cfg.decoding
        sampling = SamplingConfig(
            temperature=d.temperature, top_p=d.top_p, top_k=0, max_new_tokens=d.max_tokens, n=1, seed=d.seed
        )
        generations = (
            engine.generate([prompts[i] for i in fits], sampling, want_logprobs=False) if fits else []
        )
        results: list[ChatResult] = [
            ChatResult(
                None,
                f"the critic prompt has {n} tokens, more than "
                f"critic.vllm.max_model_len={engine.max_model_len}",
            )
            for n in lengths
        ]
        for i, gen in zip(fits, generations, strict=True):
            completion = gen.completions[0]
            results[i] = ChatResult(completion.text, "", 0.0, len(completion.token_ids))
        for i, result in enumerate(results):
            on_done(i, result)
        errors = Counter("prompt_too_long" for r in results if r.text is None)
        return results, {
            "requests": len(conversations),
            "errors": dict(errors),
            "seconds": round(time.perf_counter() - started, 3),
        }


class LLMCritic:
    def __init__(
        self,
        name: str,
        backend: ChatBackend,
        prompt: CriticPrompt,
        identity: dict,
        cache: CritiqueCache | None,
    ):
        self.name = name
        self.backend = backend
        self.prompt = prompt
        self.identity = identity
        self.cache = cache
        self._stats: dict[str, Any] = {}

    def stats(self) -> dict[str, Any]:
        return dict(self._stats)

    def critique(self, requests: list[CritiqueRequest]) -> list[Critique]:
        attempts = [parse_attempt(r.attempt) for r in requests]
        out: list[Critique | None] = [None] * len(requests)
        todo: list[tuple[int, str]] = []
        for i, (request, attempt) in enumerate(zip(requests, attempts, strict=True)):
            if not attempt.steps:
                out[i] = Critique(
                    CriticCase.NONE,
                    -1,
                    "",
                    CritiqueStatus.NO_STEPS,
                    error="the attempt has no 'Step k:' lines to align with",
                )
                continue
            problem = {"id": request.problem_id, "question": request.question, "solution": request.solution}
            # Without the sampled ids (a request built by hand), the attempt's text identifies it instead.
            attempt_id = request.attempt_hash or hashlib.sha256(request.attempt.encode()).hexdigest()
            key = cache_key(problem, attempt_id, self.identity)
            reply = self.cache.get(key) if self.cache is not None else None
            if reply is not None:
                parsed = parse_reply(reply, attempt)
                out[i] = dataclasses.replace(parsed, from_cache=True)
            else:
                todo.append((i, key))

        def keep(j: int, result: ChatResult) -> None:
            if result.text is not None and self.cache is not None:
                self.cache.put(
                    todo[j][1],
                    result.text,
                    {"critic": self.identity, "problem_id": requests[todo[j][0]].problem_id},
                )

        conversations = [self.prompt.messages(requests[i], attempts[i]) for i, _ in todo]
        backend_stats: dict[str, Any] = {}
        if conversations:
            results, backend_stats = self.backend.complete(conversations, keep)
            for (i, _), result in zip(todo, results, strict=True):
                out[i] = (
                    parse_reply(result.text, attempts[i])
                    if result.text is not None
                    else Critique(CriticCase.NONE, -1, "", CritiqueStatus.FAILED, error=result.error)
                )
        self._stats = {
            "calls": len(conversations),
            "cache_hits": sum(1 for c in out if c is not None and c.from_cache),
            **{f"backend_{k}": v for k, v in backend_stats.items()},
        }
        return out  # type: ignore[return-value]
