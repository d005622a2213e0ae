"""Prompts: the step format parser, the equation parser, and
student/teacher rendering through the chat template."""

import pytest

from sdfb.localisation import _line_labels
from sdfb.names import Condition
from sdfb.prompts import (
    load_template,
    parse_attempt,
    parse_equation,
    render_context,
    render_student_prompt,
    render_teacher_prompt,
)

ANSWER = -1  # sdfb.localisation.ANSWER_STEP

QUESTION = (
    "Sara has 5 pens. She buys 7 more pens. She gives 3 pens to a friend. How many pens does Sara have now?"
)


@pytest.fixture(scope="module")
def template():
    return load_template("v1")


def test_well_formed_attempt_yields_steps_verbatim_lines_and_answer():
    parsed = parse_attempt(
        "Let me think.\nStep 1: She buys 7, so 5 + 7 = 12\n  Step 2: 12 - 3 = 9\nAnswer: 9."
    )
    assert parsed.steps == ("She buys 7, so 5 + 7 = 12", "12 - 3 = 9")
    assert parsed.step_lines == ("Step 1: She buys 7, so 5 + 7 = 12", "Step 2: 12 - 3 = 9")
    assert parsed.answer == "9"
    assert parsed.format_ok


def test_text_without_steps_or_answer_is_not_well_formatted():
    parsed = parse_attempt("I think the answer is nine.")
    assert parsed.steps == () and parsed.answer is None
    assert not parsed.format_ok


def test_answer_without_steps_is_found_but_not_well_formatted():
    parsed = parse_attempt("Answer: 14")
    assert parsed.answer == "14"
    assert parsed.steps == ()
    assert not parsed.format_ok


def test_bold_markdown_labels_are_understood():
    parsed = parse_attempt("**Step 1:** 5 + 9 = 14\n**Answer:** 14")
    assert parsed.steps == ("5 + 9 = 14",)
    assert parsed.answer == "14"
    assert parse_attempt("Answer: **14**").answer == "14"


def test_text_after_the_answer_line_is_ignored():
    parsed = parse_attempt("Step 1: 5 + 9 = 14\nAnswer: 14\n\nStep 2: 14 + 1 = 15\nAnswer: 15")
    assert parsed.steps == ("5 + 9 = 14",)
    assert parsed.answer == "14"


def test_parse_equation_takes_the_last_equation_in_the_step():
    eq = parse_equation("first 2 + 2 = 4, then 4 * 3 = 12")
    assert (eq.left, eq.op, eq.right, eq.result) == (4.0, "*", 3.0, 12.0)
    assert parse_equation("no numbers here") is None


@pytest.mark.parametrize("text", ["5 x 3 = 15", "5×3=15", "5 * 3 = 15"])
def test_x_and_times_sign_mean_multiplication(text):
    eq = parse_equation(text)
    assert eq.op == "*"
    assert eq.holds()


@pytest.mark.parametrize(
    "text, holds",
    [
        ("12 - 3 = 9", True),
        ("12 - 3 = 8", False),
        ("7 + 5 = 12", True),
        ("6 / 4 = 1.5", True),
        ("6 / 0 = 0", False),
    ],
)
def test_equation_holds_only_when_its_arithmetic_is_right(text, holds):
    assert parse_equation(text).holds() is holds


def test_student_prompt_uses_the_chat_template_and_holds_the_question(tiny_tokenizer, template):
    prompt = render_student_prompt(tiny_tokenizer, template, QUESTION)
    assert prompt.startswith("<|im_start|>system\n")
    assert prompt.endswith("<|im_end|>\n<|im_start|>assistant\n")
    assert QUESTION in prompt


def test_teacher_prompt_adds_the_context_to_the_same_chat(tiny_tokenizer, template):
    context = "Here is a hint only the teacher may see: 5 + 7 = 12"
    student = render_student_prompt(tiny_tokenizer, template, QUESTION)
    teacher = render_teacher_prompt(tiny_tokenizer, template, QUESTION, context)
    assert teacher.startswith("<|im_start|>system\n")
    assert teacher.endswith("<|im_start|>assistant\n")
    assert QUESTION in teacher
    assert context in teacher
    assert context not in student
    # Same system turn for both roles: everything before the last user turn is shared.
    last_user = "<|im_start|>user\n"
    assert teacher[: teacher.rindex(last_user)] == student[: student.rindex(last_user)]


@pytest.mark.parametrize("context", ["", "  \n"])
def test_teacher_prompt_with_empty_context_equals_the_student_prompt(tiny_tokenizer, template, context):
    assert render_teacher_prompt(tiny_tokenizer, template, QUESTION, context) == render_student_prompt(
        tiny_tokenizer, template, QUESTION
    )


def test_unknown_template_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"'nope' does not exist; known templates: \[.*'v1'.*\]"):
        load_template("nope")


def test_every_condition_has_a_context_that_fills_its_fields(template):
    assert set(Condition) <= set(template.contexts)
    assert render_context(template, "none") == ""
    binary = render_context(template, "binary", attempt_answer="14", verdict="incorrect")
    assert "14" in binary and "incorrect" in binary
    reference = render_context(template, "reference", solution="Sara starts with 5 pens. The answer is 9.")
    assert "Sara starts with 5 pens. The answer is 9." in reference
    critique = render_context(
        template, "step_aligned", critique="Step 1: 5 + 7 = 12\nStep 2: 12 - 3 = 9\nAnswer: 9"
    )
    assert "Step 1: 5 + 7 = 12\nStep 2: 12 - 3 = 9\nAnswer: 9" in critique
    for text in (binary, reference, critique):
        assert "{" not in text and text == text.strip()


