"""Benchmark metrics over k samples per problem: Avg@k (mean accuracy),
unbiased Pass@k, Maj@k (majority vote).

Pure functions over graded samples; no model, no I/O.
"""

from __future__ import annotations

from collections import Counter
from math import comb

import pandas as pd


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased estimator 1 - C(n-c, k) / C(n, k) for n samples of which c are correct (Chen et al. 2021)."""
    if not (0 <= c <= n and 1 <= k <= n):
        raise ValueError(f"need 0 <= c <= n and 1 <= k <= n, got n={n} c={c} k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def majority_correct(answers: list[str | None], correct: list[bool]) -> bool:
    """Whether the most frequent answer is a correct one. Samples without an answer do not vote; ties go to
    the answer seen first, so the result does not depend on dictionary order."""
    votes = Counter(a for a in answers if a)
    if not votes:
        return False
    top = max(votes.values())
    winner = next(a for a in answers if a and votes[a] == top)
    return any(ok for a, ok in zip(answers, correct, strict=True) if a == winner)


def _normalise(answer: str | None) -> str | None:
    if answer is None or pd.isna(answer) or not answer:  # Parquet reads a missing answer back as NaN
        return None
    text = answer.strip().rstrip(".").replace(",", "")
    try:
        value = float(text)
    except ValueError:
        return text
    return str(int(value)) if value.is_integer() else str(value)


def score(samples: pd.DataFrame, k: int) -> dict[str, float]:
    """Avg@k, Pass@k, Maj@k (as fractions) and format rate over graded samples with `problem_id`, `correct`,
    `extracted_answer`, `format_ok`; every problem must have at least k samples."""
    per_problem = samples.groupby("problem_id", sort=False)
    sizes = per_problem.size()
    if not (sizes >= k).all():
        raise ValueError(f"every problem needs at least k={k} samples; smallest has {int(sizes.min())}")
    passes = []
    majorities = []
    for _, group in per_problem:
        passes.append(pass_at_k(len(group), int(group["correct"].sum()), k))
        answers = [_normalise(a) for a in group["extracted_answer"]]
        majorities.append(majority_correct(answers, list(group["correct"])))
    return {
        "k": k,
        "n_problems": int(len(sizes)),
        "avg_at_k": float(samples["correct"].mean()),
        "pass_at_k": float(sum(passes) / len(passes)),
        "maj_at_k": float(sum(majorities) / len(majorities)),
        "format_rate": float(samples["format_ok"].mean()),
    }
