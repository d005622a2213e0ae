"""Power before paying: the smallest true Avg@k difference the paired comparison detects, from
the design alone (test problems, seeds, samples) and per-problem base success rates, and the
sizes of the validation/test splits. Pure numpy/scipy over values handed in; reads no files.
The model and its limits: docs/power.md."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize, stats

# Fewer problems than this in the validation or the test split and a plan is refused (see docs/power.md):
# below it the choice of checkpoint is noise, the bootstrap interval undercovers, and at 5 or fewer test
# problems the sign-flip test cannot reach p < 0.05 at all (its smallest two-sided p-value is 2 / 2**n).
MIN_SPLIT_PROBLEMS = 10
ALPHA = 0.05  # two-sided, as `sdfb.stats.paired_difference` tests
POWER = 0.8


@dataclass(frozen=True)
class Splits:
    """How many eval problems land in each split; `exact` when counted from the problem ids, else expected."""

    total: int
    validation: int
    test: int
    exact: bool
    how: str  # where the count comes from, for the plan's printout


@dataclass(frozen=True)
class Power:
    """The minimum detectable Avg@k difference (absolute proportion; inf
    when no difference is) and its design."""

    difference: float
    n_problems: int
    n_seeds: int
    k: int
    mean_base_rate: float
    assumption: str  # "base rate 0.50 configured" or "base rates measured from <path> (N problems)"
    alpha: float = ALPHA
    power: float = POWER


def minimum_detectable_difference(
    n_problems: int,
    n_seeds: int,
    k: int,
    base_rates: float | Sequence[float] | np.ndarray,
    alpha: float = ALPHA,
    power: float = POWER,
) -> float:
    """The smallest true mean difference in Avg@k (arm - reference) that a two-sided test at `alpha` over
    `n_problems` paired problems detects with probability `power`, by the normal approximation.

    Each problem i has a base rate p_i (one rate for all, or rates whose spread stands for the test
    problems); the reference's samples are Bernoulli(p_i), the arm's Bernoulli(q_i), q_i = min(p_i +
    shift, 1). A problem's difference, averaged over k samples and n_seeds seeds, has variance
    (p_i(1-p_i) + q_i(1-q_i)) / (k n_seeds): sampling noise only. The answer is the mean of q_i - p_i
    at the smallest shift where it reaches (z_{1-alpha/2} + z_power) * sqrt(mean variance /
    n_problems); the variance is taken at q_i, not at p_i, so a low base rate whose improvement adds
    variance is not flattered. inf when even shift 1 falls short."""
    rates = np.atleast_1d(np.asarray(base_rates, dtype=float))
    _check_design(n_problems, n_seeds, k, rates, alpha, power)
    scale = stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)

    def shortfall(shift: float) -> float:
        """The true difference at `shift` minus the detectable one: its root is the MDE's shift."""
        arm = np.minimum(rates + shift, 1.0)
        variance = (rates * (1 - rates) + arm * (1 - arm)) / (k * n_seeds)
        return float((arm - rates).mean() - scale * math.sqrt(variance.mean() / n_problems))

    if (rates >= 1).all():  # no problem has room to improve
        return math.inf
    # A positive shift: at shift 0 a base without noise (every rate 0 or 1) would "detect" a difference of
    # zero.
    shifts = np.concatenate([[1e-9], np.linspace(0.005, 1.0, 200)])
    detected = [i for i, s in enumerate(shifts) if shortfall(s) >= 0]
    if not detected:
        return math.inf
    first = detected[0]  # the root lies between the first shift detected and the one before it
    shift = (
        shifts[0] if first == 0 else optimize.brentq(shortfall, shifts[first - 1], shifts[first], xtol=1e-12)
    )
    return float((np.minimum(rates + shift, 1.0) - rates).mean())


def _check_design(
    n_problems: int, n_seeds: int, k: int, rates: np.ndarray, alpha: float, power: float
) -> None:
    for name, value in (("n_problems", n_problems), ("n_seeds", n_seeds), ("k", k)):
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    if rates.size == 0 or np.isnan(rates).any() or (rates < 0).any() or (rates > 1).any():
        raise ValueError(f"base rates must be proportions in [0, 1], got {rates.tolist()[:5]}")
    if not (0 < alpha < 1 and 0 < power < 1):
        raise ValueError(f"alpha and power must lie strictly between 0 and 1, got {alpha} and {power}")


def per_problem_base_rates(samples: pd.DataFrame) -> pd.Series:
    """Each problem's share of correct samples (problem_id -> rate) in a base scoring
    (`eval/base.parquet`, one row per sample with problem_id and correct), in first-appearance
    order. With k samples a problem's p(1-p) is underestimated by a factor 1 - 1/k on average;
    docs/power.md says what that does to the figure."""
    missing = [c for c in ("problem_id", "correct") if c not in samples.columns]
    if missing:
        raise ValueError(f"base samples lack columns {missing}; they have {list(samples.columns)}")
    if samples.empty:
        raise ValueError("base samples hold no rows to measure rates from")
    return (
        samples.assign(correct=samples["correct"].astype(float))
        .groupby("problem_id", sort=False)["correct"]
        .mean()
    )


def expected_splits(total: int, validation_share: float) -> Splits:
    """Expected split sizes when the problem ids are not known yet:
    total x share, rounded down, for each split."""
    return Splits(
        total=total,
        validation=_floor(total * validation_share),
        test=_floor(total * (1 - validation_share)),
        exact=False,
        how="expected: eval_problems x validation_share, rounded down",
    )


def problems_needed(validation_share: float, minimum: int) -> int:
    """The fewest eval problems whose expected splits both hold `minimum` problems."""
    total = minimum
    while min(_floor(total * validation_share), _floor(total * (1 - validation_share))) < minimum:
        total += 1
    return total


def _floor(x: float) -> int:
    return math.floor(x + 1e-9)  # 100 x (1 - 0.9) is 9.999999999999998 in floating point, and means 10
