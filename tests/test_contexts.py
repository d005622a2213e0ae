"""Contexts: for each condition, the feedback the self-teacher sees and which rollouts are trained on."""

import pandas as pd
import pytest

from sdfb.contexts import assemble_contexts
from sdfb.names import Condition
from sdfb.prompts import load_template, render_student_prompt

Q1 = "Sara has 5 pens. She buys 7 more pens. She gives 3 pens to a friend. How many pens does Sara have now?"
Q2 = "Tom has 4 coins. He finds 2 more coins. How many coins does Tom have now?"
SOLUTION_1 = "Sara starts with 5 pens. After buying 7 more, she has 5 + 7 = 12. The answer is 9."
SOLUTION_2 = "Tom starts with 4 coins. After finding 2 more, he has 4 + 2 = 6. The answer is 6."
CRITIQUE_1 = "Step 1: 5 + 7 = 12\nStep 2: 12 - 3 = 9\nAnswer: 9"
ATTEMPT_1 = "Step 1: 5 + 7 = 12\nStep 2: 12 - 3 = 8\nAnswer: 8"


@pytest.fixture(scope="module")
def template():
    return load_template("v1")


@pytest.fixture(scope="module")
def tables(tiny_tokenizer, template):
    problems = pd.DataFrame(
        {"problem_id": ["p1", "p2"], "question": [Q1, Q2], "solution": [SOLUTION_1, SOLUTION_2]}
    )
    # Rollouts deliberately in another order than grades and critiques: the join is by key, not by position.
    rollouts = pd.DataFrame(
        {
            "problem_id": ["p1", "p1", "p2"],
            "sample_index": [0, 1, 0],
            "prompt_text": [render_student_prompt(tiny_tokenizer, template, q) for q in (Q1, Q1, Q2)],
            "completion_text": [ATTEMPT_1, "Step 1: 5 + 7 = 12\nStep 2: 12 - 3 = 9\nAnswer: 9", "Answer: 6"],
        }
    )
    grades = pd.DataFrame(
        {
            "problem_id": ["p2", "p1", "p1"],
            "sample_index": [0, 1, 0],
            "extracted_answer": ["6", "", "8"],
            "correct": [True, False, False],
        }
    )
    critiques = pd.DataFrame(
        {
            "problem_id": ["p1", "p2", "p1"],
            "sample_index": [0, 0, 1],
            "critique": [CRITIQUE_1, "", CRITIQUE_1],
            "status": ["ok", "unavailable", "wrong_answer"],
            "first_changed_step": [2, -1, -1],
            "first_wrong_step": [2, -1, -1],
        }
    )
    return problems, rollouts, grades, critiques


def assemble(tables, condition, template, tokenizer, statuses=("ok", "wrong_answer")) -> pd.DataFrame:
    return assemble_contexts(
        *tables, condition=condition, template=template, tokenizer=tokenizer, critique_statuses=statuses
    )


@pytest.mark.parametrize("condition", list(Condition))
def test_one_row_per_rollout_and_the_student_prompt_never_holds_the_context(
    tables, template, tiny_tokenizer, condition
):
    out = assemble(tables, condition, template, tiny_tokenizer)
    rollouts = tables[1]
    assert list(zip(out["problem_id"], out["sample_index"], strict=True)) == [("p1", 0), ("p1", 1), ("p2", 0)]
    assert list(out["student_prompt"]) == list(rollouts["prompt_text"])
    assert set(out["condition"]) == {condition} and set(out["template"]) == {"v1"}
    for context, student, teacher in zip(
        out["context"], out["student_prompt"], out["teacher_prompt"], strict=True
    ):
        if context:
            assert context not in student
            assert context in teacher
        assert teacher.endswith("<|im_start|>assistant\n")


