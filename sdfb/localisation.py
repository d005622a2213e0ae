"""Where in a completion the self-distillation signal falls: each token's step line, its
segment relative to the critic's first wrong step, and how much negative advantage lands on
that step. Pure numpy; no training, no I/O."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sdfb.bootstrap import BOOTSTRAP_RESAMPLES
from sdfb.prompts import _ANSWER, _STEP, lines_outside_thinking

ANSWER_STEP = -1  # token_steps' index for tokens of the answer line; 0 is "outside the step format"
SEGMENTS = ("prefix", "wrong_step", "after", "answer", "other", "unknown")
_CONTEXT_TOKENS = 8  # decoding context before each token: enough for a UTF-8 character split over 4 tokens
_DECODE = {"skip_special_tokens": True, "clean_up_tokenization_spaces": False}
_BREAK_CHARS = (
    "\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"  # what str.splitlines splits on ("\r\n" is one break)
)
ACTIVE_TOL = 1e-6  # |A| at or below this is no signal: float noise of a teacher that agrees with the student


def _line_breaks(text: str) -> np.ndarray:
    """A mask over characters: True where a character is part of a line break as `str.splitlines` sees it."""
    breaks = np.zeros(len(text), dtype=bool)
    position = 0
    for line in text.splitlines(keepends=True):
        body = len(line.rstrip(_BREAK_CHARS))
        breaks[position + body : position + len(line)] = True
        position += len(line)
    return breaks


def _line_ends(text: str) -> np.ndarray:
    """A mask over characters: True at the last character of each line
    break, so "\\r\\n" ends one line, not two."""
    ends = np.zeros(len(text), dtype=bool)
    position = 0
    for line in text.splitlines(keepends=True):
        position += len(line)
        if line != line.rstrip(_BREAK_CHARS):
            ends[position - 1] = True
    return ends


def _line_labels(text: str) -> list[int]:
    """The step index of each line of `text`, numbered exactly as `sdfb.prompts.parse_attempt` reads them (so
    thinking is no step: it reads the same `lines_outside_thinking`)."""
    labels: list[int] = []
    steps = 0
    answered = False
    stopped = False
    for line in lines_outside_thinking(text):
        if stopped or (answered and line.strip()):
            # parse_attempt stops at the first non-blank line after the answer: the model kept talking
            stopped = True
            labels.append(0)
        elif _STEP.match(line):
            steps += 1
            labels.append(steps)
        elif _ANSWER.match(line):
            answered = True
            labels.append(ANSWER_STEP)
        else:
            labels.append(0)
    return labels


def _token_widths(token_ids: Sequence[int], tokenizer, context: int) -> np.ndarray:
    """How many characters each token adds to the decoded text, decoding it
    after up to `context` earlier tokens.

    A token that ends inside a multi-byte character decodes to one replacement
    character and the tokens that finish the character add none, so the character is
    counted once, at the token where its bytes start."""
    ids = [int(t) for t in token_ids]
    widths = np.zeros(len(ids), dtype=np.int64)
    for i in range(len(ids)):
        start = max(0, i - context)
        before = tokenizer.decode(ids[start:i], **_DECODE) if i > start else ""
        widths[i] = len(tokenizer.decode(ids[start : i + 1], **_DECODE)) - len(before)
    return widths


def token_spans(text: str, token_ids: Sequence[int], tokenizer) -> np.ndarray:
    """Each token's [start, end) character span in `text`, an (n, 2) int
    array, from the tokenizer's own decoding.

    `text` must be what the ids decode to without special tokens (how rollouts store completions). Special
    tokens such as end-of-sequence, and tokens that only finish a multi-byte character, get empty spans.
    Raises ValueError when the ids do not decode to `text`."""
    ids = [int(t) for t in token_ids]
    decoded = tokenizer.decode(ids, **_DECODE)
    if decoded != text:
        raise ValueError(
            f"decode(token_ids) does not reproduce the completion text ({len(decoded)} vs {len(text)} "
            f"characters; decoded starts {decoded[:40]!r}, text {text[:40]!r}); pass the completion's own "
            "ids with the text decoded from them (skip_special_tokens=True)"
        )
    if not ids:
        return np.zeros((0, 2), dtype=np.int64)
    widths = _token_widths(ids, tokenizer, _CONTEXT_TOKENS)
    if widths.sum() != len(text) or (widths < 0).any():
        # a decoder whose output depends on more than the nearby tokens: fall back to decoding whole prefixes
        widths = _token_widths(ids, tokenizer, len(ids))
    ends = np.clip(np.maximum.accumulate(np.cumsum(widths)), 0, len(text))
    assert ends[-1] == len(text), (int(ends[-1]), len(text))
    return np.stack([np.concatenate([[0], ends[:-1]]), ends], axis=1)


def token_steps(text: str, token_ids: Sequence[int], tokenizer) -> list[int]:
    """The step index of every completion token: k for the line of the k-th "Step" line
    (1-based, in order of appearance, as `parse_attempt` numbers steps), -1 (ANSWER_STEP) for
    the answer line, 0 for anything else (preamble, blank or unformatted lines, text after the
    answer, special tokens such as end-of-sequence).

    A token belongs to the line of its first character that is not a line break, so a token "\\nStep"
    belongs to the step line it opens and ".\\n" to the line it closes; a token made only of line breaks
    belongs to the line its first break ends (so the "\\n" token that closes a step line is part of that
    step); "\\r\\n" is one line break; a token that only finishes a multi-byte character belongs to that
    character's line. See docs/localisation.md. Raises ValueError when `token_ids` do not decode to `text`."""
    spans = token_spans(text, token_ids, tokenizer)
    if not len(spans):
        return []
    n_chars = len(text)
    breaks = _line_breaks(text)
    # next_char[p]: the first position >= p that is not a line break (n_chars when there is none)
    candidates = np.where(breaks, n_chars, np.arange(n_chars))
    next_char = np.concatenate([np.minimum.accumulate(candidates[::-1])[::-1], [n_chars]])
    starts = spans[:, 0]
    ends = spans[:, 1]
    first = next_char[starts]
    anchor = np.where(first < ends, first, np.where(ends > starts, starts, starts - 1))
    special = np.isin(np.asarray(token_ids, dtype=np.int64), list(getattr(tokenizer, "all_special_ids", ())))
    placed = ~special & (anchor >= 0)
    # a character's line: how many lines end before it (a break belongs to the line it ends; "\\r\\n" is one
    # end)
    line_of_char = np.concatenate([[0], np.cumsum(_line_ends(text))])
    labels = np.array(_line_labels(text) or [0], dtype=np.int64)
    lines = np.minimum(line_of_char[np.clip(anchor, 0, n_chars)], len(labels) - 1)
    return np.where(placed, labels[lines], 0).tolist()


