"""Experiment statistics: per-problem metrics, bootstrap intervals and the paired sign-flip test, checked
against values worked out by hand, an exact enumeration written here and a normal approximation."""

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from sdfb.metrics import score
from sdfb.stats import (
    cluster_interval,
    compare_arms,
    holm,
    is_finding,
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
        {
            "problem_id": pid,
            "sample_index": i,
            "extracted_answer": answers[i],
            "correct": correct[i],
            "format_ok": answers[i] is not None,
            "checkpoint": "step-0",
        }
        for i in range(4)
        for pid, (answers, correct) in problems.items()
    ]
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
    # |sum| >= 3 needs the flipped |d| to total <= 0.25: {}, {0}, {0.25}, {0, 0.25}, and their mirrors:
    # 8 of 64.
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


def test_metric_interval_over_several_seeds_resamples_seeds_as_well_as_problems():
    """Seed 0 scores 0.3 and seed 1 0.7 on every one of 30 problems: each problem's mean over seeds is 0.5, so
    resampling problems alone gives the point [0.5, 0.5] and hides the training runs' disagreement. Resampling
    the two seeds draws (0, 0) a quarter of the time (mean 0.3), (1, 1) a quarter (0.7) and a mix half (0.5):
    the 2.5% and 97.5% quantiles are 0.3 and 0.7 whatever problems are drawn."""
    table = pd.concat([_table([0.3] * 30, seed=0), _table([0.7] * 30, seed=1)])
    result = metric_intervals(table, "avg", n_resamples=2000, seed=1)
    assert result["estimate"] == pytest.approx(0.5)
    assert (result["n_problems"], result["n_seeds"]) == (30, 2)
    assert (result["low"], result["high"]) == pytest.approx((0.3, 0.7))


def test_a_paired_difference_over_seeds_that_disagree_has_an_interval_spanning_them():
    """The arm beats the reference by 0.2 on every problem under seed 0 and loses by 0.2 under seed 1: the
    mean difference is 0 and, resampling seeds, the interval runs from -0.2 to +0.2 (as above)."""
    reference = pd.concat([_table([0.5] * 30, seed=0), _table([0.5] * 30, seed=1)])
    arm = pd.concat([_table([0.7] * 30, seed=0), _table([0.3] * 30, seed=1)])
    result = paired_difference(arm, reference, "avg", n_resamples=2000, seed=1)
    assert result["difference"] == pytest.approx(0.0)
    assert (result["low"], result["high"]) == pytest.approx((-0.2, 0.2))


def test_two_level_resamples_draw_every_seed_and_problem_count_once_per_slot():
    from sdfb.bootstrap import _counts

    counts = _counts(np.array([[0, 0, 2], [1, 2, 0]]), 3)
    assert counts.tolist() == [[2.0, 0.0, 1.0], [1.0, 1.0, 1.0]]


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


def test_compare_arms_matches_differences_and_holm_adjusted_p_values_worked_by_hand():
    # Four problems, the reference scores 0 everywhere, so each arm's per-problem differences are its own
    # values. Exact sign-flip p-values (2**4 = 16 sign patterns, two-sided):
    #   d = [1, 1, 1, 1]: only all + or all - reach |mean| 1            -> 2/16 = 0.125
    #   d = [1, 1, 1, 0]: the three ones share a sign (2 of 8), zero free -> 4/16 = 0.25
    #   d = [1, 1, 0, 0]: the two ones share a sign (2 of 4), zeros free  -> 8/16 = 0.5
    #   d = [0, 0, 0, 0]: nothing differs                                 -> 1.0
    # Holm over the three arms, per metric (sorted p times 3, 2, 1, then running maximum):
    #   avg and pass_k: a 0.125*3 = 0.375, b 0.25*2 = 0.5, c 1.0*1 = 1.0
    #   maj (a's values [1, 1, 0, 0]): b 0.25*3 = 0.75, a max(0.75, 0.5*2) = 1.0, c 1.0
    reference = _metrics_table([0.0, 0.0, 0.0, 0.0])
    a = _metrics_table([1.0, 1.0, 1.0, 1.0]).assign(maj=[1.0, 1.0, 0.0, 0.0])
    b = _metrics_table([1.0, 1.0, 1.0, 0.0])
    c = _metrics_table([0.0, 0.0, 0.0, 0.0])

    result = compare_arms({"ref": reference, "a": a, "b": b, "c": c}, "ref", n_resamples=2000)

    expected = {  # (difference, p_value, p_holm)
        ("a", "avg"): [1.0, 0.125, 0.375],
        ("a", "pass_k"): [1.0, 0.125, 0.375],
        ("a", "maj"): [0.5, 0.5, 1.0],
        ("b", "avg"): [0.75, 0.25, 0.5],
        ("b", "pass_k"): [0.75, 0.25, 0.5],
        ("b", "maj"): [0.75, 0.25, 0.75],
        ("c", "avg"): [0.0, 1.0, 1.0],
        ("c", "pass_k"): [0.0, 1.0, 1.0],
        ("c", "maj"): [0.0, 1.0, 1.0],
    }
    assert list(zip(result["arm"], result["metric"], strict=True)) == list(expected)
    got = result[["difference", "p_value", "p_holm"]].to_numpy().tolist()
    assert got == [pytest.approx(v) for v in expected.values()]
    assert set(result["reference"]) == {"ref"}
    a_avg = result.iloc[0]
    assert (a_avg["low"], a_avg["high"], a_avg["wins"], a_avg["ties"]) == (
        1.0,
        1.0,
        4,
        0,
    )  # no spread: a point
    assert not result["finding"].any()  # a wins every problem, but 4 problems cannot give Holm p < 0.05


