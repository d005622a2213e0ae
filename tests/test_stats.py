"""Experiment statistics: per-problem metrics, bootstrap intervals and the paired sign-flip test, checked against
values worked out by hand, an exact enumeration written here and a normal approximation."""

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from sdfb.metrics import score
from sdfb.stats import (
    METRICS,
    compare_arms,
    mean_interval,
    metric_intervals,
    paired_difference,
    per_problem,
)

# Per-problem differences (arm - reference) chosen by hand: mean 0.5, four wins, one loss, one tie.
REFERENCE = [0.0, 0.25, 0.5, 0.5, 0.0, 0.25]
ARM = [1.0, 0.75, 0.5, 0.25, 1.0, 1.0]
DIFFS = [a - r for a, r in zip(ARM, REFERENCE, strict=True)]


def _samples() -> pd.DataFrame:
    """Three problems x four samples, rows interleaved so that first-appearance order is b, a, c."""
    problems = {  # b: avg 1/2, pass@2 5/6, majority "12" right; a: 1/4, 1/2, "5" wrong; c: 1/2, 5/6, wrong
        "b": (["12", "12", "7", None], [True, True, False, False]),
        "a": (["5", "5", "3", "5"], [False, False, True, False]),
        "c": (["4", "3.0", "3", "4"], [False, True, True, False]),  # 2-2 tie goes to "4", seen first
    }
    rows = [
        {"problem_id": pid, "sample_index": i, "extracted_answer": answers[i], "correct": correct[i],
         "format_ok": answers[i] is not None, "checkpoint": "step-0"}
        for i in range(4)
        for pid, (answers, correct) in problems.items()
    ]  # fmt: skip
    # object dtype keeps None: a pandas 3 str column would hold NaN, which metrics.score cannot normalise.
    answers = pd.Series([row["extracted_answer"] for row in rows], dtype=object)
    return pd.DataFrame(rows).assign(extracted_answer=answers)


def _table(values, seed=0, metric="avg") -> pd.DataFrame:
    return pd.DataFrame({"seed": seed, "problem_id": [f"p{i}" for i in range(len(values))], metric: values})


def _metrics_table(values, seed=0) -> pd.DataFrame:
    return _table(values, seed).assign(pass_k=values, maj=values)


def _exact_sign_flip_p_value(diffs) -> float:
    """Share of the 2**n sign patterns whose |mean| reaches the observed |mean|, enumerated without scipy."""
    observed = abs(sum(diffs)) / len(diffs)
    hits = sum(
        abs(sum(s * d for s, d in zip(signs, diffs, strict=True))) / len(diffs) >= observed - 1e-12
        for signs in itertools.product((1, -1), repeat=len(diffs))
    )
    return hits / 2 ** len(diffs)


def test_per_problem_matches_hand_values_in_first_appearance_order():
    table = per_problem(_samples(), k=2)
    assert list(table["problem_id"]) == ["b", "a", "c"]
    assert list(table["n_samples"]) == [4, 4, 4]
    assert list(table["avg"]) == [0.5, 0.25, 0.5]
    assert table["pass_k"].tolist() == pytest.approx(
        [5 / 6, 0.5, 5 / 6]
    )  # 1 - C(2,2)/C(4,2); 1 - C(3,2)/C(4,2)
    assert list(table["maj"]) == [1.0, 0.0, 0.0]


def test_per_problem_means_equal_the_benchmark_score():
    samples = _samples()
    table, summary = per_problem(samples, k=2), score(samples, k=2)
    assert table["avg"].mean() == summary["avg_at_k"]
    assert table["pass_k"].mean() == summary["pass_at_k"]
    assert table["maj"].mean() == summary["maj_at_k"]


def test_per_problem_treats_a_missing_answer_in_a_string_column_as_no_vote():
    samples = _samples().astype({"extracted_answer": "str"})  # None becomes NaN here
    assert samples["extracted_answer"].isna().sum() == 1
    assert per_problem(samples, k=2).equals(per_problem(_samples(), k=2))