def wrong_step_known(first_wrong_step: int | None) -> bool:
    """Critics write the first wrong step 1-based and -1 for none (see `sdfb.critic.base.Critique`); None,
    0 and negatives all mean no wrong step is known."""
    return first_wrong_step is not None and int(first_wrong_step) >= 1


def segments(steps: Sequence[int], first_wrong_step: int | None) -> list[str]:
    """Each token's place relative to the first wrong step k: "prefix" (steps before k), "wrong_step" (step
    k), "after" (steps after k), "answer" (the answer line), "other" (step index 0).

    With no known wrong step (None, 0 or negative) step tokens are "unknown". A k past the last step (the
    symbolic critic's len(steps) + 1: every step right, the answer wrong) makes every step token "prefix"."""
    s = np.asarray(steps, dtype=np.int64)
    if wrong_step_known(first_wrong_step):
        k = int(first_wrong_step)
        step_label = np.where(s < k, "prefix", np.where(s == k, "wrong_step", "after"))
    else:
        step_label = np.full(s.shape, "unknown")
    labels = np.where(s > 0, step_label, np.where(s == ANSWER_STEP, "answer", "other"))
    return labels.astype(str).tolist()


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if len(values) else float("nan")


def attempt_localisation(
    advantages: Sequence[float] | np.ndarray,
    steps: Sequence[int],
    first_wrong_step: int | None,
    tol: float = ACTIVE_TOL,
) -> dict | None:
    """How one attempt's advantages fall around its first wrong step k, or None when the attempt
    does not count: k is unknown, no token lies in step k (the step was not written, or k is past
    the last step), or no token has a negative advantage (A < -tol), so there is no mass to place
    and its chance level must not count either.

    neg_mass_in_wrong_step: step k's share of the attempt's negative advantage mass, the sum of A
    over step k's tokens with A < -tol over the same sum over all tokens; wrong_step_token_share:
    step k's share of all tokens, what spreading the mass evenly would give (chance);
    share_minus_chance: the first minus the second. mean_adv_prefix / _wrong_step / _after: mean
    advantage of each segment's tokens (NaN when it has none)."""
    a = np.asarray(advantages, dtype=np.float64)
    s = np.asarray(steps, dtype=np.int64)
    if a.shape != s.shape:
        raise ValueError(f"advantages {a.shape} and steps {s.shape} must have one entry per completion token")
    if not wrong_step_known(first_wrong_step) or not (s == int(first_wrong_step)).any():
        return None
    negative = np.where(a < -tol, a, 0.0)
    if not negative.any():
        return None
    k = int(first_wrong_step)
    wrong = s == k
    prefix = (s > 0) & (s < k)
    after = s > k
    mass = float(negative[wrong].sum() / negative.sum())
    chance = float(wrong.mean())
    return {
        "neg_mass_in_wrong_step": mass,
        "wrong_step_token_share": chance,
        "share_minus_chance": mass - chance,
        "mean_adv_prefix": _mean(a[prefix]),
        "mean_adv_wrong_step": _mean(a[wrong]),
        "mean_adv_after": _mean(a[after]),
        "n_tokens": int(len(a)),
    }


