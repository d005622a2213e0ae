"""SymbolicCritic: step-aligned critiques for the paper's cases A-D on a
two-step problem, checked line by line."""

import pandas as pd
import pytest

from sdfb.config import CriticConfig, GradingConfig
from sdfb.critic import CritiqueRequest, SymbolicCritic, critique_rollouts, make_critic

QUESTION = (
    "Sara has 5 pens. She buys 7 more pens. She gives 3 pens to a friend. How many pens does Sara have now?"
)
STEPS = ("5 + 7 = 12", "12 - 3 = 9")


def request(attempt: str, steps: tuple[str, ...] = STEPS, finish_reason: str = "stop") -> CritiqueRequest:
    return CritiqueRequest(
        QUESTION, "Sara has 12, then 9. The answer is 9.", "9", steps, attempt, finish_reason
    )


def critique(attempt: str, **kwargs):
    return SymbolicCritic().critique_one(request(attempt, **kwargs))


def test_case_a_a_fully_correct_attempt_is_reproduced_exactly():
    attempt = "Step 1: She buys 7 pens, so 5 + 7 = 12\nStep 2: 12 - 3 = 9\nAnswer: 9"
    result = critique(attempt)
    assert (result.case, result.first_wrong_step, result.status) == ("A", -1, "ok")
    assert result.text == attempt


def test_case_b_right_answer_with_a_missing_step_gets_the_step_inserted_and_keeps_the_correct_one():
    result = critique("Step 1: She buys 7, so 5 + 7 = 12\nAnswer: 9")
    assert (result.case, result.first_wrong_step, result.status) == ("B", -1, "ok")
    assert result.text.splitlines() == [
        "Step 1: She buys 7, so 5 + 7 = 12",
        "Step 2: 12 - 3 = 9",
        "Answer: 9",
    ]


def test_case_b_a_missing_first_step_keeps_the_solvers_correct_later_step():
    result = critique("Step 1: After giving away 3 pens, 12 - 3 = 9\nAnswer: 9")
    assert result.case == "B"
    assert "5 + 7 = 12" in result.text
    assert "After giving away 3 pens, 12 - 3 = 9" in result.text
    assert result.first_wrong_step == -1


def test_case_c_a_cut_off_attempt_is_finished_after_its_correct_step():
    result = critique("Step 1: She buys 7, so 5 + 7 = 12\n", finish_reason="length")
    assert (result.case, result.first_wrong_step, result.status) == ("C", -1, "ok")
    assert result.text.splitlines() == [
        "Step 1: She buys 7, so 5 + 7 = 12",
        "Step 2: 12 - 3 = 9",
        "Answer: 9",
    ]


def test_case_c_an_attempt_cut_off_mid_step_is_finished_not_corrected():
    result = critique(
        "Step 1: She buys 7, so 5 + 7 = 12\nStep 2: Then she gives 3 away, so 12 -", finish_reason="length"
    )
    assert result.text.splitlines() == [
        "Step 1: She buys 7, so 5 + 7 = 12",
        "Step 2: 12 - 3 = 9",
        "Answer: 9",
    ]
    assert (result.case, result.first_wrong_step) == ("C", -1)


def test_case_d_the_first_wrong_step_is_fixed_and_the_correct_step_kept_verbatim():
    result = critique("Step 1: She buys 7, so 5 + 7 = 12\nStep 2: 12 - 3 = 8\nAnswer: 8")
    assert (result.case, result.first_wrong_step, result.status) == ("D", 2, "ok")
    assert result.text.splitlines() == [
        "Step 1: She buys 7, so 5 + 7 = 12",
        "Step 2: 12 - 3 = 9",
        "Answer: 9",
    ]


def test_case_d_with_a_wrong_first_step_rewrites_every_step():
    result = critique("Step 1: 5 + 7 = 13\nStep 2: 13 - 3 = 10\nAnswer: 10")
    assert (result.case, result.first_wrong_step) == ("D", 1)
    assert result.text.splitlines() == ["Step 1: 5 + 7 = 12", "Step 2: 12 - 3 = 9", "Answer: 9"]


