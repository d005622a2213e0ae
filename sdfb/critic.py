"""Critics write a step-aligned critique of one attempt: correct steps copied verbatim, the first error fixed, the
rest continued in the solver's format. Here: the interface and an exact symbolic critic for arithmetic problems."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import pandas as pd

from sdfb.prompts import parse_attempt, parse_equation


@dataclass(frozen=True)
class CritiqueRequest:
    question: str
    solution: str
    answer: str
    steps: tuple[str, ...]  # reference step equations; empty when the dataset has none
    attempt: str
    finish_reason: str


@dataclass(frozen=True)
class Critique:
    case: str  # A reproduce | B insert missing step | C finish | D fix first error | none
    first_wrong_step: int  # 1-based index into the attempt's steps; -1 when no step is wrong
    text: str
    status: str  # ok | unavailable


class Critic(Protocol):
    name: str

    def critique(self, requests: list[CritiqueRequest]) -> list[Critique]: ...


def _same_number(a: float | str | None, b: float | str) -> bool:
    try:
        return a is not None and abs(float(a) - float(b)) < 1e-9
    except ValueError:
        return False


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


class SymbolicCritic:
    """Checks every step equation of an attempt against the problem's exact step chain (paper cases A-D)."""

    name = "symbolic"

    def critique(self, requests: list[CritiqueRequest]) -> list[Critique]:
        return [self.critique_one(r) for r in requests]

    def critique_one(self, req: CritiqueRequest) -> Critique:
        reference = [parse_equation(s) for s in req.steps]
        if not reference or any(eq is None for eq in reference):
            return Critique("none", -1, "", "unavailable")
        attempt = parse_attempt(req.attempt)
        # Length of the attempt's prefix whose steps are true and compute the reference's intermediate values.
        n_ok = 0
        for text, ref in zip(attempt.steps, reference, strict=False):
            eq = parse_equation(text)
            if eq is None or not eq.holds() or not _same_number(eq.result, ref.result):
                break
            n_ok += 1
        has_wrong_step = n_ok < len(attempt.steps)
        complete = n_ok == len(reference)
        final = _number(reference[-1].result)
        answer_ok = _same_number(attempt.answer, req.answer) if attempt.answer else False

        if answer_ok and complete and not has_wrong_step:
            return Critique("A", -1, req.attempt.strip(), "ok")
        if answer_ok:
            case, first_wrong = "B", (n_ok + 1 if has_wrong_step else -1)
        elif not has_wrong_step and attempt.answer is None:
            case, first_wrong = "C", -1
        else:
            case, first_wrong = "D", n_ok + 1
        kept = list(attempt.step_lines[:n_ok])  # the solver's correct steps, verbatim
        fixed = [f"Step {i + 1}: {req.steps[i]}" for i in range(n_ok, len(reference))]
        text = "\n".join([*kept, *fixed, f"Answer: {final}"])
        return Critique(case, first_wrong, text, "ok")


def make_critic(kind: str) -> Critic:
    if kind == "symbolic":
        return SymbolicCritic()
    raise ValueError(f"critic.kind {kind!r} is not available; use 'symbolic'")


def critique_rollouts(rollouts: pd.DataFrame, problems: pd.DataFrame, critic: Critic) -> pd.DataFrame:
    """One critique row per rollout."""
    by_id = problems.set_index("problem_id")
    requests = [
        CritiqueRequest(
            question=by_id.at[pid, "question"],
            solution=by_id.at[pid, "solution"],
            answer=by_id.at[pid, "answer"],
            steps=tuple(by_id.at[pid, "steps"]),
            attempt=text,
            finish_reason=finish,
        )
        for pid, text, finish in zip(rollouts["problem_id"], rollouts["completion_text"], rollouts["finish_reason"], strict=True)
    ]
    critiques = critic.critique(requests)
    return pd.DataFrame(
        {
            "problem_id": rollouts["problem_id"].to_numpy(),
            "sample_index": rollouts["sample_index"].to_numpy(),
            "critic": critic.name,
            "case": [c.case for c in critiques],
            "first_wrong_step": [c.first_wrong_step for c in critiques],
            "critique": [c.text for c in critiques],
            "status": [c.status for c in critiques],
        }
    )