def test_holm_matches_a_hand_worked_example():
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> running max keeps 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]).tolist() == pytest.approx([0.03, 0.06, 0.06, 0.02])


def test_holm_caps_at_one_and_leaves_missing_p_values_out_of_the_count():
    # m = 2 (the NaN does not count): 0.4*2 = 0.8, then max(0.8, 0.5*1) = 0.8
    assert holm([0.5, float("nan"), 0.4]).tolist() == pytest.approx([0.8, float("nan"), 0.8], nan_ok=True)
    assert holm([0.6, 0.7]).tolist() == [1.0, 1.0]  # 0.6*2 = 1.2 capped at 1
    assert holm([]).tolist() == []


FINDINGS = [
    (0.01, 0.1, 0.3, True),
    (0.01, -0.3, -0.1, True),
    (0.01, -0.1, 0.3, False),
    (0.05, 0.1, 0.3, False),
    (float("nan"), 0.1, 0.3, False),
]


@pytest.mark.parametrize(("p_holm", "low", "high", "found"), FINDINGS)
def test_a_finding_needs_a_holm_p_below_005_and_an_interval_excluding_zero(p_holm, low, high, found):
    assert is_finding(p_holm, low, high) is found


def test_clustered_interval_of_two_unequal_problems_is_worked_by_hand():
    # Problem A has three attempts at 0, problem B one at 1: the mean over attempts is 1/4. Resampling two
    # problems: AA -> 0 (prob 1/4), AB or BA -> 1/4 (1/2), BB -> 1 (1/4); the 2.5% and 97.5% points are 0 and
    # 1.
    result = cluster_interval([0.0, 0.0, 0.0, 1.0], ["A", "A", "A", "B"], n_resamples=4000, seed=3)

    assert result == {"mean": 0.25, "low": 0.0, "high": 1.0, "n": 4, "n_clusters": 2}


def test_clustered_interval_of_one_problem_or_no_spread_is_a_point_and_of_nothing_is_nan():
    one = cluster_interval([0.0, 1.0, 1.0], ["p"] * 3)  # every resample is problem p itself
    assert one == {"mean": 2 / 3, "low": 2 / 3, "high": 2 / 3, "n": 3, "n_clusters": 1}
    flat = cluster_interval([0.5, 0.5], ["p", "q"])
    assert flat == {"mean": 0.5, "low": 0.5, "high": 0.5, "n": 2, "n_clusters": 2}
    empty = cluster_interval([float("nan")], ["p"])
    assert (empty["n"], empty["n_clusters"]) == (0, 0) and math.isnan(empty["mean"])


def test_clustering_widens_the_interval_when_attempts_of_a_problem_agree():
    # Ten problems, ten identical attempts each, five problems at 0 and five at 1: the clustered resample mean
    # is Binomial(10, 1/2) / 10, whose 2.5% and 97.5% points are 0.2 and 0.8 (P(X <= 1) = 11/1024 < 0.025 <
    # P(X <= 2) = 56/1024). Treating the 100 attempts as independent gives Binomial(100, 1/2) / 100: about
    # 0.4-0.6.
    values = np.repeat([0.0, 1.0] * 5, 10)
    problems = np.repeat(np.arange(10), 10)

    clustered = cluster_interval(values, problems, n_resamples=20_000)
    naive = mean_interval(values, n_resamples=20_000)

    assert (clustered["mean"], clustered["low"], clustered["high"]) == (0.5, 0.2, 0.8)
    assert naive["high"] - naive["low"] < 0.25


def test_clustered_interval_drops_nans_with_their_labels_and_refuses_mismatched_lengths():
    result = cluster_interval([0.0, float("nan"), 1.0], ["p", "q", "r"])
    assert (result["mean"], result["n"], result["n_clusters"]) == (0.5, 2, 2)
    with pytest.raises(ValueError, match="one entry each"):
        cluster_interval([0.0, 1.0], ["p"])


def test_compare_arms_names_the_known_arms_when_the_reference_is_missing():
    with pytest.raises(ValueError, match=r"'sft'.*\['base', 'better'\]"):
        compare_arms({"base": _metrics_table(REFERENCE), "better": _metrics_table(ARM)}, "sft")
