"""The plan's power figure and split sizes: the minimum detectable Avg@k difference against a number worked
by hand, against simulations of the paired design (numpy and the real `sdfb.stats.paired_difference`), and
its monotonicity; measured base rates and expected split sizes."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from sdfb import stats
from sdfb.experiment.power import (
    expected_splits,
    minimum_detectable_difference,
    per_problem_base_rates,
    problems_needed,
)

Z = 1.959964 + 0.841621  # z_{0.975} + z_{0.8} = 2.801585


def test_the_minimum_detectable_difference_matches_the_number_worked_by_hand():
    # n=100 problems, S=3 seeds, k=4 samples, p=0.5 everywhere. At base variance alone each problem's
    # difference has variance 2 x 0.25 / (4 x 3) = 0.041667, so MDE = 2.801585 x sqrt(0.041667 / 100) =
    # 0.05719. The arm's variance is taken at q = 0.5 + d, and 0.25 + q(1-q) = 0.5 - d^2, so d solves d = Z
    # sqrt((0.5 - d^2) / 1200): d^2 = 0.5 Z^2 / (1200 + Z^2) = 3.924439 / 1207.848878 = 0.0032491, d =
    # 0.057001.
    found = minimum_detectable_difference(100, 3, 4, 0.5)
    assert found == pytest.approx(math.sqrt(0.5 * Z**2 / (1200 + Z**2)), abs=1e-6)
    assert found == pytest.approx(0.057001, abs=1e-6)
    assert found < Z * math.sqrt(0.5 / 12 / 100) == pytest.approx(0.05719, abs=1e-5)


def test_a_list_of_equal_rates_gives_the_same_figure_as_the_single_rate():
    assert minimum_detectable_difference(50, 2, 4, [0.3] * 7) == pytest.approx(
        minimum_detectable_difference(50, 2, 4, 0.3)
    )


def _simulated(n, seeds, k, rates, difference, rng, repetitions):
    """Per-problem arm - reference Avg@k differences averaged over seeds: (repetitions, n)."""
    rates = np.broadcast_to(np.asarray(rates, dtype=float), (n,))[None, :, None]
    shape = (repetitions, n, seeds)
    reference = rng.binomial(k, rates, shape) / k
    arm = rng.binomial(k, np.minimum(rates + difference, 1.0), shape) / k
    return (arm - reference).mean(axis=2)


@pytest.mark.parametrize(
    ("n", "seeds", "k", "rates"),
    [(100, 3, 4, 0.5), (100, 3, 4, np.linspace(0.1, 0.9, 100)), (200, 1, 8, 0.2)],
    ids=["p=0.5", "spread-rates", "low-rate"],
)
def test_a_paired_t_test_at_the_minimum_detectable_difference_rejects_four_times_in_five(n, seeds, k, rates):
    difference = minimum_detectable_difference(n, seeds, k, rates)
    diffs = _simulated(n, seeds, k, rates, difference, np.random.default_rng(0), 4000)
    t = diffs.mean(axis=1) / (diffs.std(axis=1, ddof=1) / math.sqrt(n))
    rate = (np.abs(t) > scipy_stats.t.ppf(0.975, n - 1)).mean()
    # 4000 repetitions: standard error 0.006; the t test's heavier tails put it a little under the normal's
    # 0.8
    assert 0.76 <= rate <= 0.84, rate


def test_the_experiments_own_sign_flip_test_at_the_minimum_detectable_difference_rejects_about_four_in_five():
    n, seeds, k = 100, 3, 4
    difference = minimum_detectable_difference(n, seeds, k, 0.5)
    rng = np.random.default_rng(1)
    keys = {"seed": np.tile(np.arange(seeds), n), "problem_id": np.repeat([f"q{i}" for i in range(n)], seeds)}
    rejected = 0
    repetitions = 300  # about 5 s; standard error 0.023
    for rep in range(repetitions):
        reference = rng.binomial(k, 0.5, n * seeds) / k
        arm = rng.binomial(k, 0.5 + difference, n * seeds) / k
        found = stats.paired_difference(
            pd.DataFrame({**keys, "avg": arm}),
            pd.DataFrame({**keys, "avg": reference}),
            "avg",
            n_resamples=499,
            seed=rep,
        )
        rejected += found["p_value"] < 0.05
    # the permutation p-value (count + 1) / (resamples + 1) is a little conservative against the normal figure
    assert abs(rejected / repetitions - 0.8) < 0.08, rejected / repetitions


@pytest.mark.parametrize("grown", [{"n_problems": 200}, {"n_seeds": 6}, {"k": 8}])
def test_more_problems_seeds_or_samples_shrink_the_minimum_detectable_difference(grown):
    design = {"n_problems": 100, "n_seeds": 3, "k": 4, "base_rates": 0.5}
    assert minimum_detectable_difference(**{**design, **grown}) < minimum_detectable_difference(**design)


def test_base_rates_near_zero_or_one_shrink_it_since_their_samples_vary_less():
    at = {p: minimum_detectable_difference(100, 3, 4, p) for p in (0.02, 0.1, 0.5, 0.9, 0.98)}
    assert at[0.02] < at[0.1] < at[0.5]
    assert at[0.98] < at[0.9] < at[0.5]


def test_a_design_too_small_for_any_difference_gives_infinity():
    assert minimum_detectable_difference(3, 1, 2, 0.5) == math.inf
    assert minimum_detectable_difference(100, 3, 4, 1.0) == math.inf  # no room to improve


def test_a_base_without_noise_still_needs_a_positive_difference():
    found = minimum_detectable_difference(100, 3, 4, 0.0)
    assert 0 < found < 0.05


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_problems": 0}, "n_problems"),
        ({"k": 0}, "k must"),
        ({"base_rates": [0.5, 1.2]}, "proportions"),
        ({"base_rates": []}, "proportions"),
        ({"alpha": 0.0}, "alpha and power"),
    ],
)
def test_an_impossible_design_is_refused_naming_what_is_wrong(kwargs, message):
    design = {"n_problems": 10, "n_seeds": 1, "k": 4, "base_rates": 0.5}
    with pytest.raises(ValueError, match=message):
        minimum_detectable_difference(**{**design, **kwargs})


def test_per_problem_base_rates_are_each_problems_share_of_correct_samples_in_first_appearance_order():
    samples = pd.DataFrame(
        {"problem_id": ["b", "b", "a", "a", "b", "a"], "correct": [True, False, True, True, True, True]}
    )
    rates = per_problem_base_rates(samples)
    assert rates.index.tolist() == ["b", "a"]
    assert rates.tolist() == pytest.approx([2 / 3, 1.0])


def test_per_problem_base_rates_refuse_a_table_without_correct():
    with pytest.raises(ValueError, match="correct"):
        per_problem_base_rates(pd.DataFrame({"problem_id": ["a"]}))


def test_expected_splits_round_each_share_down():
    splits = expected_splits(25, 0.5)
    assert (splits.total, splits.validation, splits.test, splits.exact) == (25, 12, 12, False)
    assert expected_splits(100, 0.9).test == 10  # 100 x (1 - 0.9) is 9.999999999999998 in floating point


def test_problems_needed_is_the_fewest_whose_expected_splits_reach_the_minimum():
    assert problems_needed(0.5, 10) == 20
    assert problems_needed(0.25, 10) == 40
    assert expected_splits(problems_needed(0.3, 10), 0.3).validation >= 10
    assert expected_splits(problems_needed(0.3, 10) - 1, 0.3).validation < 10