def test_none_condition_is_a_control_trained_with_a_teacher_that_equals_the_student(
    tables, template, tiny_tokenizer
):
    """The control runs the same training as every arm, on a signal that is zero by construction."""
    out = assemble(tables, "none", template, tiny_tokenizer)
    assert list(out["train"]) == [True, True, True]
    assert list(out["context"]) == ["", "", ""]
    assert list(out["teacher_prompt"]) == list(out["student_prompt"])


def test_binary_condition_states_the_extracted_answer_and_its_verdict(tables, template, tiny_tokenizer):
    out = assemble(tables, "binary", template, tiny_tokenizer)
    assert list(out["train"]) == [True, True, True]
    wrong, empty, right = out["context"]
    assert "8" in wrong and "incorrect" in wrong
    assert "nothing" in empty and "incorrect" in empty  # no extracted answer
    assert "6" in right and "incorrect" not in right and "correct" in right


def test_reference_condition_holds_the_problems_solution(tables, template, tiny_tokenizer):
    out = assemble(tables, "reference", template, tiny_tokenizer)
    assert list(out["train"]) == [True, True, True]
    assert [SOLUTION_1 in c for c in out["context"]] == [True, True, False]
    assert SOLUTION_2 in out["context"].iloc[2]
    assert SOLUTION_1 in out["teacher_prompt"].iloc[0]


def test_step_aligned_condition_holds_the_critique_and_skips_unavailable_ones(
    tables, template, tiny_tokenizer
):
    out = assemble(tables, "step_aligned", template, tiny_tokenizer)
    assert list(out["train"]) == [True, True, False]
    assert CRITIQUE_1 in out["context"].iloc[0]
    assert CRITIQUE_1 in out["teacher_prompt"].iloc[1]
    assert out["context"].iloc[2] == ""
    assert out["teacher_prompt"].iloc[2] == out["student_prompt"].iloc[2]


def test_critique_status_policy_keeps_excluded_critiques_out_of_training(tables, template, tiny_tokenizer):
    out = assemble(tables, "step_aligned", template, tiny_tokenizer, statuses=("ok",))
    assert list(out["train"]) == [True, False, False]  # the wrong_answer critique is now excluded
    assert out["teacher_prompt"].iloc[1] == out["student_prompt"].iloc[1]


def test_aligned_no_repeat_shows_only_the_critique_from_its_first_changed_step(
    tables, template, tiny_tokenizer
):
    out = assemble(tables, "aligned_no_repeat", template, tiny_tokenizer)
    context = out["context"].iloc[0]
    assert "Step 2: 12 - 3 = 9\nAnswer: 9" in context
    assert "5 + 7 = 12" not in context  # the correct step is not repeated
    assert "Step 1" not in out["context"].iloc[1] and "Answer: 9" in out["context"].iloc[1]  # nothing changed


def test_aligned_with_error_quotes_the_wrong_step_verbatim_before_the_critique(
    tables, template, tiny_tokenizer
):
    out = assemble(tables, "aligned_with_error", template, tiny_tokenizer)
    context = out["context"].iloc[0]
    assert context.index("Step 2: 12 - 3 = 8") < context.index(CRITIQUE_1)
    # no wrong step to quote: the same context as step_aligned
    aligned = assemble(tables, "step_aligned", template, tiny_tokenizer)
    assert out["context"].iloc[1] == aligned["context"].iloc[1]


@pytest.mark.parametrize("condition", ["none", "binary", "reference", "step_aligned"])
def test_every_condition_keeps_the_critics_first_wrong_step_for_measuring_localisation(
    tables, template, tiny_tokenizer, condition
):
    problems, rollouts, grades, critiques = tables
    critiques = critiques.assign(
        status=["ok", "failed", "ok"]
    )  # a critic that did not answer gives no verdict
    out = assemble((problems, rollouts, grades, critiques), condition, template, tiny_tokenizer)
    keys = zip(out["problem_id"], out["sample_index"], strict=True)
    got = dict(zip(keys, out["first_wrong_step"], strict=True))
    assert got[("p1", 0)] == 2 and got[("p1", 1)] == -1
    assert pd.isna(got[("p2", 0)])
