"""LLM critic replies, read without a model: hand-written replies for cases A-D on the pens problem, think
stripping, malformed replies, the rendered critic prompt, the reply cache and the final statuses."""

import hashlib
import json
import math
from importlib import resources

import pytest

from sdfb.critic.alignment import align, final_status, verdict_is_correct
from sdfb.critic.base import CritiqueRequest
from sdfb.critic.cache import CritiqueCache, attempt_hash, cache_key
from sdfb.critic.prompt import load_critic_prompt, parse_reply
from sdfb.prompts import parse_attempt

QUESTION = (
    "Sara has 5 pens. She buys 7 more pens. She gives 3 pens to a friend. How many pens does Sara have now?"
)
SOLUTION = "Sara has 5 + 7 = 12 pens, then 12 - 3 = 9. The answer is 9."
STEPS = ("5 + 7 = 12", "12 - 3 = 9")
WRONG_AT_STEP_2 = "Step 1: She buys 7, so 5 + 7 = 12\nStep 2: 12 - 3 = 8\nAnswer: 8"


def request(attempt: str, finish_reason: str = "stop") -> CritiqueRequest:
    return CritiqueRequest(QUESTION, SOLUTION, "9", STEPS, attempt, finish_reason)


def reply(case: str, first_error: str, steps: list[str], answer: str) -> str:
    """A critic reply in the format critic_v1 asks for."""
    tagged = "\n".join(f"<step_{k}>{step}</step_{k}>" for k, step in enumerate(steps, start=1))
    return (
        f"<case>{case}</case>\n<first_error>{first_error}</first_error>\n{tagged}\n<answer>{answer}</answer>"
    )


D_REPLY = reply("D", "2", ["She buys 7, so 5 + 7 = 12", "12 - 3 = 9"], "9")


# --- the paper's cases A-D
# --------------------------------------------------------------------------------------


def test_case_a_reproduction_keeps_the_attempts_lines_byte_for_byte():
    attempt_text = "**Step 1:** 5 + 7 = 12\nStep 2:   12 - 3 = 9\nAnswer: 9"
    attempt = parse_attempt(attempt_text)
    # the critic normalises whitespace and drops the markdown, as models do when they copy a step
    critique = parse_reply(reply("A", "none", ["5 + 7 = 12", "12 -  3 = 9"], "9"), attempt)
    assert (critique.case, critique.first_wrong_step, critique.status) == ("A", -1, "ok")
    assert critique.text == attempt_text
    alignment = align(attempt, critique.text, critique.first_wrong_step, cut_off=False)
    assert (alignment.first_changed_step, alignment.copied_share, alignment.dropped_steps) == (-1, 1.0, 0)


def test_case_b_inserted_step_renumbers_the_copied_step_which_still_counts_as_copied():
    attempt = parse_attempt("**Step 1:** After giving away 3 pens, 12 - 3 = 9\nAnswer: 9")
    critique = parse_reply(
        reply("B", "none", ["She buys 7, so 5 + 7 = 12", "After giving away 3 pens, 12 - 3 = 9"], "9"),
        attempt,
    )
    assert (critique.case, critique.first_wrong_step, critique.status) == ("B", -1, "ok")
    assert critique.text.splitlines() == [
        "Step 1: She buys 7, so 5 + 7 = 12",
        "**Step 2:** After giving away 3 pens, 12 - 3 = 9",
        "Answer: 9",
    ]
    alignment = align(attempt, critique.text, critique.first_wrong_step, cut_off=False)
    assert (alignment.first_changed_step, alignment.copied_share, alignment.dropped_steps) == (1, 1.0, 0)


def test_case_c_finishes_a_cut_off_attempt_and_does_not_owe_a_copy_of_its_half_written_step():
    attempt = parse_attempt("Step 1: She buys 7, so 5 + 7 = 12\nStep 2: Then she gives 3 away, so 12 -")
    critique = parse_reply(
        reply("C", "none", ["She buys 7, so 5 + 7 = 12", "Then she gives 3 away, so 12 - 3 = 9"], "9"),
        attempt,
    )
    assert (critique.case, critique.first_wrong_step, critique.status) == ("C", -1, "ok")
    assert critique.text.splitlines() == [
        "Step 1: She buys 7, so 5 + 7 = 12",
        "Step 2: Then she gives 3 away, so 12 - 3 = 9",
        "Answer: 9",
    ]
    finished = align(attempt, critique.text, critique.first_wrong_step, cut_off=True)
    assert (finished.first_changed_step, finished.copied_share, finished.dropped_steps) == (2, 1.0, 0)
    # without the cut-off flag the completed half step would count as a dropped correct step
    assert align(attempt, critique.text, critique.first_wrong_step, cut_off=False).dropped_steps == 1