def test_unknown_condition_is_rejected(template):
    with pytest.raises(ValueError, match="condition 'hint' has no context"):
        render_context(template, "hint")


# ------------------------------------------------------------------------------------------- thinking models
# Qwen3's switch, reduced: thinking off closes an empty think block in the prompt; this template also opens
# one when thinking is asked for explicitly, so each of the three settings renders differently.
THINKING_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% if enable_thinking is defined and enable_thinking is false %}<think>\n\n</think>\n\n"
    "{% elif enable_thinking is defined %}<think>\n{% endif %}{% endif %}"
)


@pytest.fixture(scope="module")
def thinking_tokenizer(tiny_model_path):
    from sdfb.models import load_tokenizer

    tokenizer = load_tokenizer("tiny")  # a fresh copy: the session's tiny_tokenizer keeps its own template
    tokenizer.chat_template = THINKING_TEMPLATE
    return tokenizer


@pytest.mark.parametrize(
    "enable_thinking, ending",
    [
        (None, "<|im_start|>assistant\n"),
        (False, "<|im_start|>assistant\n<think>\n\n</think>\n\n"),
        (True, "<|im_start|>assistant\n<think>\n"),
    ],
)
def test_enable_thinking_reaches_the_student_and_the_teacher_prompt(
    thinking_tokenizer, enable_thinking, ending
):
    template = load_template("v1", enable_thinking)
    student = render_student_prompt(thinking_tokenizer, template, QUESTION)
    teacher = render_teacher_prompt(thinking_tokenizer, template, QUESTION, "5 + 7 = 12")
    assert student.endswith(ending) and teacher.endswith(ending)
    assert "5 + 7 = 12" in teacher and "5 + 7 = 12" not in student


def test_enable_thinking_leaves_a_template_without_the_switch_as_it_was(tiny_tokenizer):
    plain = render_student_prompt(tiny_tokenizer, load_template("v1"), QUESTION)
    for setting in (False, True):
        assert render_student_prompt(tiny_tokenizer, load_template("v1", setting), QUESTION) == plain


# Each text with its steps, its answer and the step index of each of its lines
# (sdfb.localisation._line_labels), worked out by hand: thinking (tags included) contributes neither steps nor
# an answer line.
THINKING_TEXTS = {
    "a closed block, then the attempt": (
        "<think>\nStep 1: 2 + 2 = 5\nAnswer: 5\n</think>\n\nStep 1: 2 + 2 "
        "= 4\nStep 2: 4 * 3 = 12\nAnswer: 12",
        ("2 + 2 = 4", "4 * 3 = 12"),
        "12",
        [0, 0, 0, 0, 0, 1, 2, ANSWER],
    ),
    "an unclosed block runs to the end": (
        "Step 1: 3 + 4 = 7\n<think>\nStep 2: 7 - 1 = 6\nAnswer: 6",
        ("3 + 4 = 7",),
        None,
        [1, 0, 0, 0],
    ),
    "the prompt opened the block: all before </think> is thinking": (
        "Step 1: 1 + 1 = 2\nAnswer: 2\n</think>\nStep 1: 1 + 2 = 3\nAnswer: 3",
        ("1 + 2 = 3",),
        "3",
        [0, 0, 0, 1, ANSWER],
    ),
    "a stray </think> closes back to the previous block": (
        "<think>a</think>\nStep 1: 1 + 1 = 2\n</think>\nStep 1: 2 + 2 = 4\nAnswer: 4",
        ("2 + 2 = 4",),
        "4",
        [0, 0, 0, 1, ANSWER],
    ),
    "tags inside a line: the rest of the line counts": (
        "<think>hmm, Step 1: no</think>Step 1: 5 + 9 = 14\r\nAnswer: 14 <think>sure?</think>",
        ("5 + 9 = 14",),
        "14",
        [1, ANSWER],
    ),
    "thinking after the answer is not the model talking on": (
        "Step 1: 2 + 3 = 5\nAnswer: 5\n<think>\nStep 2: 5 + 1 = 6\n</think>",
        ("2 + 3 = 5",),
        "5",
        [1, ANSWER, 0, 0, 0],
    ),
}


@pytest.mark.parametrize("case", list(THINKING_TEXTS))
def test_steps_and_answers_inside_thinking_are_not_part_of_the_attempt(case):
    text, steps, answer, labels = THINKING_TEXTS[case]
    parsed = parse_attempt(text)
    assert parsed.steps == steps
    assert parsed.answer == answer
    assert all("think>" not in line for line in (*parsed.step_lines, parsed.answer_line or ""))
    assert _line_labels(text) == labels
    assert len(labels) == len(text.splitlines())  # line numbers stay those of the text


def test_a_think_block_left_alone_gives_no_steps_and_no_answer():
    parsed = parse_attempt("<think>\nStep 1: 5 + 9 = 14\nAnswer: 14\n</think>")
    assert parsed.steps == () and parsed.answer is None and not parsed.format_ok
