"""The eval sets section: each extra benchmark (`eval.sets`) on its own, every arm at its checkpoint chosen
on the eval split's validation problems, with intervals and the paired Avg@k difference against the
reference. Reads the eval_set_scores and eval_set_comparisons tables; computes no statistics itself."""

from __future__ import annotations

import pandas as pd

from sdfb.report.data import METRIC_NAMES, Inputs, arm_label, esc, html_table, interval, no_data
from sdfb.report.page import section

_TITLE = "Eval sets"


def eval_sets_section(inputs: Inputs) -> str:
    scores = inputs.table("eval_set_scores")
    if scores.empty:
        note = '<p class="no-data">This experiment scores no extra eval sets (eval.sets).</p>'
        return section("eval-sets", _TITLE, "Extra benchmarks, each reported on its own.", note)
    summary = (
        "Each extra benchmark on all of its problems, every arm at the checkpoint chosen on the eval "
        "split's validation problems; differences in percentage points, paired by problem and seed, "
        "Holm-adjusted over the arms within a set."
    )
    comparisons = inputs.table("eval_set_comparisons")
    body = "".join(_set_table(inputs, name, rows, comparisons) for name, rows in scores.groupby("eval_set"))
    return section("eval-sets", _TITLE, summary, body or no_data("eval_set_scores"))


def _difference(comparisons: pd.DataFrame, eval_set: str, arm: str) -> str:
    if comparisons.empty:
        return ""
    rows = comparisons[
        (comparisons["eval_set"] == eval_set) & (comparisons["arm"] == arm) & (comparisons["metric"] == "avg")
    ]
    if rows.empty or arm == rows.iloc[0]["reference"]:
        return "reference" if not rows.empty else ""
    c = rows.iloc[0]
    interval = f"[{100 * c['low']:+.1f}, {100 * c['high']:+.1f}]"
    return f"{100 * c['difference']:+.1f} {interval}, p (Holm) {c['p_holm']:.3f}"


def _set_table(inputs: Inputs, eval_set: str, scores: pd.DataFrame, comparisons: pd.DataFrame) -> str:
    chosen = scores[scores["chosen"].astype(bool)]
    metrics = [m for m in METRIC_NAMES if m in set(chosen["metric"])]
    rows = []
    for arm in inputs.arms:
        at = chosen[chosen["arm"] == arm].set_index("metric")
        if at.empty:
            continue
        cells = [interval(*at.loc[m, ["estimate", "low", "high"]]) for m in metrics]
        checkpoint = at["checkpoint"].iloc[0]
        rows.append(
            [arm_label(inputs, arm), esc(checkpoint), *cells, esc(_difference(comparisons, eval_set, arm))]
        )
    n = int(scores["n_problems"].max())
    headers = ["Arm", "Checkpoint", *(esc(METRIC_NAMES[m]) for m in metrics), "Avg@k vs reference"]
    return f"<h3>{esc(eval_set)} ({n} problems)</h3>" + html_table(headers, rows)
