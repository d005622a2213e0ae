"""Statistics for comparing arms on the same eval problems: per-problem metrics, bootstrap intervals
(plain and clustered by problem), paired tests and Holm's adjustment over arms. Pure
numpy/pandas/scipy; no I/O, no plotting."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from sdfb import bootstrap
from sdfb.metrics import _normalise, majority_correct, pass_at_k

METRICS = ("avg", "pass_k", "maj")
# A comparison's figures (compare_arms' columns after arm, reference and metric)
DIFFERENCE_COLUMNS = ("difference", "low", "high", "p_value", "p_holm", "finding")
DIFFERENCE_COLUMNS += ("n_problems", "n_seeds", "wins", "losses", "ties")
KEYS = ("seed", "problem_id")
# A difference is a finding only when its Holm-adjusted p is below this and its interval excludes 0.
FINDING_ALPHA = 0.05
# A per-problem difference this close to zero is a tie: seed means of equal values can differ in the last bit.
TIE_TOLERANCE = 1e-12


def per_problem(samples: pd.DataFrame, k: int) -> pd.DataFrame:
    """One row per problem (first-appearance order) with n_samples, avg (mean correct), pass_k (unbiased
    Pass@k) and maj (1.0 if the majority answer is correct), scored as `metrics.score` scores them.

    `samples` holds one checkpoint's graded samples. The column means equal score's
    pass_at_k and maj_at_k, and avg_at_k too when every problem has the same number of
    samples (score's Avg@k is a mean over samples)."""
    _require(samples, ["problem_id", "correct", "extracted_answer"], "samples")
    groups = samples.groupby("problem_id", sort=False)
    sizes = groups.size()
    if len(sizes) and sizes.min() < k:
        raise ValueError(
            f"every problem needs at least k={k} samples; the smallest group, problem "
            f"{sizes.idxmin()!r}, has {int(sizes.min())}: sample more or lower k"
        )
    rows = []
    for problem_id, group in groups:
        correct = [bool(c) for c in group["correct"]]
        # pandas 3 stores a missing answer in a str column as NaN, which _normalise would try to strip.
        answers = [None if pd.isna(a) else _normalise(a) for a in group["extracted_answer"]]
        rows.append(
            {
                "problem_id": problem_id,
                "n_samples": len(correct),
                "avg": sum(correct) / len(correct),
                "pass_k": pass_at_k(len(correct), sum(correct), k),
                "maj": float(majority_correct(answers, correct)),
            }
        )
    return pd.DataFrame(rows, columns=["problem_id", "n_samples", *METRICS])


def metric_intervals(
    table: pd.DataFrame,
    metric: str,
    confidence: float = 0.95,
    n_resamples: int = bootstrap.BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> dict:
    """Mean of `metric` over all (seed, problem_id) rows with a bootstrap interval over problems and seeds.

    Seeds and problems are resampled independently (two levels, `sdfb.bootstrap`; with one seed, problems
    only), so the interval holds the variance of the eval problems and of the training runs (a seed that
    moves every problem at once). Every problem needs exactly one row per seed."""
    _check_rows(table, metric, "table")
    means, n_seeds = _problem_means(table, metric, "table")
    estimate = float(table[metric].mean())
    matrix = bootstrap.seeds_by_problems(table, metric)
    low, high = bootstrap.two_level_interval(matrix, confidence, n_resamples, np.random.default_rng(seed))
    return {
        "metric": metric,
        "estimate": estimate,
        "low": low,
        "high": high,
        "n_problems": int(len(means)),
        "n_seeds": n_seeds,
    }


def paired_difference(
    arm: pd.DataFrame,
    reference: pd.DataFrame,
    metric: str,
    confidence: float = 0.95,
    n_resamples: int = bootstrap.BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> dict:
    """Mean of arm - reference on `metric`, paired on (seed, problem_id), with a bootstrap interval over
    problems and a two-sided paired permutation p-value.

    The interval resamples seeds and problems (two levels, as `metric_intervals`). The p-value flips the
    signs of the per-problem differences averaged over seeds (exact enumeration when 2**n_problems <=
    n_resamples): it tests these training runs on these problems, so with few seeds it can be smaller than
    the interval suggests; a finding needs both (`is_finding`). wins, losses and ties count problems whose
    mean difference is above, below or at zero."""
    _check_rows(arm, metric, "arm")
    _check_rows(reference, metric, "reference")
    pairs = arm[[*KEYS, metric]].merge(
        reference[[*KEYS, metric]], on=list(KEYS), how="outer", suffixes=("_arm", "_ref"), indicator=True
    )
    _check_pairs(pairs["_merge"], pairs[list(KEYS)])
    diffs = pairs[list(KEYS)].assign(diff=pairs[f"{metric}_arm"] - pairs[f"{metric}_ref"])
    per_problem_diff, n_seeds = _problem_means(diffs, "diff", "arm and reference")
    d = per_problem_diff.to_numpy()
    difference = float(diffs["diff"].mean())
    rng = np.random.default_rng(seed)
    matrix = bootstrap.seeds_by_problems(diffs, "diff")
    low, high = bootstrap.two_level_interval(matrix, confidence, n_resamples, rng)
    return {
        "metric": metric,
        "difference": difference,
        "low": low,
        "high": high,
        "p_value": _sign_flip_p_value(d, n_resamples, rng),
        "n_problems": int(len(d)),
        "n_seeds": n_seeds,
        "wins": int((d > TIE_TOLERANCE).sum()),
        "losses": int((d < -TIE_TOLERANCE).sum()),
        "ties": int((np.abs(d) <= TIE_TOLERANCE).sum()),
    }


def mean_interval(
    values: Sequence[float] | np.ndarray,
    confidence: float = 0.95,
    n_resamples: int = bootstrap.BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> dict:
    """Mean of independent values (NaNs dropped) with a bootstrap interval: `cluster_interval` with every
    value its own cluster. No values give NaN for mean, low and high; a single value (or all equal) gives
    low = high = mean, since there is no spread to resample."""
    x = np.asarray(values, dtype=float).ravel()
    found = cluster_interval(x, np.arange(len(x)), confidence, n_resamples, seed)
    return {key: found[key] for key in ("mean", "low", "high", "n")}


def cluster_interval(
    values: Sequence[float] | np.ndarray,
    clusters: Sequence | np.ndarray,
    confidence: float = 0.95,
    n_resamples: int = bootstrap.BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> dict:
    """Mean of `values` (NaNs dropped with their cluster labels) with a percentile bootstrap
    interval that resamples whole clusters: draw as many clusters as there are, with replacement,
    and keep every value of each drawn one.

    The estimate and each resample's statistic are means over values (a cluster of 3 weighs 3 times a
    cluster of 1), so the interval is for the same number the estimate is. One cluster, or values with no
    spread, give low = high = mean; no values give NaN. Returns mean, low, high, n (values) and n_clusters."""
    x = np.asarray(values, dtype=float).ravel()
    labels = np.asarray(clusters).ravel()
    if len(labels) != len(x):
        raise ValueError(f"values ({len(x)}) and clusters ({len(labels)}) must have one entry each")
    keep = ~np.isnan(x)
    x, labels = x[keep], labels[keep]
    if len(x) == 0:
        return {"mean": float("nan"), "low": float("nan"), "high": float("nan"), "n": 0, "n_clusters": 0}
    _, cluster_of = np.unique(labels, return_inverse=True)
    sums = np.bincount(cluster_of, weights=x)
    sizes = np.bincount(cluster_of).astype(float)
    mean = float(x.mean())
    low = high = mean
    if len(sums) > 1 and np.ptp(x) > 0:
        low, high = bootstrap.cluster_interval(
            sums, sizes, confidence, n_resamples, np.random.default_rng(seed)
        )
    return {"mean": mean, "low": low, "high": high, "n": int(len(x)), "n_clusters": int(len(sums))}


def holm(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm's step-down adjustment of p-values for testing them together (family-wise
    error): the i-th smallest of m becomes max over j <= i of min(1, (m - j + 1) *
    p_(j)). NaNs stay NaN and do not count in m."""
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full(p.shape, np.nan)
    present = np.flatnonzero(~np.isnan(p))
    order = present[np.argsort(p[present], kind="stable")]
    m = len(order)
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adjusted[order] = np.maximum.accumulate(scaled)
    return adjusted


def is_finding(p_holm: float, low: float, high: float) -> bool:
    """A difference counts as found only when its Holm-adjusted p <
    FINDING_ALPHA and its interval excludes 0."""
    return bool(p_holm < FINDING_ALPHA and (low > 0 or high < 0))


def compare_arms(per_problem_tables: Mapping[str, pd.DataFrame], reference: str, **kw) -> pd.DataFrame:
    """`paired_difference` of every arm against `reference` on each of METRICS: one row per
    (arm, metric), in the order of the mapping. `kw` (confidence, n_resamples, seed) is passed
    on. p_holm is p_value Holm-adjusted over the arms, separately for each metric; `finding` is
    `is_finding` on p_holm and the interval."""
    if reference not in per_problem_tables:
        raise ValueError(f"reference arm {reference!r} not among the arms: {sorted(per_problem_tables)}")
    rows = [
        {
            "arm": arm,
            "reference": reference,
            **paired_difference(table, per_problem_tables[reference], m, **kw),
        }
        for arm, table in per_problem_tables.items()
        if arm != reference
        for m in METRICS
    ]
    columns = ["arm", "reference", "metric", *DIFFERENCE_COLUMNS]
    table = pd.DataFrame(rows, columns=[c for c in columns if c not in ("p_holm", "finding")])
    p_holm = table.groupby("metric", sort=False)["p_value"].transform(lambda p: holm(p.to_numpy()))
    finding = [is_finding(*v) for v in zip(p_holm, table["low"], table["high"], strict=True)]
    return table.assign(p_holm=p_holm.astype(float), finding=pd.Series(finding, dtype=bool))[columns]


def _sign_flip_p_value(d: np.ndarray, n_resamples: int, rng: np.random.Generator) -> float:
    """Two-sided p-value of mean(d) == 0 by flipping the signs of the paired differences."""
    if not np.any(np.abs(d) > TIE_TOLERANCE):
        return 1.0
    result = stats.permutation_test(
        (d,),
        np.mean,
        vectorized=True,
        permutation_type="samples",
        alternative="two-sided",
        n_resamples=n_resamples,
        rng=rng,
    )
    return float(result.pvalue)


def _require(table: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"{what} lacks columns {missing}; it has {list(table.columns)}")


def _check_rows(table: pd.DataFrame, metric: str, what: str) -> None:
    """Columns present, no missing metric values, at most one row per (seed, problem_id)."""
    _require(table, [*KEYS, metric], what)
    if table[metric].isna().any():
        raise ValueError(
            f"{what}: {int(table[metric].isna().sum())} rows have no {metric!r}; drop or fill them"
        )
    duplicated = table.duplicated(list(KEYS))
    if duplicated.any():
        first = tuple(table.loc[duplicated, list(KEYS)].iloc[0])
        raise ValueError(f"{what}: {int(duplicated.sum())} duplicate (seed, problem_id) rows, e.g. {first}")


def _check_pairs(merge: pd.Series, keys: pd.DataFrame) -> None:
    only_arm = int((merge == "left_only").sum())
    only_ref = int((merge == "right_only").sum())
    if only_arm or only_ref:
        first = tuple(keys[merge != "both"].iloc[0])
        raise ValueError(
            f"arm and reference must cover the same (seed, problem_id) pairs; {only_arm + only_ref} pairs "
            f"missing ({only_arm} only in arm, {only_ref} only in reference), e.g. {first}"
        )


def _problem_means(table: pd.DataFrame, column: str, what: str) -> tuple[pd.Series, int]:
    """Mean of `column` per problem over its seeds, and the seed count; every problem must have every seed, so
    that the mean of the problem means is the mean over all rows."""
    n_seeds = table["seed"].nunique()
    n_problems = table["problem_id"].nunique()
    missing = n_seeds * n_problems - len(table)
    if missing:
        raise ValueError(
            f"{what}: every problem needs a row for every seed; {missing} of the {n_problems} problems x "
            f"{n_seeds} seeds (seed, problem_id) rows are missing"
        )
    if n_problems == 0:
        raise ValueError(f"{what}: no rows to summarise")
    return table.groupby("problem_id", sort=False)[column].mean(), int(n_seeds)