def test_case_d_copies_the_step_before_the_error_verbatim_and_fixes_the_wrong_step():
    attempt = parse_attempt(WRONG_AT_STEP_2)
    critique = parse_reply(D_REPLY, attempt)
    assert (critique.case, critique.first_wrong_step, critique.status) == ("D", 2, "ok")
    assert critique.text.splitlines() == [
        "Step 1: She buys 7, so 5 + 7 = 12",
        "Step 2: 12 - 3 = 9",
        "Answer: 9",
    ]
    alignment = align(attempt, critique.text, critique.first_wrong_step, cut_off=False)
    assert (alignment.first_changed_step, alignment.copied_share, alignment.dropped_steps) == (2, 1.0, 0)
    assert final_status(critique.status, True, alignment.dropped_steps) == "ok"


def test_case_d_that_rewords_a_correct_step_is_demoted_to_dropped_steps():
    attempt = parse_attempt(WRONG_AT_STEP_2)
    critique = parse_reply(reply("D", "2", ["5 + 7 = 12", "12 - 3 = 9"], "9"), attempt)
    assert critique.text.splitlines()[0] == "Step 1: 5 + 7 = 12"
    alignment = align(attempt, critique.text, critique.first_wrong_step, cut_off=False)
    assert (alignment.first_changed_step, alignment.copied_share, alignment.dropped_steps) == (1, 0.0, 1)
    assert final_status(critique.status, True, alignment.dropped_steps) == "dropped_steps"


def test_a_critique_that_changes_only_the_answer_first_changes_one_past_its_last_step():
    attempt = parse_attempt("Step 1: 5 + 7 = 12\nStep 2: 12 - 3 = 9\nAnswer: 8")
    critique = parse_reply(reply("D", "none", ["5 + 7 = 12", "12 - 3 = 9"], "9"), attempt)
    alignment = align(attempt, critique.text, critique.first_wrong_step, cut_off=False)
    assert (alignment.first_changed_step, alignment.copied_share, alignment.dropped_steps) == (3, 1.0, 0)


def test_a_lowercase_case_letter_followed_by_an_explanation_reads_as_its_capital():
    critique = parse_reply(
        D_REPLY.replace("<case>D</case>", "<case>d (step 2 is wrong)</case>"), parse_attempt(WRONG_AT_STEP_2)
    )
    assert (critique.case, critique.status) == ("D", "ok")


# --- the critic's own reasoning
# -------------------------------------------------------------------------------


def test_a_think_block_is_removed_and_fake_tags_inside_it_are_ignored():
    thinking = "<think>Maybe <case>C</case> with <step_1>5 + 7 = 13</step_1><answer>10</answer>?</think>\n"
    critique = parse_reply(thinking + D_REPLY, parse_attempt(WRONG_AT_STEP_2))
    assert (critique.case, critique.status) == ("D", "ok")
    assert critique.text.splitlines() == [
        "Step 1: She buys 7, so 5 + 7 = 12",
        "Step 2: 12 - 3 = 9",
        "Answer: 9",
    ]
    assert critique.raw == thinking + D_REPLY


def test_reasoning_before_a_lone_closing_think_tag_is_discarded():
    # the chat template opened <think>, so the reply holds only its end
    thinking = (
        "Step 2 looks wrong. Draft: <case>A</case><step_1>5 + 7 = 13</step_1><step_3>x</step_3>\n</think>\n"
    )
    critique = parse_reply(thinking + D_REPLY, parse_attempt(WRONG_AT_STEP_2))
    assert (critique.case, critique.first_wrong_step, critique.status) == ("D", 2, "ok")
    assert critique.text.splitlines() == [
        "Step 1: She buys 7, so 5 + 7 = 12",
        "Step 2: 12 - 3 = 9",
        "Answer: 9",
    ]


