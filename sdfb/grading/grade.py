"""Grading tables: one Grade per (answer, gold) pair and one grade row per completion, from the worker pool.

Every comparison ends in a recorded `GradeStatus`, never an exception; nothing here parses mathematics.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sdfb import faults
from sdfb.config import GradingConfig
from sdfb.grading.extract import extract_answer
from sdfb.grading.pool import run_in_pool
from sdfb.grading.verdict import quick_gold_status
from sdfb.grading.worker import compare, gold_status
from sdfb.names import GoldStatus, GradeStatus
from sdfb.prompts import parse_attempt

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

_DEFAULTS = GradingConfig()


@dataclass(frozen=True)
class Grade:
    extracted_answer: str
    status: GradeStatus
    checks_disagree: bool = (
        False  # math-verify and the second check judged differently (status is then wrong)
    )

    @property
    def correct(self) -> bool:
        return self.status == GradeStatus.CORRECT


def grade_pairs(
    pairs: list[tuple[str | None, str]],
    timeout_seconds: float,
    workers: int,
    memory_mb: int = _DEFAULTS.memory_mb,
) -> list[Grade]:
    """Grade (predicted answer or None, gold answer) pairs in a process pool, one Grade per pair, in order.

    Each comparison is bounded by `timeout_seconds` and its worker by `memory_mb` of address space.
    """
    todo = [i for i, (predicted, _) in enumerate(pairs) if predicted is not None]
    outcomes = (
        run_in_pool(compare, [pairs[i] for i in todo], timeout_seconds, workers, memory_mb) if todo else []
    )
    by_index = dict(zip(todo, outcomes, strict=True))
    grades = []
    for i, (predicted, _) in enumerate(pairs):
        if predicted is None:
            grades.append(Grade("", GradeStatus.NO_ANSWER))
            continue
        status, disagree = by_index[i] or (GradeStatus.TIMEOUT, False)
        grades.append(Grade(predicted, status, disagree))
    disagreements = sum(g.checks_disagree for g in grades)
    if disagreements:
        log.info(
            "%d of %d graded answers: math-verify and the second check disagree", disagreements, len(grades)
        )
    return grades


def gold_statuses(
    golds: list[str], timeout_seconds: float, workers: int, memory_mb: int = _DEFAULTS.memory_mb
) -> list[GoldStatus]:
    """A `GoldStatus` per gold answer, parsed as grading parses it, under the same limits.

    A gold whose parts are plain decimal numbers or text needs no parser (and no pool).
    """
    quick = [quick_gold_status(g) for g in golds]
    todo = [i for i, status in enumerate(quick) if status is None]
    outcomes = (
        run_in_pool(gold_status, [(golds[i],) for i in todo], timeout_seconds, workers, memory_mb)
        if todo
        else []
    )
    by_index = dict(zip(todo, outcomes, strict=True))
    return [status or by_index[i] or GoldStatus.TIMEOUT for i, status in enumerate(quick)]


def grade_completions(
    completions: pd.DataFrame,
    problems: pd.DataFrame,
    timeout_seconds: float,
    workers: int,
    memory_mb: int = _DEFAULTS.memory_mb,
) -> pd.DataFrame:
    """One grade row per completion row (`problem_id`, `sample_index`, `completion_text`)."""
    import pandas as pd  # here, not at the top: the spawned workers import this package and need no pandas

    gold = problems.set_index("problem_id")["answer"]
    missing = set(completions["problem_id"]) - set(gold.index)
    if missing:
        raise ValueError(
            f"completions refer to unknown problems: {sorted(missing)[:5]}; grade them with the "
            "problems table they were sampled from"
        )
    parsed = [parse_attempt(t) for t in completions["completion_text"]]
    answers = [extract_answer(t) for t in completions["completion_text"]]
    faults.point("grade:answers")
    grades = grade_pairs(
        [(a, gold[p]) for a, p in zip(answers, completions["problem_id"], strict=True)],
        timeout_seconds,
        workers,
        memory_mb,
    )
    return pd.DataFrame(
        {
            "problem_id": completions["problem_id"].to_numpy(),
            "sample_index": completions["sample_index"].to_numpy(),
            "extracted_answer": [g.extracted_answer for g in grades],
            "status": [g.status for g in grades],
            "correct": [g.correct for g in grades],
            "checks_disagree": [g.checks_disagree for g in grades],
            "format_ok": [p.format_ok for p in parsed],
            "n_steps": [len(p.steps) for p in parsed],
        }
    )
