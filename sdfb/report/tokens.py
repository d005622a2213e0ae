"""Section 6: sampled attempts token by token, each token shaded by its advantage (red
negative, blue positive), step starts and the critic's first wrong step marked, beside
the question and the teacher's context."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sdfb.report.data import Inputs, arm_label, esc, no_data
from sdfb.report.page import section

KEY = ("arm", "seed", "round", "problem_id", "sample_index")
NEGATIVE = (214, 39, 40)
POSITIVE = (31, 119, 180)
MAX_ALPHA = 0.65  # darker shades make the dark text hard to read


def clip_scale(advantages: pd.Series) -> float:
    """The colour scale's end: the 95th percentile of |A| (so a few outliers do not wash out the rest); 1.0
    when there is nothing non-zero to scale by."""
    magnitudes = np.abs(pd.to_numeric(advantages, errors="coerce").dropna().to_numpy(dtype=float))
    scale = float(np.percentile(magnitudes, 95)) if magnitudes.size else 0.0
    return scale if scale > 0 else 1.0


def token_colour(advantage: float, scale: float) -> str:
    """A background colour on a symmetric diverging scale clipped at
    ±scale; transparent for zero or missing."""
    if pd.isna(advantage) or advantage == 0:
        return "transparent"
    r, g, b = NEGATIVE if advantage < 0 else POSITIVE
    alpha = MAX_ALPHA * min(abs(float(advantage)) / scale, 1.0)
    return f"rgba({r},{g},{b},{alpha:.3f})"


def _key(row) -> tuple[str, ...]:
    return tuple(str(row[k]) for k in KEY)


def token_spans(tokens: pd.DataFrame, scale: float) -> str:
    """One attempt's tokens (in position order) as `<span class="tok">`s; a span that starts a new step
    line gets "step-start", a token of the first wrong step gets "wrong"."""
    spans = []
    previous = None
    for row in tokens.sort_values("position").itertuples(index=False):
        step = int(row.step_index)
        segment = str(row.segment)
        classes = ["tok"]
        if step != previous and step != 0:
            classes.append("step-start")
        if segment == "wrong_step":
            classes.append("wrong")
        previous = step
        value = "n/a" if pd.isna(row.advantage) else f"{float(row.advantage):+.4f}"
        where = "answer line" if step == -1 else (f"step {step}" if step > 0 else "outside steps")
        title = f"A = {value} · {where} · {segment}"
        spans.append(
            f'<span class="{" ".join(classes)}" style="background:{token_colour(row.advantage, scale)}" '
            f'title="{esc(title)}">{esc(row.token_text)}</span>'
        )
    return "".join(spans)


def _wrong_step_text(value) -> str:
    if value is None or pd.isna(value):
        return "first wrong step unknown"
    return "no wrong step" if int(value) < 1 else f"first wrong step {int(value)}"


def attempt_card(attempt, tokens: pd.DataFrame, scale: float) -> str:
    correct = bool(attempt["correct"])
    head = " · ".join(
        [
            f"seed {esc(attempt['seed'])}",
            f"round {esc(attempt['round'])}",
            f"problem {esc(attempt['problem_id'])}",
            f"sample {esc(attempt['sample_index'])}",
            "✓ correct" if correct else "✗ wrong answer",
            _wrong_step_text(attempt["first_wrong_step"]),
        ]
    )
    if tokens.empty:
        student = (
            f'<pre class="completion">{esc(attempt["completion_text"])}</pre>'
            '<p class="no-data">No token advantages for this attempt.</p>'
        )
    else:
        student = f'<div class="completion">{token_spans(tokens, scale)}</div>'
    return (
        f'<div class="attempt" data-arm="{esc(attempt["arm"])}"><div class="attempt-head">{head}</div>'
        '<div class="attempt-body">'
        f'<div><p class="label">Student\'s completion, shaded by advantage</p>{student}</div>'
        f'<div><p class="label">Question</p><pre class="text">{esc(attempt["question"])}</pre>'
        '<p class="label">Teacher\'s context</p>'
        f'<pre class="text context">{esc(attempt["context"])}</pre></div>'
        "</div></div>"
    )


def tokens_section(inputs: Inputs) -> str:
    attempts = inputs.table("attempts_sample")
    tokens = inputs.table("tokens_sample")
    title = "Token view"
    if attempts.empty:
        return section("tokens", title, "Sampled attempts token by token.", no_data("attempts_sample"))
    groups = tokens.groupby(list(KEY), sort=False) if not tokens.empty else []
    by_attempt = {tuple(str(k) for k in key): group for key, group in groups}
    shown = [by_attempt[_key(row)]["advantage"] for _, row in attempts.iterrows() if _key(row) in by_attempt]
    scale = clip_scale(pd.concat(shown)) if shown else 1.0
    summary = (
        f"{len(attempts)} sampled attempts. Each token is shaded by its advantage A (red below zero, blue "
        f"above), clipped at ±{scale:.3g}, the 95th percentile of |A|; hover a token for its value."
    )
    key = (
        f'<div class="scale"><span>−{scale:.3g}</span><span class="bar"></span><span>+{scale:.3g}</span>'
        '<span class="key-step">step start</span><span class="key-wrong">first wrong step</span></div>'
    )
    body = [key]
    for arm in inputs.arms:
        group = attempts[attempts["arm"] == arm].sort_values(["seed", "round", "problem_id", "sample_index"])
        if group.empty:
            continue
        body.append(f"<h3>{arm_label(inputs, arm)} <small>({len(group)} attempts)</small></h3>")
        for _, row in group.iterrows():
            body.append(attempt_card(row, by_attempt.get(_key(row), pd.DataFrame()), scale))
    return section("tokens", title, summary, "".join(body))