def test_reasoning_that_never_closes_is_malformed_and_says_to_raise_max_tokens():
    cut_off_reply = "<think>Step 1 is right. " + D_REPLY
    critique = parse_reply(cut_off_reply, parse_attempt(WRONG_AT_STEP_2))
    assert (critique.case, critique.status, critique.text) == ("none", "malformed", "")
    assert "max_tokens" in critique.error
    assert critique.raw == cut_off_reply


# --- malformed replies
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad_reply", "error"),
    [
        ("", "empty text"),
        ("  \n ", "empty text"),
        (D_REPLY.replace("<case>D</case>", ""), "no <case>"),
        (D_REPLY.replace("<case>D</case>", "<case>E</case>"), "no <case>"),
        ("<case>D</case><first_error>2</first_error>Step 1: 5 + 7 = 12<answer>9</answer>", "no <step_k>"),
        (reply("D", "2", ["a"], "9").replace("step_1", "step_2"), "not numbered 1..n in order: [2]"),
        (
            "<case>D</case><step_1>5 + 7 = 12</step_1><step_3>12 - 3 = 9</step_3><answer>9</answer>",
            "not numbered 1..n in order: [1, 3]",
        ),
        (reply("D", "2", ["5 + 7 = 12", "  "], "9"), "an empty <step_k> tag"),
        (D_REPLY.replace("<answer>9</answer>", ""), "no <answer>"),
        (D_REPLY.replace("<answer>9</answer>", "<answer> </answer>"), "no <answer>"),
    ],
    ids=[
        "empty",
        "whitespace",
        "no-case",
        "case-out-of-range",
        "no-step-tags",
        "starts-at-step-2",
        "skips-step-2",
        "empty-step",
        "no-answer",
        "empty-answer",
    ],
)
def test_a_reply_missing_part_of_the_format_is_malformed_and_says_what_is_missing(bad_reply, error):
    critique = parse_reply(bad_reply, parse_attempt(WRONG_AT_STEP_2))
    assert (critique.case, critique.first_wrong_step, critique.text, critique.status) == (
        "none",
        -1,
        "",
        "malformed",
    )
    assert error in critique.error
    assert critique.raw == bad_reply


def test_no_reply_at_all_is_malformed_with_an_empty_raw():
    critique = parse_reply(None, parse_attempt(WRONG_AT_STEP_2))
    assert (critique.status, critique.raw) == ("malformed", "")
    assert "empty text" in critique.error


# --- the critic prompt
# ----------------------------------------------------------------------------------------


def test_critic_messages_show_the_question_the_reference_and_the_attempt_in_step_tags():
    prompt = load_critic_prompt("critic_v1")
    system, user = prompt.messages(request(WRONG_AT_STEP_2), parse_attempt(WRONG_AT_STEP_2))
    assert system == {"role": "system", "content": prompt.system}
    assert user["role"] == "user"
    assert QUESTION in user["content"] and SOLUTION in user["content"]
    assert (
        "<step_1>She buys 7, so 5 + 7 = 12</step_1>\n<step_2>12 - 3 = 8</step_2>\n<answer>8</answer>"
        in user["content"]
    )
    assert "{" not in user["content"]  # every placeholder was filled


@pytest.mark.parametrize(("finish_reason", "noted"), [("length", True), ("stop", False), ("", False)])
def test_the_cut_off_note_appears_only_when_the_attempt_ran_out_of_tokens(finish_reason, noted):
    prompt = load_critic_prompt("critic_v1")
    attempt_text = "Step 1: She buys 7, so 5 + 7 = 12\nStep 2: Then she gives 3 away, so 12 -"
    _, user = prompt.messages(request(attempt_text, finish_reason), parse_attempt(attempt_text))
    assert prompt.cut_off_note.strip()
    assert (prompt.cut_off_note in user["content"]) is noted
    assert "<step_2>Then she gives 3 away, so 12 -</step_2>\n<answer></answer>" in user["content"]


def test_an_unknown_critic_prompt_raises_and_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"'nope' does not exist; known critic prompts: \['critic_v1'\]"):
        load_critic_prompt("nope")