def test_per_problem_rejects_k_above_the_smallest_group_and_names_both():
    samples = _samples().iloc[1:]  # problem "b" loses a sample
    with pytest.raises(ValueError, match=r"k=4.*'b'.*has 3"):
        per_problem(samples, k=4)


def test_paired_difference_matches_the_hand_mean_and_counts_wins_losses_ties():
    result = paired_difference(_table(ARM), _table(REFERENCE), "avg")
    assert result["difference"] == pytest.approx(0.5)
    assert (result["wins"], result["losses"], result["ties"]) == (4, 1, 1)
    assert (result["n_problems"], result["n_seeds"]) == (6, 1)
    assert result["low"] <= 0.5 <= result["high"]


def test_paired_permutation_p_value_matches_exact_enumeration_by_hand():
    result = paired_difference(_table(ARM), _table(REFERENCE), "avg", n_resamples=2000)
    # |sum| >= 3 needs the flipped |d| to total <= 0.25: {}, {0}, {0.25}, {0, 0.25}, and their mirrors: 8 of 64.
    assert _exact_sign_flip_p_value(DIFFS) == 8 / 64
    assert result["p_value"] == pytest.approx(8 / 64)


def test_several_seeds_are_averaged_per_problem_before_counting_and_testing():
    # p0 wins by 1 on seed 0 and loses by 1 on seed 1, so it averages to a tie; the rest repeat on both seeds.
    arm = pd.concat([_table(ARM, seed=0), _table([0.0, *ARM[1:]], seed=1)])
    reference = pd.concat([_table(REFERENCE, seed=0), _table([1.0, *REFERENCE[1:]], seed=1)])
    result = paired_difference(arm, reference, "avg")
    per_problem_diffs = [0.0, *DIFFS[1:]]
    assert result["difference"] == pytest.approx(2.0 / 6)
    assert (result["wins"], result["losses"], result["ties"], result["n_seeds"]) == (3, 1, 2, 2)
    assert result["p_value"] == pytest.approx(_exact_sign_flip_p_value(per_problem_diffs))


def test_a_clearly_better_arm_has_an_interval_above_zero_and_a_small_p_value():
    reference = _table([0.0] * 30)
    arm = _table([1.0] * 25 + [0.0] * 5)
    result = paired_difference(arm, reference, "avg", n_resamples=500)
    assert result["difference"] == pytest.approx(25 / 30)
    assert 0 < result["low"] <= result["difference"] <= result["high"]
    assert result["p_value"] < 0.01


def test_identical_arms_differ_by_zero_with_a_point_interval_and_p_value_one():
    table = _table([0.0, 0.5, 1.0, 0.25])
    result = paired_difference(table, table.copy(), "avg")
    assert (result["difference"], result["low"], result["high"], result["p_value"]) == (0.0, 0.0, 0.0, 1.0)
    assert (result["wins"], result["losses"], result["ties"]) == (0, 0, 4)


def test_missing_pairs_raise_with_their_count():
    arm = _table(ARM).iloc[:4]  # p4, p5 missing from the arm
    reference = _table(REFERENCE).iloc[1:]  # p0 missing from the reference
    with pytest.raises(ValueError, match=r"3 pairs missing \(1 only in arm, 2 only in reference\)"):
        paired_difference(arm, reference, "avg")


def test_metric_interval_contains_the_estimate_and_narrows_with_more_problems():
    rng = np.random.default_rng(1)
    small = metric_intervals(_table(rng.integers(0, 2, 40).astype(float)), "avg", n_resamples=1000)
    large = metric_intervals(_table(rng.integers(0, 2, 400).astype(float)), "avg", n_resamples=1000)
    for result in (small, large):
        assert result["low"] <= result["estimate"] <= result["high"]
    assert large["high"] - large["low"] < small["high"] - small["low"]
    assert (small["n_problems"], large["n_problems"], small["n_seeds"]) == (40, 400, 1)


