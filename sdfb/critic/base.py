"""What every critic shares: the request it reads, the critique it returns, and the interface.

A critique is always rendered in the solver's own step format ("Step k: ...", then "Answer: ..."), whatever
the critic, so alignment checks and teacher contexts treat all critics alike. Nothing here calls a model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

from sdfb.names import CriticCase, CritiqueStatus

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_STEP_LABEL = re.compile(r"(step\s*)(\d+)", re.IGNORECASE)


@dataclass(frozen=True)
class CritiqueRequest:
    question: str
    solution: str
    answer: str
    steps: tuple[str, ...]  # reference step equations; empty when the dataset has none
    attempt: str
    finish_reason: str
    problem_id: str = ""
    attempt_hash: str = ""  # hash of the sampled token ids: with the problem, what the cache is keyed by


@dataclass(frozen=True)
class Critique:
    case: CriticCase
    first_wrong_step: (
        int  # the critic's verdict: 1-based index into the attempt's steps; -1 when none is wrong
    )
    text: str  # in the solver's format; empty unless status is ok
    status: CritiqueStatus  # a critic's own: ok, malformed, failed, no_steps or unavailable
    error: str = ""  # why a critique is not ok, for people reading the table
    raw: str = ""  # the critic's reply as received (LLM critics)
    from_cache: bool = False


class Critic(Protocol):
    name: str

    def critique(self, requests: list[CritiqueRequest]) -> list[Critique]: ...

    def stats(self) -> dict: ...


def answer_number(answer: str | None) -> float | None:
    """The first number of an answer, ignoring markdown, `$` and units,
    as the grader reads `9 pens` or `$9$`."""
    if not answer:
        return None
    found = _NUMBER.search(answer.replace("**", "").replace("$", "").replace(",", ""))
    return float(found.group()) if found else None


def renumber(line: str, number: int) -> str:
    """The solver's step line with only its label number changed (when a step moves after an insertion)."""
    return _STEP_LABEL.sub(lambda m: f"{m.group(1)}{number}", line, count=1)


def normalise_step(text: str) -> str:
    """Whitespace-insensitive form of a step, for deciding whether a critic copied it verbatim."""
    return " ".join(text.split())
