"""The resampling schemes behind sdfb's intervals: whole clusters (a problem's attempts), and two levels
(seeds and problems independently, so that a score's interval holds the variance of the eval problems and
that of the training runs). Percentile intervals from a seeded numpy generator. Pure numpy; no I/O."""

from __future__ import annotations

import numpy as np
import pandas as pd

# Resamples behind every interval unless the caller (an experiment's `bootstrap_resamples`) says otherwise.
BOOTSTRAP_RESAMPLES = 2000


def seeds_by_problems(table: pd.DataFrame, column: str) -> np.ndarray:
    """`column` of a (seed, problem_id) table as a seeds x problems matrix; the table must be complete (one
    row per seed and problem: the seeds of an experiment share their eval problems)."""
    wide = table.pivot(index="seed", columns="problem_id", values=column)
    assert not wide.isna().to_numpy().any(), "seeds_by_problems needs one row per seed and problem"
    return wide.to_numpy(dtype=float)


def two_level_interval(
    matrix: np.ndarray, confidence: float, n_resamples: int, rng: np.random.Generator
) -> tuple[float, float]:
    """Percentile interval of the grand mean of a seeds x problems matrix: each resample draws the seeds with
    replacement and, independently, the problems, and averages the drawn rows over the drawn columns.

    A seed's training run can move every problem at once; resampling problems alone (with seeds averaged per
    problem) cannot see that variance. With one seed this is the problem bootstrap."""
    check_confidence(confidence)
    estimate = float(matrix.mean())
    if matrix.size < 2 or np.ptp(matrix) == 0:
        return estimate, estimate
    n_seeds, n_problems = matrix.shape
    seeds = _counts(rng.integers(0, n_seeds, (n_resamples, n_seeds)), n_seeds)
    problems = _counts(rng.integers(0, n_problems, (n_resamples, n_problems)), n_problems)
    means = np.einsum("bs,sp,bp->b", seeds, matrix, problems) / (n_seeds * n_problems)
    return percentile_interval(means, confidence)


def cluster_interval(
    sums: np.ndarray, sizes: np.ndarray, confidence: float, n_resamples: int, rng: np.random.Generator
) -> tuple[float, float]:
    """Percentile interval of sum(values) / count(values) over resamples of whole clusters, each given by
    the sum and the count of its values: draw as many clusters as there are, with replacement."""
    check_confidence(confidence)
    drawn = rng.integers(0, len(sums), size=(n_resamples, len(sums)))
    return percentile_interval(sums[drawn].sum(axis=1) / sizes[drawn].sum(axis=1), confidence)


def percentile_interval(statistic: np.ndarray, confidence: float) -> tuple[float, float]:
    """The central `confidence` share of the resampled statistic. Percentile, not BCa: the values are 0/1 or
    k-sample fractions with many ties, where BCa's jackknife acceleration is unstable and undefined for
    near-degenerate resamples; the percentile interval is defined for any sample."""
    tail = (1 - confidence) / 2
    low, high = np.quantile(statistic, [tail, 1 - tail])
    return float(low), float(high)


def check_confidence(confidence: float) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence}")


def _counts(draws: np.ndarray, size: int) -> np.ndarray:
    """How often each index was drawn in each resample: a (resamples, size) array whose rows sum to size."""
    counts = np.zeros((draws.shape[0], size))
    np.add.at(counts, (np.arange(draws.shape[0])[:, None], draws), 1)
    return counts
