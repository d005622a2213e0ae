"""Grading: extract each completion's final answer and compare it with the gold answer using math-verify.

Every comparison ends in a recorded status (correct | wrong | no_answer | unparseable | timeout), never an exception.
Checks run in worker processes so a hanging parse (Math-Verify #65) is cut off by the parent and the pool replaced.
"""

from __future__ import annotations

import logging
import multiprocessing
import re
from dataclasses import dataclass

import pandas as pd

from sdfb import faults
from sdfb.prompts import parse_attempt

log = logging.getLogger(__name__)

STATUSES = ("correct", "wrong", "no_answer", "unparseable", "timeout")
_BOXED = re.compile(r"\\boxed\{([^{}]*)\}")


@dataclass(frozen=True)
class Grade:
    extracted_answer: str
    status: str

    @property
    def correct(self) -> bool:
        return self.status == "correct"


def extract_answer(text: str) -> str | None:
    """The `Answer:` line's value, else the last `\\boxed{}`; markdown emphasis removed (Math-Verify #76)."""
    answer = parse_attempt(text).answer
    if answer is None:
        boxed = _BOXED.findall(text)
        answer = boxed[-1] if boxed else None
    if answer is None:
        return None
    answer = answer.replace("**", "").replace("$", "").strip().rstrip(".")
    return answer or None


def compare(predicted: str, gold: str) -> str:
    """Status of one comparison; runs in a worker process (main thread, so math-verify's own alarms work)."""
    from math_verify import parse, verify

    gold_parsed = parse(gold)
    pred_parsed = parse(predicted)
    if not gold_parsed or not pred_parsed:
        return "unparseable"
    return "correct" if verify(gold_parsed, pred_parsed) else "wrong"


def _warm(barrier) -> None:
    import math_verify  # noqa: F401  (import cost must not count against the first comparison's time limit)

    barrier.wait()


_START_TIMEOUT = 120.0


def grade_pairs(pairs: list[tuple[str | None, str]], timeout_seconds: float, workers: int) -> list[Grade]:
    """Grade (predicted answer or None, gold answer) pairs in a process pool, each bounded by `timeout_seconds`."""
    grades: list[Grade | None] = [Grade("", "no_answer") if p is None else None for p, _ in pairs]
    todo = [i for i, g in enumerate(grades) if g is None]
    if not todo:
        return grades  # type: ignore[return-value]
    context = multiprocessing.get_context("spawn")
    n_workers = min(workers, len(todo))
    ready = context.Barrier(n_workers + 1)
    pool = context.Pool(n_workers, initializer=_warm, initargs=(ready,))
    try:
        # Every worker has started and imported math-verify before any comparison's clock starts.
        ready.wait(timeout=_START_TIMEOUT)
        pending = {i: pool.apply_async(compare, pairs[i]) for i in todo}
        hung = False
        for i, result in pending.items():
            try:
                status = result.get(timeout=timeout_seconds)
            except multiprocessing.TimeoutError:
                status, hung = "timeout", True
            grades[i] = Grade(pairs[i][0] or "", status)
            faults.point("grade:result")
            if hung:
                break
        if hung:
            # A hung worker blocks its slot forever: grade the rest in a fresh pool.
            pool.terminate()
            rest = [i for i in todo if grades[i] is None]
            for i, grade in zip(
                rest, grade_pairs([pairs[i] for i in rest], timeout_seconds, workers), strict=True
            ):
                grades[i] = grade
    finally:
        pool.terminate()
    return grades  # type: ignore[return-value]


def grade_completions(
    completions: pd.DataFrame, problems: pd.DataFrame, timeout_seconds: float, workers: int
) -> pd.DataFrame:
    """One grade row per completion row (`problem_id`, `sample_index`, `completion_text`)."""
    gold = problems.set_index("problem_id")["answer"]
    missing = set(completions["problem_id"]) - set(gold.index)
    if missing:
        raise ValueError(
            f"completions refer to unknown problems: {sorted(missing)[:5]}; grade them with the problems table "
            "they were sampled from"
        )
    parsed = [parse_attempt(t) for t in completions["completion_text"]]
    answers = [extract_answer(t) for t in completions["completion_text"]]
    grades = grade_pairs(
        [(a, gold[p]) for a, p in zip(answers, completions["problem_id"], strict=True)],
        timeout_seconds,
        workers,
    )
    return pd.DataFrame(
        {
            "problem_id": completions["problem_id"].to_numpy(),
            "sample_index": completions["sample_index"].to_numpy(),
            "extracted_answer": [g.extracted_answer for g in grades],
            "status": [g.status for g in grades],
            "correct": [g.correct for g in grades],
            "format_ok": [p.format_ok for p in parsed],
            "n_steps": [len(p.steps) for p in parsed],
        }
    )
