"""Token-to-step localisation of the distillation signal, checked on real tokenizers and numbers worked by hand."""

import math

import numpy as np
import pytest

from sdfb import localisation
from sdfb.localisation import attempt_localisation, segments, signal_activity, token_spans, token_steps
from sdfb.models import ModelNotFoundError, cache_dir, load_tokenizer
from sdfb.prompts import parse_attempt

# Lines of an ASCII completion and the step index each should get (0 preamble/blank, k step k, -1 answer).
LINES = [
    ("Let me work it out.", 0),
    ("Step 1: 12 + 5 = 17", 1),
    ("Step 2: 17 * 3 = 52", 2),
    ("", 0),
    ("Step 3: 52 - 2 = 50", 3),
    ("Answer: 50", -1),
]
TEXT = "\n".join(line for line, _ in LINES)


@pytest.fixture(scope="module", params=["tiny", "smollm2-135m"])
def tokenizer(request, tiny_model_path):
    if request.param == "smollm2-135m" and not (cache_dir() / "models" / "smollm2-135m-instruct").exists():
        pytest.skip("SmolLM2 is not converted yet (sdfb.models.ensure_smollm2 takes ~20 s once)")
    try:
        return load_tokenizer(request.param)
    except ModelNotFoundError as exc:
        pytest.skip(f"{request.param} tokenizer cannot load offline: {exc}")


class CharTokenizer:
    """A stand-in tokenizer whose vocabulary is given pieces of text, for spans no real vocabulary guarantees."""

    all_special_ids = [0]

    def __init__(self, pieces):
        self.pieces = ["<eos>", *pieces]

    def decode(self, ids, skip_special_tokens=True, clean_up_tokenization_spaces=False):
        return "".join(self.pieces[i] for i in ids if not (skip_special_tokens and i == 0))


def test_every_token_gets_the_step_of_the_line_its_decoded_text_starts_in(tokenizer):
    ids = tokenizer.encode(TEXT, add_special_tokens=False)
    pieces = [tokenizer.decode([i]) for i in ids]
    assert "".join(pieces) == TEXT  # ASCII text: each token decodes on its own
    expected, start = [], 0
    for piece in pieces:
        first = start + len(piece) - len(piece.lstrip("\n"))
        first = first if first < start + len(piece) else start
        expected.append(LINES[TEXT[:first].count("\n")][1])
        start += len(piece)

    steps = token_steps(TEXT, ids, tokenizer)

    assert steps == expected
    assert set(steps) == {0, 1, 2, 3, -1}
    assert max(steps) == len(parse_attempt(TEXT).steps)


def test_tokens_of_each_step_decode_to_that_steps_line_even_with_multibyte_characters(tokenizer):
    text = "Think.\nStep 1: 2 × 3 = 6 €\nStep 2: 6 − 1 = 5\nAnswer: 5 €"
    ids = [*tokenizer.encode(text, add_special_tokens=False), tokenizer.eos_token_id]

    steps = token_steps(text, ids, tokenizer)

    def line_of(k):
        return tokenizer.decode([i for i, s in zip(ids, steps, strict=True) if s == k]).strip()

    assert line_of(1) == "Step 1: 2 × 3 = 6 €"
    assert line_of(2) == "Step 2: 6 − 1 = 5"
    assert line_of(-1) == "Answer: 5 €"
    assert steps[-1] == 0  # the end-of-sequence token has no characters


def test_a_token_straddling_a_line_break_belongs_to_the_line_of_its_first_other_character():
    pieces = ["Ok", ".\n", "Step", " 1: 2", "\nStep 2", ": 4", "\n\n", "Answer: 4", "\nmore"]
    tok = CharTokenizer(pieces)
    ids = [*range(1, len(pieces) + 1), 0]
    text = "".join(pieces)

    assert token_steps(text, ids, tok) == [0, 0, 1, 1, 2, 2, 2, -1, 0, 0]


def test_spans_cover_the_text_and_special_tokens_are_empty():
    tok = CharTokenizer(["Step 1: ", "x\n", "Answer: 1"])

    spans = token_spans("Step 1: x\nAnswer: 1", [1, 2, 0, 3, 0], tok)

    assert spans.tolist() == [[0, 8], [8, 10], [10, 10], [10, 19], [19, 19]]


def test_text_after_the_answer_line_belongs_to_no_step(tiny_tokenizer):
    text = "Step 1: 1 + 1 = 2\nAnswer: 2\n\nStep 2: 2 + 2 = 4\nAnswer: 4"
    ids = tiny_tokenizer.encode(text, add_special_tokens=False)

    steps = token_steps(text, ids, tiny_tokenizer)

    spans = token_spans(text, ids, tiny_tokenizer)
    later = [s for s, (start, _) in zip(steps, spans, strict=True) if start > text.index("Step 2")]
    assert later and set(later) == {0}
    answer = [i for i, s in zip(ids, steps, strict=True) if s == -1]
    assert tiny_tokenizer.decode(answer).strip() == "Answer: 2"


def test_ids_that_do_not_decode_to_the_text_raise_value_error(tiny_tokenizer):
    ids = tiny_tokenizer.encode(TEXT, add_special_tokens=False)

    with pytest.raises(ValueError, match="does not reproduce"):
        token_steps(TEXT + " extra", ids, tiny_tokenizer)


