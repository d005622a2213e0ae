"""The generation interface: what a backend returns (exact sampled ids and their log-probs) and the protocol
every backend implements. No model code here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from sdfb.config import SamplingConfig


@dataclass(frozen=True)
class Completion:
    token_ids: list[int]  # sampled ids, including the end-of-sequence token when the model stopped
    logprobs: list[float]  # log p(token) under the raw logits, one per token id
    text: str  # decoded without special tokens
    finish_reason: str  # stop | length


@dataclass(frozen=True)
class Generation:
    prompt_ids: list[int]
    completions: list[Completion]  # `sampling.n` per prompt


# progress(done, total): how many of the prompts (or training steps) are finished
Progress = Callable[[int, int], None]


class Generator(Protocol):
    """Anything that samples `n` completions per chat-rendered prompt with a given (optional) LoRA adapter."""

    tokenizer: object

    def generate(
        self,
        prompts: list[str],
        sampling: SamplingConfig,
        want_logprobs: bool = True,
        progress: Progress | None = None,
    ) -> list[Generation]:
        """`progress(done, total)` is called as prompts finish (for the UI's progress artifacts)."""
        ...

    def prompt_logprobs(self, sequences: list[list[int]], starts: list[int]) -> list[list[float]]:
        """Teacher forcing: the log-prob of each sequence's tokens from
        `start` on, given all tokens before."""
        ...
