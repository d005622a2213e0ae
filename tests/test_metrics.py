"""Metrics: unbiased Pass@k, majority vote and the Avg@k / Pass@k / Maj@k / format-rate summary, by hand."""

import pandas as pd
import pytest

from sdfb.metrics import majority_correct, pass_at_k, score


@pytest.mark.parametrize(
    "n, c, k, expected",
    [
        (4, 1, 2, 0.5),  # 1 - C(3,2)/C(4,2) = 1 - 3/6
        (5, 0, 3, 0.0),  # no correct sample
        (3, 3, 3, 1.0),  # every sample correct
        (4, 2, 1, 0.5),  # k=1 is the plain accuracy 2/4
        (5, 2, 2, 0.7),  # 1 - C(3,2)/C(5,2) = 1 - 3/10
        (4, 3, 2, 1.0),  # n - c = 1 < k: every pair holds a correct sample
    ],
)
def test_pass_at_k_matches_hand_worked_values(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected)


@pytest.mark.parametrize("n, c, k", [(3, 4, 1), (3, 1, 4), (3, 1, 0), (3, -1, 1)])
def test_pass_at_k_rejects_impossible_counts(n, c, k):
    with pytest.raises(ValueError):
        pass_at_k(n, c, k)


def test_majority_vote_picks_the_most_frequent_answer():
    assert majority_correct(["9", "8", "9"], [True, False, True])
    assert not majority_correct(["8", "9", "8"], [False, True, False])


def test_majority_tie_goes_to_the_answer_seen_first():
    assert majority_correct(["9", "8", "8", "9"], [True, False, False, True])
    assert not majority_correct(["8", "9", "9", "8"], [False, True, True, False])


def test_samples_without_an_answer_do_not_vote():
    # Three missing answers would outvote "9" if None counted as an answer.
    assert majority_correct([None, None, None, "9"], [False, False, False, True])
    assert majority_correct(["", None, "9"], [False, False, True])
    assert not majority_correct([None, None], [False, False])


def _samples() -> pd.DataFrame:
    # p1: answers 8, 9, 9.0 (2 correct; only "9.0" == "9" makes 9 the majority, else 8 wins a three-way tie);
    # p2: answers 5, 6, 6 (1 correct; the majority 6 is wrong).
    return pd.DataFrame(
        {
            "problem_id": ["p1", "p1", "p1", "p2", "p2", "p2"],
            "extracted_answer": ["8", "9", "9.0", "5", "6", "6"],
            "correct": [False, True, True, True, False, False],
            "format_ok": [False, True, True, True, True, False],
        }
    )


def test_score_on_two_problems_with_three_samples_matches_hand_computed_values():
    result = score(_samples(), k=3)
    assert result["k"] == 3
    assert result["n_problems"] == 2
    assert result["avg_at_k"] == pytest.approx(3 / 6)  # 3 correct of 6 samples
    assert result["pass_at_k"] == pytest.approx(1.0)  # both problems have a correct sample among their 3
    assert result["maj_at_k"] == pytest.approx(0.5)  # p1's majority 9 right, p2's "6" wrong
    assert result["format_rate"] == pytest.approx(4 / 6)


def test_score_at_k_below_the_sample_count_uses_the_unbiased_estimator():
    result = score(_samples(), k=1)
    # p1: 1 - C(1,1)/C(3,1) = 2/3; p2: 1 - C(2,1)/C(3,1) = 1/3; mean 1/2.
    assert result["pass_at_k"] == pytest.approx(0.5)


def test_score_refuses_problems_with_fewer_than_k_samples():
    samples = _samples().iloc[:5]  # p2 keeps only 2 samples
    with pytest.raises(ValueError, match="at least k=3 samples; smallest has 2"):
        score(samples, k=3)
