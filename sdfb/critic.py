"""Critics write a step-aligned critique of one attempt: correct steps copied verbatim, the first error fixed, the
rest continued in the solver's format. Here: the interface and an exact symbolic critic for arithmetic problems."""

from __future__ import annotations

import re
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


_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_STEP_LABEL = re.compile(r"(step\s*)(\d+)", re.IGNORECASE)


def answer_number(answer: str | None) -> float | None:
    """The first number of an answer, ignoring markdown, `$` and units, as the grader reads `9 pens` or `$9$`."""
    if not answer:
        return None
    found = _NUMBER.search(answer.replace("**", "").replace("$", "").replace(",", ""))
    return float(found.group()) if found else None


def _renumber(line: str, number: int) -> str:
    """The solver's step line with only its label number changed (needed when a missing step is inserted)."""
    return _STEP_LABEL.sub(lambda m: f"{m.group(1)}{number}", line, count=1)


class SymbolicCritic:
    """Checks every step equation of an attempt against the problem's exact step chain (paper cases A-D).

    A step is correct when its equation holds and yields the value of the next reference step, or of a later one
    (the steps in between are missing and get inserted). Correct steps are copied verbatim (only their label is
    renumbered after an insertion); the first wrong step and everything after it come from the reference chain.
    `first_wrong_step` is 1-based; len(steps) + 1 means every step was right and the final answer was wrong.
    """

    name = "symbolic"

    def critique(self, requests: list[CritiqueRequest]) -> list[Critique]:
        return [self.critique_one(r) for r in requests]

    def critique_one(self, req: CritiqueRequest) -> Critique:
        reference = [parse_equation(s) for s in req.steps]
        if not reference or any(eq is None for eq in reference):
            return Critique("none", -1, "", "unavailable")
        attempt = parse_attempt(req.attempt)
        cut_off = req.finish_reason == "length" and attempt.answer is None
        lines: list[str] = []
        next_ref, first_wrong, inserted = 0, None, False
        for k, (text, line) in enumerate(zip(attempt.steps, attempt.step_lines, strict=True)):
            eq = parse_equation(text)
            match = None
            if eq is not None and eq.holds():
                match = next(
                    (m for m in range(next_ref, len(reference)) if eq.result == reference[m].result), None
                )
            if match is None:
                if not (cut_off and k == len(attempt.steps) - 1):  # a half-written last step is not an error
                    first_wrong = k + 1
                break
            for missing in range(next_ref, match):
                lines.append(f"Step {len(lines) + 1}: {req.steps[missing]}")
                inserted = True
            lines.append(_renumber(line, len(lines) + 1) if inserted else line)
            next_ref = match + 1
        lines += [
            f"Step {len(lines) + 1 + i}: {req.steps[m]}"
            for i, m in enumerate(range(next_ref, len(reference)))
        ]
        final = reference[-1].result
        given = answer_number(attempt.answer)
        answer_ok = given is not None and abs(given - final) < 1e-9

        if answer_ok and first_wrong is None and not inserted and next_ref == len(reference):
            return Critique("A", -1, req.attempt.strip(), "ok")
        if answer_ok:
            case, wrong = "B", first_wrong or -1
        elif first_wrong is None and attempt.answer is None:
            case, wrong = "C", -1
        else:
            case, wrong = "D", first_wrong or len(attempt.steps) + 1
        number = str(int(final)) if float(final).is_integer() else str(final)
        return Critique(case, wrong, "\n".join([*lines, f"Answer: {number}"]), "ok")


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
        for pid, text, finish in zip(
            rollouts["problem_id"], rollouts["completion_text"], rollouts["finish_reason"], strict=True
        )
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