def signal_activity(advantages_by_attempt: Sequence[np.ndarray], tol: float = ACTIVE_TOL) -> dict:
    """Whether the teacher disagrees with the student at all: the share of attempts with
    any |A| > tol ("active_samples") and of tokens with |A| > tol ("active_tokens"), with
    their counts (NaN shares when empty)."""
    active = [np.abs(np.asarray(a, dtype=np.float64)) > tol for a in advantages_by_attempt]
    n_attempts = len(active)
    n_tokens = int(sum(len(m) for m in active))
    n_active_samples = int(sum(bool(m.any()) for m in active))
    n_active_tokens = int(sum(int(m.sum()) for m in active))
    return {
        "active_samples": n_active_samples / n_attempts if n_attempts else float("nan"),
        "active_tokens": n_active_tokens / n_tokens if n_tokens else float("nan"),
        "n_attempts": n_attempts,
        "n_active_samples": n_active_samples,
        "n_tokens": n_tokens,
        "n_active_tokens": n_active_tokens,
    }


def annotate_tokens(tokens, rollouts, contexts, tokenizer):
    """`tokens` (schemas.TOKENS rows of one round) with each token's `step_index` and `segment`, from its
    completion's step lines and the critic's first wrong step in `contexts`. A completion whose ids do not
    decode to its text gets step 0 and segment "unknown" (counted in the log), never a guess."""
    import logging

    import pandas as pd

    keys = ["problem_id", "sample_index"]
    step_index = np.zeros(len(tokens), dtype=np.int32)
    segment = np.full(len(tokens), "unknown", dtype=object)
    if tokens.empty:
        return tokens.assign(step_index=step_index, segment=segment)
    info = rollouts[[*keys, "completion_text", "completion_ids"]].merge(
        contexts[[*keys, "first_wrong_step"]], on=keys, how="left", validate="one_to_one"
    )
    info = info.set_index(keys)
    undecodable = 0
    for (pid, index), rows in tokens.groupby(keys, sort=False).indices.items():
        row = info.loc[(pid, index)]
        try:
            steps = np.asarray(token_steps(row["completion_text"], list(row["completion_ids"]), tokenizer))
        except ValueError:
            undecodable += 1
            continue
        verdict = row["first_wrong_step"]
        labels = np.asarray(segments(list(steps), None if pd.isna(verdict) else int(verdict)), dtype=object)
        positions = tokens["position"].to_numpy()[rows]
        step_index[rows] = steps[positions]
        segment[rows] = labels[positions]
    if undecodable:
        logging.getLogger(__name__).warning(
            "%d completions do not decode to their text: segment unknown", undecodable
        )
    return tokens.assign(step_index=step_index, segment=segment)