def test_the_prompt_content_hash_is_the_files_hash_and_is_the_same_on_every_load():
    text = resources.files("sdfb.critic.prompts").joinpath("critic_v1.yaml").read_text()
    first = load_critic_prompt("critic_v1")
    load_critic_prompt.cache_clear()
    again = load_critic_prompt("critic_v1")
    assert first is not again
    assert first.content_hash == again.content_hash == hashlib.sha256(text.encode()).hexdigest()[:16]
    assert first.version == "critic_v1"


# --- the reply cache
# ------------------------------------------------------------------------------------------

PROBLEM = {"id": "p1", "question": QUESTION, "solution": SOLUTION}
IDENTITY = {
    "kind": "openai",
    "model": "critic-model",
    "revision": "main",
    "prompt": "critic_v1",
    "prompt_hash": "abc",
    "decoding": {"temperature": 0.0, "max_tokens": 2048},
}
KEY = cache_key(PROBLEM, attempt_hash([1, 2, 3]), IDENTITY)


def test_the_cache_returns_a_stored_reply_and_none_for_a_key_it_never_stored(tmp_path):
    cache = CritiqueCache(tmp_path / "critiques")
    assert cache.get(KEY) is None
    assert len(cache) == 0
    cache.put(KEY, D_REPLY, {"problem_id": "p1"})
    assert cache.get(KEY) == D_REPLY
    assert cache.get(cache_key(PROBLEM, attempt_hash([1, 2, 4]), IDENTITY)) is None
    assert len(cache) == 1


@pytest.mark.parametrize(
    "damage",
    [b"{not json", b"[1, 2]", b'{"critic": "x"}', b"null", b"\xff\xfe\x00"],
    ids=["not-json", "a-list", "no-reply-field", "null", "not-utf8"],
)
def test_a_damaged_cache_entry_is_a_miss_and_is_rewritten_by_the_next_put(tmp_path, damage):
    cache = CritiqueCache(tmp_path)
    cache.put(KEY, D_REPLY, {})
    (entry,) = tmp_path.glob("*/*.json")
    entry.write_bytes(damage)
    assert cache.get(KEY) is None
    cache.put(KEY, "fresh reply", {"problem_id": "p1"})
    assert cache.get(KEY) == "fresh reply"
    assert json.loads(entry.read_text())["problem_id"] == "p1"


def test_the_cache_key_is_the_same_for_equal_inputs_in_any_key_order():
    reordered = {key: IDENTITY[key] for key in reversed(IDENTITY)}
    reordered["decoding"] = {"max_tokens": 2048, "temperature": 0.0}
    assert cache_key(dict(reversed(PROBLEM.items())), attempt_hash((1, 2, 3)), reordered) == KEY


@pytest.mark.parametrize(
    ("problem", "tokens", "identity"),
    [
        ({**PROBLEM, "id": "p2"}, [1, 2, 3], IDENTITY),
        ({**PROBLEM, "question": QUESTION + " "}, [1, 2, 3], IDENTITY),
        ({**PROBLEM, "solution": "The answer is 9."}, [1, 2, 3], IDENTITY),
        (PROBLEM, [1, 2], IDENTITY),
        (PROBLEM, [1, 2, 3], {**IDENTITY, "kind": "vllm"}),
        (PROBLEM, [1, 2, 3], {**IDENTITY, "model": "other-model"}),
        (PROBLEM, [1, 2, 3], {**IDENTITY, "revision": "abc123"}),
        (PROBLEM, [1, 2, 3], {**IDENTITY, "prompt": "critic_v2"}),
        (PROBLEM, [1, 2, 3], {**IDENTITY, "prompt_hash": "def"}),
        (PROBLEM, [1, 2, 3], {**IDENTITY, "decoding": {"temperature": 0.7, "max_tokens": 2048}}),
        (PROBLEM, [1, 2, 3], {**IDENTITY, "decoding": {"temperature": 0.0, "max_tokens": 4096}}),
    ],
    ids=[
        "problem-id",
        "question",
        "solution",
        "attempt-tokens",
        "kind",
        "model",
        "revision",
        "prompt-version",
        "prompt-file",
        "temperature",
        "max-tokens",
    ],
)
def test_the_cache_key_changes_when_anything_that_decides_the_reply_changes(problem, tokens, identity):
    assert cache_key(problem, attempt_hash(tokens), identity) != KEY