def test_segments_mark_exactly_the_second_steps_tokens_as_wrong_step(tiny_tokenizer):
    ids = tiny_tokenizer.encode(TEXT, add_special_tokens=False)
    steps = token_steps(TEXT, ids, tiny_tokenizer)

    labels = segments(steps, 2)

    assert [label == "wrong_step" for label in labels] == [s == 2 for s in steps]
    assert {lab for lab, s in zip(labels, steps, strict=True) if s == 1} == {"prefix"}
    assert {lab for lab, s in zip(labels, steps, strict=True) if s == 3} == {"after"}
    assert {lab for lab, s in zip(labels, steps, strict=True) if s == -1} == {"answer"}
    assert {lab for lab, s in zip(labels, steps, strict=True) if s == 0} == {"other"}


@pytest.mark.parametrize("first_wrong_step", [None, 0, -1])
def test_without_a_known_wrong_step_step_tokens_are_unknown(first_wrong_step):
    assert segments([0, 1, 2, -1, 0], first_wrong_step) == ["other", "unknown", "unknown", "answer", "other"]


def test_a_wrong_step_past_the_last_step_makes_every_step_prefix():
    # the symbolic critic's len(steps) + 1: every step right, the final answer wrong
    assert segments([1, 2, -1], 3) == ["prefix", "prefix", "answer"]
    assert attempt_localisation([0.0, -1.0, -1.0], [1, 2, -1], 3) is None


def test_negative_advantage_only_on_the_wrong_step_puts_all_mass_there(tiny_tokenizer):
    ids = tiny_tokenizer.encode(TEXT, add_special_tokens=False)
    steps = token_steps(TEXT, ids, tiny_tokenizer)
    advantages = np.where(np.array(steps) == 2, -1.0, 0.0)

    out = attempt_localisation(advantages, steps, 2)

    assert out["neg_mass_in_wrong_step"] == 1.0
    assert out["wrong_step_token_share"] == pytest.approx(steps.count(2) / len(ids))
    assert out["mean_adv_wrong_step"] == -1.0
    assert out["mean_adv_prefix"] == 0.0 and out["mean_adv_after"] == 0.0
    assert out["n_tokens"] == len(ids)


def test_mixed_advantages_match_the_numbers_worked_by_hand():
    steps = [0, 1, 1, 2, 2, 2, 3, -1, 0, 0]
    advantages = [0.5, -1.0, 0.2, -2.0, 1.0, -1.0, -0.5, -0.5, 0.0, 0.3]
    # negative mass: -1 (step 1) -3 (step 2) -0.5 (step 3) -0.5 (answer) = -5; step 2 holds -3 of it
    out = attempt_localisation(advantages, steps, 2)

    assert out == pytest.approx(
        {
            "neg_mass_in_wrong_step": 0.6,
            "wrong_step_token_share": 0.3,
            "mean_adv_prefix": -0.4,
            "mean_adv_wrong_step": -2.0 / 3.0,
            "mean_adv_after": -0.5,
            "n_tokens": 10,
        }
    )


def test_without_negative_advantage_or_other_segments_the_shares_are_nan():
    out = attempt_localisation([0.0, 1.0, 0.5], [1, 1, -1], 1)

    assert math.isnan(out["neg_mass_in_wrong_step"])
    assert math.isnan(out["mean_adv_prefix"]) and math.isnan(out["mean_adv_after"])
    assert out["wrong_step_token_share"] == pytest.approx(2 / 3)


@pytest.mark.parametrize("first_wrong_step", [None, 0, -1, 4])
def test_an_unknown_or_unwritten_wrong_step_gives_none(first_wrong_step):
    assert attempt_localisation([-1.0, -1.0, 0.0], [1, 2, -1], first_wrong_step) is None


def test_advantages_and_steps_of_different_lengths_raise_value_error():
    with pytest.raises(ValueError, match="one entry per completion token"):
        attempt_localisation([-1.0, 0.0], [1, 2, -1], 1)


def test_all_zero_advantages_are_not_active():
    out = signal_activity([np.zeros(4), np.full(3, 1e-9)])

    assert out["active_samples"] == 0.0 and out["active_tokens"] == 0.0
    assert (out["n_attempts"], out["n_tokens"], out["n_active_tokens"]) == (2, 7, 0)


def test_activity_counts_attempts_and_tokens_beyond_the_tolerance():
    out = signal_activity([np.array([0.0, 0.3, -0.2]), np.zeros(2), np.array([1e-7, -5.0])], tol=1e-6)

    assert out == {
        "active_samples": pytest.approx(2 / 3),
        "active_tokens": pytest.approx(3 / 7),
        "n_attempts": 3,
        "n_active_samples": 2,
        "n_tokens": 7,
        "n_active_tokens": 3,
    }


def test_spans_fall_back_to_whole_prefixes_when_the_nearby_context_cannot_decode_a_character(
    tiny_tokenizer, monkeypatch
):
    text = "Step 1: 2 × 3 = 6\nAnswer: 6 €"
    ids = tiny_tokenizer.encode(text, add_special_tokens=False)
    expected = token_spans(text, ids, tiny_tokenizer)
    monkeypatch.setattr(localisation, "_CONTEXT_TOKENS", 0)  # alone, each byte of "×" decodes to U+FFFD

    assert token_spans(text, ids, tiny_tokenizer).tolist() == expected.tolist()