MEASURES = (
    "neg_mass_in_wrong_step",
    "wrong_step_token_share",
    "share_minus_chance",
    "mean_adv_prefix",
    "mean_adv_wrong_step",
    "mean_adv_after",
)


def per_attempt(tokens, tol: float = ACTIVE_TOL):
    """One row per attempt of a tokens table that counts (`attempt_localisation` is not None): its keys (seed
    when the table has that column, problem_id, sample_index), first_wrong_step, MEASURES and n_tokens. Every
    measure is computed on the same attempts, so a share and its chance level are always averaged alike."""
    import pandas as pd

    keys = [c for c in ("seed", "problem_id", "sample_index") if c in tokens.columns]
    rows = []
    for key, group in tokens.groupby(keys, sort=False):
        wrong = group.loc[group["segment"] == "wrong_step", "step_index"]
        if wrong.empty:
            continue
        k = int(wrong.iloc[0])
        found = attempt_localisation(group["advantage"].to_numpy(), group["step_index"].to_numpy(), k, tol)
        if found is not None:
            rows.append({**dict(zip(keys, key, strict=True)), "first_wrong_step": k, **found})
    return pd.DataFrame(rows, columns=[*keys, "first_wrong_step", *MEASURES, "n_tokens"])


def attempts_with_wrong_step(tokens) -> int:
    """How many attempts of a tokens table have tokens in their critic's first wrong step (counted or not)."""
    keys = [c for c in ("seed", "problem_id", "sample_index") if c in tokens.columns]
    return int(len(tokens.loc[tokens["segment"] == "wrong_step", keys].drop_duplicates()))


def measure_intervals(attempts, n_resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> dict[str, dict]:
    """Each of MEASURES averaged over `per_attempt` rows with a 95% bootstrap interval
    that resamples problems (an attempt's problem_id is its cluster, across seeds too:
    attempts of one problem are not independent)."""
    from sdfb.stats import cluster_interval

    clusters = attempts["problem_id"].to_numpy()
    return {
        m: cluster_interval(attempts[m].to_numpy(), clusters, n_resamples=n_resamples, seed=seed)
        for m in MEASURES
    }


def round_localisation(
    tokens, tol: float = ACTIVE_TOL, n_resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0
) -> dict:
    """A round's localisation with 95% problem-clustered bootstrap intervals over the attempts that count, and
    whether the signal is alive: the share of samples and tokens with |A| > tol ("inactive" when none has)."""
    attempts = per_attempt(tokens, tol)
    by_attempt = [g["advantage"].to_numpy() for _, g in tokens.groupby(["problem_id", "sample_index"])]
    activity = signal_activity(by_attempt, tol)
    return {
        "attempts": activity["n_attempts"],
        "attempts_with_wrong_step": attempts_with_wrong_step(tokens),
        "attempts_counted": len(attempts),
        **measure_intervals(attempts, n_resamples, seed),
        "activity": activity,
        "inactive": activity["n_active_tokens"] == 0,
    }