def test_a_true_equation_with_the_wrong_intermediate_value_counts_as_wrong():
    # 5 + 8 = 13 is true arithmetic but not the problem's step 1 (5 + 7 = 12).
    result = critique("Step 1: 5 + 8 = 13\nStep 2: 13 - 3 = 10\nAnswer: 10")
    assert (result.case, result.first_wrong_step) == ("D", 1)


def test_an_answer_in_dollar_signs_that_grading_accepts_is_case_a():
    result = critique("Step 1: 5 + 7 = 12\nStep 2: 12 - 3 = 9\nAnswer: $9$")
    assert (result.case, result.first_wrong_step) == ("A", -1)


def test_problem_without_reference_steps_is_unavailable():
    result = critique("Step 1: 5 + 7 = 12\nAnswer: 9", steps=())
    assert (result.case, result.first_wrong_step, result.text, result.status) == (
        "none",
        -1,
        "",
        "unavailable",
    )


def test_problem_with_a_step_that_is_not_an_equation_is_unavailable():
    assert critique("Answer: 9", steps=("5 + 7 = 12", "then subtract three")).status == "unavailable"


def test_make_critic_builds_the_configured_backend_and_llm_critics_need_a_model():
    assert isinstance(make_critic(CriticConfig()), SymbolicCritic)
    assert make_critic(CriticConfig(kind="openai", model="m", cache=False)).name == "openai:m"
    with pytest.raises(ValueError, match="critic.kind=vllm needs critic.model"):
        CriticConfig(kind="vllm")


def test_critique_rollouts_returns_one_row_per_rollout_in_order():
    problems = pd.DataFrame(
        {
            "problem_id": ["p1", "p2"],
            "question": [QUESTION, "Tom has 4 coins. How many coins does Tom have?"],
            "solution": ["The answer is 9.", "The answer is 4."],
            "answer": ["9", "4"],
            "steps": [list(STEPS), []],
        }
    )
    rollouts = pd.DataFrame(
        {
            "problem_id": ["p1", "p2", "p1"],
            "sample_index": [0, 0, 1],
            "completion_text": [
                "Step 1: 5 + 7 = 12\nStep 2: 12 - 3 = 9\nAnswer: 9",
                "Answer: 4",
                "Step 1: 5 + 7 = 13\nAnswer: 13",
            ],
            "finish_reason": ["stop", "stop", "stop"],
            "completion_ids": [[1, 2], [3], [4, 5]],
        }
    )
    grades = pd.DataFrame(
        {"problem_id": ["p1", "p1", "p2"], "sample_index": [1, 0, 0], "correct": [False, True, True]}
    )
    table = critique_rollouts(rollouts, problems, grades, SymbolicCritic(), GradingConfig(workers=1))
    assert list(table["problem_id"]) == ["p1", "p2", "p1"]
    assert list(table["sample_index"]) == [0, 0, 1]
    assert list(table["case"]) == ["A", "none", "D"]
    assert list(table["first_wrong_step"]) == [-1, -1, 1]
    assert list(table["status"]) == ["ok", "unavailable", "ok"]
    assert set(table["critic"]) == {"symbolic"}
    assert table["critique"].iloc[2] == "Step 1: 5 + 7 = 12\nStep 2: 12 - 3 = 9\nAnswer: 9"
    # alignment checks: the correct attempt is reproduced (nothing changed); the wrong one changes at step 1
    assert list(table["first_changed_step"]) == [-1, -1, 1]
    assert table["copied_share"].iloc[0] == 1.0 and table["copied_share"].isna().iloc[2]
    assert list(table["answer_correct"]) == [True, False, True]
    assert list(table["verdict_agrees"]) == [True, None, True]