def test_metric_interval_is_reproducible_for_a_fixed_seed():
    table = _table(np.random.default_rng(2).random(50))
    assert metric_intervals(table, "avg", n_resamples=500, seed=7) == metric_intervals(
        table, "avg", n_resamples=500, seed=7
    )


def test_metric_interval_over_several_seeds_bootstraps_the_per_problem_means():
    rng = np.random.default_rng(3)
    table = pd.concat([_table(rng.random(20), seed=s) for s in range(3)])
    result = metric_intervals(table, "avg", n_resamples=500, seed=5)
    assert result["estimate"] == pytest.approx(table["avg"].mean())
    assert (result["n_problems"], result["n_seeds"]) == (20, 3)
    means = table.groupby("problem_id", sort=False)["avg"].mean().to_numpy()
    one_seed = metric_intervals(_table(means), "avg", n_resamples=500, seed=5)
    assert (result["low"], result["high"]) == pytest.approx((one_seed["low"], one_seed["high"]))


def test_metric_interval_of_a_binary_column_is_close_to_the_normal_approximation():
    values = np.zeros(200)
    values[np.random.default_rng(4).choice(200, 80, replace=False)] = 1.0  # 40% correct
    result = metric_intervals(_table(values), "avg", n_resamples=20_000)
    half_width = 1.959964 * math.sqrt(0.4 * 0.6 / 200)  # z_0.975 * sqrt(p (1 - p) / n)
    assert result["estimate"] == pytest.approx(0.4)
    assert result["low"] == pytest.approx(0.4 - half_width, abs=0.01)
    assert result["high"] == pytest.approx(0.4 + half_width, abs=0.01)


def test_metric_interval_of_constant_values_is_a_point():
    result = metric_intervals(_table([1.0] * 10), "avg")
    assert (result["estimate"], result["low"], result["high"]) == (1.0, 1.0, 1.0)


def test_metric_interval_rejects_a_problem_missing_a_seed():
    table = pd.concat([_table([0.0, 1.0, 1.0], seed=0), _table([1.0, 0.0], seed=1)])
    with pytest.raises(ValueError, match="1 of the 3 problems x 2 seeds"):
        metric_intervals(table, "avg")


def test_mean_interval_of_nothing_is_nan():
    result = mean_interval([])
    assert result["n"] == 0
    assert all(math.isnan(result[key]) for key in ("mean", "low", "high"))


def test_mean_interval_of_one_value_is_that_value():
    assert mean_interval([0.3]) == {"mean": 0.3, "low": 0.3, "high": 0.3, "n": 1}


def test_mean_interval_drops_nans():
    result = mean_interval(np.array([np.nan, 1.0, 2.0, np.nan, 3.0]), n_resamples=500)
    assert (result["mean"], result["n"]) == (2.0, 3)
    assert 1.0 <= result["low"] <= 2.0 <= result["high"] <= 3.0
    assert math.isnan(mean_interval([np.nan, np.nan])["mean"])


def test_compare_arms_gives_one_row_per_arm_and_metric_against_the_reference():
    tables = {
        "base": _metrics_table(REFERENCE),
        "better": _metrics_table(ARM),
        "same": _metrics_table(REFERENCE),
    }
    result = compare_arms(tables, "base", n_resamples=200)
    assert list(zip(result["arm"], result["metric"], strict=True)) == [
        (arm, metric) for arm in ("better", "same") for metric in METRICS
    ]
    assert set(result["reference"]) == {"base"}
    better_avg = result.iloc[0].to_dict()
    expected = paired_difference(tables["better"], tables["base"], "avg", n_resamples=200)
    assert {key: better_avg[key] for key in expected} == pytest.approx(expected | {"metric": "avg"})
    assert result.loc[result["arm"] == "same", "p_value"].tolist() == [1.0, 1.0, 1.0]


def test_compare_arms_names_the_known_arms_when_the_reference_is_missing():
    with pytest.raises(ValueError, match=r"'sft'.*\['base', 'better'\]"):
        compare_arms({"base": _metrics_table(REFERENCE), "better": _metrics_table(ARM)}, "sft")