def test_the_attempt_hash_depends_on_the_token_ids_and_their_order_not_their_container():
    assert attempt_hash([1, 2, 3]) == attempt_hash((1, 2, 3)) == attempt_hash(iter([1, 2, 3]))
    assert attempt_hash([1, 2, 3]) != attempt_hash([3, 2, 1])
    assert attempt_hash([12, 3]) != attempt_hash([1, 23])


# --- final statuses
# -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("critic_status", "answer_correct", "dropped", "expected"),
    [
        ("ok", True, 0, "ok"),
        ("ok", True, 2, "dropped_steps"),
        ("ok", False, 0, "wrong_answer"),
        ("ok", False, 1, "wrong_answer"),
        ("malformed", True, 0, "malformed"),
        ("failed", False, 1, "failed"),
        ("no_steps", False, 0, "no_steps"),
        ("unavailable", False, 0, "unavailable"),
    ],
)
def test_final_status_keeps_critic_failures_and_ranks_a_wrong_answer_above_dropped_steps(
    critic_status, answer_correct, dropped, expected
):
    assert final_status(critic_status, answer_correct, dropped) == expected


@pytest.mark.parametrize(
    ("case", "verdict"), [("A", True), ("B", True), ("C", False), ("D", False), ("none", None)]
)
def test_cases_a_and_b_judge_the_attempts_answer_right_and_c_and_d_judge_it_wrong(case, verdict):
    assert verdict_is_correct(case) is verdict


def test_copied_share_is_nan_when_the_critic_judged_no_step_correct():
    attempt = parse_attempt("Step 1: 5 + 7 = 13\nStep 2: 13 - 3 = 10\nAnswer: 10")
    critique = parse_reply(reply("D", "1", ["5 + 7 = 12", "12 - 3 = 9"], "9"), attempt)
    alignment = align(attempt, critique.text, critique.first_wrong_step, cut_off=False)
    assert (alignment.first_changed_step, alignment.dropped_steps) == (1, 0)
    assert math.isnan(alignment.copied_share)


# --- replies that models really write (found by review)
# -----------------------------------------------------------


@pytest.mark.parametrize("first_error", ["2", "Step 2", "step_2", "2."])
def test_first_error_is_read_from_any_phrasing_that_names_one_step(first_error):
    attempt = parse_attempt(WRONG_AT_STEP_2)
    critique = parse_reply(reply("D", first_error, ["She buys 7, so 5 + 7 = 12", "12 - 3 = 9"], "9"), attempt)
    assert critique.first_wrong_step == 2
    alignment = align(attempt, critique.text, critique.first_wrong_step, cut_off=False)
    assert (alignment.copied_share, alignment.dropped_steps) == (1.0, 0)


def test_a_first_error_beyond_the_attempt_is_malformed():
    critique = parse_reply(reply("D", "7", ["5 + 7 = 12", "12 - 3 = 9"], "9"), parse_attempt(WRONG_AT_STEP_2))
    assert critique.status == "malformed" and "step 7" in critique.error


def test_a_step_label_repeated_inside_the_tag_is_not_part_of_the_step():
    attempt = parse_attempt(WRONG_AT_STEP_2)
    critique = parse_reply(
        reply("D", "2", ["Step 1: She buys 7, so 5 + 7 = 12", "**Step 2:** 12 - 3 = 9"], "9"), attempt
    )
    assert critique.text == "Step 1: She buys 7, so 5 + 7 = 12\nStep 2: 12 - 3 = 9\nAnswer: 9"


def test_an_unchanged_answer_keeps_the_attempts_answer_line_byte_for_byte():
    attempt_text = "Step 1: 5 + 7 = 12\nStep 2: 12 - 3 = 9\n**Answer:** 9"
    critique = parse_reply(reply("A", "none", ["5 + 7 = 12", "12 - 3 = 9"], "9"), parse_attempt(attempt_text))
    assert critique.text == attempt_text


def test_every_closed_think_block_is_removed_not_just_the_text_before_the_last_one():
    attempt = parse_attempt(WRONG_AT_STEP_2)
    body = reply("D", "2", ["She buys 7, so 5 + 7 = 12", "12 - 3 = 9"], "9")
    critique = parse_reply(f"<think>first thoughts</think>{body}<think>second thoughts</think>", attempt)
    assert critique.status == "ok" and critique.text.endswith("Answer: 9")
