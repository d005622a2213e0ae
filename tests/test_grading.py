"""Grading: answer extraction and the process-pool comparison with math-verify, one status per pair, in order.

Each grade_pairs call starts a spawn pool (about two seconds of imports), so the status cases share one call.
"""

import pandas as pd
import pytest

from sdfb.grading import STATUSES, extract_answer, grade_completions, grade_pairs

# (predicted, gold, expected status). math_verify.parse("banana") returns [], so it cannot be compared.
STATUS_CASES = [
    ("14", "14", "correct"),
    ("14.0", "14", "correct"),
    ("13", "14", "wrong"),
    (None, "14", "no_answer"),
    ("banana", "14", "unparseable"),
    ("1/2", "0.5", "correct"),
]


@pytest.fixture(scope="module")
def status_grades():
    return grade_pairs([(p, g) for p, g, _ in STATUS_CASES], timeout_seconds=60, workers=2)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Step 1: 5 + 9 = 14\nAnswer: 14", "14"),
        ("so the total is \\boxed{14}.", "14"),
        ("\\boxed{3} at first, finally \\boxed{14}", "14"),
        ("Answer: **14**", "14"),
        ("**Answer:** **14**.", "14"),
        ("Answer: $14$", "14"),
        ("I am not sure.", None),
        ("Answer:", None),
    ],
)
def test_extract_answer_reads_the_answer_line_or_the_last_box(text, expected):
    assert extract_answer(text) == expected


def test_answer_line_wins_over_a_boxed_value():
    assert extract_answer("\\boxed{3}\nAnswer: 14") == "14"


def test_each_pair_gets_its_expected_status_in_order(status_grades):
    assert [g.status for g in status_grades] == [status for _, _, status in STATUS_CASES]
    assert [g.extracted_answer for g in status_grades] == [p or "" for p, _, _ in STATUS_CASES]
    assert [g.correct for g in status_grades] == [status == "correct" for _, _, status in STATUS_CASES]


def test_pairs_without_any_answer_need_no_pool():
    grades = grade_pairs([(None, "1"), (None, "2")], timeout_seconds=1, workers=2)
    assert [g.status for g in grades] == ["no_answer", "no_answer"]
    assert grade_pairs([], timeout_seconds=1, workers=2) == []


def test_a_tiny_timeout_still_yields_one_recorded_status_per_pair_in_order():
    """No real input reliably hangs math-verify, and the brief rules out mocks, so the hang path is driven by a
    1e-4 s budget that a spawned worker cannot meet: every pair must still come back, in order, with a status
    from the declared set (timeouts for the compared pairs, no_answer for the None one), never an exception."""
    pairs = [("14", "14"), (None, "3"), ("13", "14"), ("7", "7")]
    grades = grade_pairs(pairs, timeout_seconds=1e-4, workers=2)
    assert len(grades) == len(pairs)
    assert [g.extracted_answer for g in grades] == ["14", "", "13", "7"]
    assert all(g.status in STATUSES for g in grades)
    assert grades[1].status == "no_answer"
    assert {grades[0].status, grades[2].status, grades[3].status} <= {"timeout", "correct", "wrong"}
    assert "timeout" in {g.status for g in grades}


def test_a_fast_comparison_is_not_timed_out_by_the_workers_start_up():
    grades = grade_pairs([("14", "14"), ("9", "9")], timeout_seconds=0.25, workers=1)
    assert [g.status for g in grades] == ["correct", "correct"]


def test_grade_completions_returns_one_row_per_completion_with_format_and_steps():
    problems = pd.DataFrame({"problem_id": ["p1", "p2"], "answer": ["9", "14"]})
    completions = pd.DataFrame(
        {
            "problem_id": ["p1", "p1", "p2"],
            "sample_index": [0, 1, 0],
            "completion_text": [
                "Step 1: 5 + 7 = 12\nStep 2: 12 - 3 = 9\nAnswer: 9",
                "Step 1: 5 + 7 = 12\nI give up.",
                "The answer is \\boxed{15}",
            ],
        }
    )
    grades = grade_completions(completions, problems, timeout_seconds=60, workers=2)
    assert list(grades["problem_id"]) == ["p1", "p1", "p2"]
    assert list(grades["sample_index"]) == [0, 1, 0]
    assert list(grades["status"]) == ["correct", "no_answer", "wrong"]
    assert list(grades["correct"]) == [True, False, False]
    assert list(grades["extracted_answer"]) == ["9", "", "15"]
    assert list(grades["format_ok"]) == [True, False, False]
    assert list(grades["n_steps"]) == [2, 1, 0]


def test_grade_completions_rejects_completions_for_unknown_problems():
    problems = pd.DataFrame({"problem_id": ["p1"], "answer": ["9"]})
    completions = pd.DataFrame({"problem_id": ["zz"], "sample_index": [0], "completion_text": ["Answer: 9"]})
    with pytest.raises(ValueError, match="unknown problems"):
        grade_completions(completions, problems, timeout_seconds=60, workers=1)
