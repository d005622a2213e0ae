"""Sections 1 and 2: test scores per arm and checkpoint with their intervals, and paired differences
against the reference arm as a forest plot with Holm-adjusted p-values. Reads the scores and comparisons
tables; computes no statistics itself."""

from __future__ import annotations

import pandas as pd

from sdfb.report.data import (
    METRIC_NAMES,
    Inputs,
    arm_label,
    checkpoint_order,
    esc,
    html_table,
    interval,
    no_data,
)
from sdfb.report.page import figure_html, section, style_figure


def _metrics(table: pd.DataFrame) -> list[str]:
    present = [str(m) for m in table["metric"].unique()]
    return [m for m in METRIC_NAMES if m in present] + sorted(set(present) - set(METRIC_NAMES))


def scores_section(inputs: Inputs) -> str:
    scores = inputs.table("scores")
    title = "Scores"
    if scores.empty:
        return section("scores", title, "Test-set scores per arm and checkpoint.", no_data("scores"))
    summary = (
        f"Test scores with 95% intervals on {int(scores['n_problems'].max())} problems × "
        f"{int(scores['n_seeds'].max())} seeds; ★ marks each arm's checkpoint chosen on "
        "validation. Whether any arm differs from the reference is decided by the paired, "
        "Holm-adjusted comparison (headline above)."
    )
    body = figure_html(_scores_figure(inputs, scores), "fig-scores") + _scores_table(inputs, scores)
    return section("scores", title, summary, body)


def _scores_figure(inputs: Inputs, scores: pd.DataFrame):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    metrics = _metrics(scores)
    order = checkpoint_order(scores["checkpoint"])
    fig = make_subplots(rows=1, cols=len(metrics), subplot_titles=[METRIC_NAMES.get(m, m) for m in metrics])
    for col, metric in enumerate(metrics, start=1):
        for arm in inputs.arms:
            rows = scores[(scores["arm"] == arm) & (scores["metric"] == metric)]
            if rows.empty:
                continue
            rows = rows.assign(_o=rows["checkpoint"].map(order.index)).sort_values("_o")
            chosen = rows["chosen"].astype(bool)
            fig.add_trace(
                go.Scatter(
                    x=rows["checkpoint"],
                    y=100 * rows["estimate"],
                    name=arm,
                    legendgroup=arm,
                    showlegend=col == 1,
                    mode="lines+markers",
                    offsetgroup=arm,
                    line={"color": inputs.colour(arm), "width": 1.5},
                    marker={
                        "color": inputs.colour(arm),
                        "symbol": ["star" if c else "circle" for c in chosen],
                        "size": [15 if c else 8 for c in chosen],
                        "line": {"color": "white", "width": 1},
                    },
                    error_y={
                        "type": "data",
                        "array": 100 * (rows["high"] - rows["estimate"]),
                        "arrayminus": 100 * (rows["estimate"] - rows["low"]),
                        "thickness": 1.2,
                        "width": 3,
                    },
                    customdata=rows.assign(
                        lo=100 * rows["low"],
                        hi=100 * rows["high"],
                        c=chosen.map({True: " ★ chosen", False: ""}),
                    )[["lo", "hi", "c"]],
                    hovertemplate=f"<b>{esc(arm)}</b> %{{x}}%{{customdata[2]}}<br>"
                    f"{METRIC_NAMES.get(metric, metric)}"
                    " %{y:.1f}% [%{customdata[0]:.1f}, %{customdata[1]:.1f}]<extra></extra>",
                ),
                row=1,
                col=col,
            )
        fig.update_xaxes(categoryorder="array", categoryarray=order, row=1, col=col)
    fig.update_yaxes(ticksuffix="%", rangemode="tozero")
    fig.update_yaxes(title_text="% of test problems", row=1, col=1)
    return style_figure(fig, 420, scattermode="group", scattergap=0.6)


def _scores_table(inputs: Inputs, scores: pd.DataFrame) -> str:
    """Per arm: the base, chosen and final checkpoints, one column per metric."""
    metrics = _metrics(scores)
    order = checkpoint_order(scores["checkpoint"])
    rows = []
    classes = []
    for arm in inputs.arms:
        own = scores[scores["arm"] == arm]
        if own.empty:
            continue
        names = checkpoint_order(own["checkpoint"])
        chosen = set(own.loc[own["chosen"].astype(bool), "checkpoint"])
        picks = dict.fromkeys(c for c in ("base", *sorted(chosen, key=order.index), names[-1]) if c in names)
        for checkpoint in picks:
            at = own[own["checkpoint"] == checkpoint].set_index("metric")
            role = ", ".join(
                r
                for r, hit in (
                    ("base", checkpoint == "base"),
                    ("chosen ★", checkpoint in chosen),
                    ("final", checkpoint == names[-1]),
                )
                if hit
            )
            cells = [
                interval(*at.loc[m, ["estimate", "low", "high"]]) if m in at.index else "–" for m in metrics
            ]
            rows.append([arm_label(inputs, arm), esc(checkpoint), esc(role), *cells])
            classes.append("chosen" if checkpoint in chosen else "")
    headers = ["Arm", "Checkpoint", "Role", *(esc(METRIC_NAMES.get(m, m)) for m in metrics)]
    return html_table(headers, rows, classes)


def comparisons_section(inputs: Inputs) -> str:
    table = inputs.table("comparisons")
    title = "Paired differences"
    reference = inputs.summary.get("reference")
    if table.empty:
        return section("comparisons", title, "Differences against the reference arm.", no_data("comparisons"))
    refs = sorted({str(r) for r in table["reference"].dropna()}) or [str(reference)]
    summary = (
        f"Each arm minus {', '.join(esc(r) for r in refs)} on the same test problems and "
        "seeds, in percentage points with 95% intervals; filled dots at the chosen "
        "checkpoint, open diamonds at the final one."
    )
    summary += (
        f" p: paired sign-flip test; p (Holm): Holm-adjusted over the {table['arm'].nunique()} arms compared "
        "with the reference, for each metric and checkpoint choice. A difference is a finding only when "
        "p (Holm) < 0.05 and its interval excludes 0."
    )
    chosen_avg = table[(table["at"] == "chosen") & (table["metric"] == "avg")]
    if not chosen_avg.empty:
        parts = [
            f"{arm_label(inputs, r['arm'])} {100 * r['difference']:+.1f} pp (p={r['p_value']:.3g}, "
            f"p (Holm)={_holm(r)})"
            for _, r in chosen_avg.iterrows()
        ]
        summary += " Avg@k at the chosen checkpoint: " + "; ".join(parts) + "."
    return section(
        "comparisons", title, summary, figure_html(_forest_figure(inputs, table), "fig-comparisons")
    )


def _holm(row) -> str:
    return f"{row['p_holm']:.3g}" if "p_holm" in row and not pd.isna(row["p_holm"]) else "–"


def _forest_figure(inputs: Inputs, table: pd.DataFrame):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    metrics = _metrics(table)
    arms = [a for a in inputs.arms if a in set(table["arm"])]
    fig = make_subplots(
        rows=1, cols=len(metrics), shared_yaxes=True, subplot_titles=[METRIC_NAMES.get(m, m) for m in metrics]
    )
    styles = {"chosen": ("circle", 11, "markers+text"), "final": ("diamond-open", 10, "markers")}
    for col, metric in enumerate(metrics, start=1):
        for at, (symbol, size, mode) in styles.items():
            for arm in arms:
                rows = table[(table["arm"] == arm) & (table["metric"] == metric) & (table["at"] == at)]
                if rows.empty:
                    continue
                fig.add_trace(
                    _forest_trace(go, inputs, rows, arm, at, symbol, size, mode, metric, col == 1),
                    row=1,
                    col=col,
                )
        fig.add_vline(x=0, line={"color": "#7b8794", "width": 1.2, "dash": "dash"}, row=1, col=col)
        fig.update_xaxes(title_text="difference (pp)", row=1, col=col)
    fig.update_yaxes(categoryorder="array", categoryarray=arms[::-1])
    return style_figure(fig, max(260, 90 + 70 * len(arms)), scattermode="group", scattergap=0.5)


def _forest_trace(go, inputs: Inputs, rows, arm, at, symbol, size, mode, metric, first: bool):
    colour = inputs.colour(arm)
    holm = rows["p_holm"] if "p_holm" in rows else pd.Series(float("nan"), index=rows.index)
    custom = rows.assign(lo=100 * rows["low"], hi=100 * rows["high"], holm=holm)[
        ["lo", "hi", "p_value", "wins", "losses", "ties", "n_problems", "reference", "holm"]
    ]
    return go.Scatter(
        x=100 * rows["difference"],
        y=rows["arm"],
        orientation="h",
        offsetgroup=at,
        mode=mode,
        name=f"{arm} · {at}",
        legendgroup=f"{arm}-{at}",
        showlegend=first,
        marker={"color": colour, "symbol": symbol, "size": size, "line": {"color": colour, "width": 2}},
        error_x={
            "type": "data",
            "array": 100 * (rows["high"] - rows["difference"]),
            "arrayminus": 100 * (rows["difference"] - rows["low"]),
            "color": colour,
            "thickness": 1.5,
        },
        text=[f"p(Holm)={p:.2g}" for p in holm],
        textposition="top center",
        textfont={"size": 11},
        customdata=custom,
        hovertemplate=f"<b>{esc(arm)}</b> − %{{customdata[7]}} at the {at} checkpoint<br>"
        f"{METRIC_NAMES.get(metric, metric)}: "
        "%{x:+.1f} pp [%{customdata[0]:.1f}, %{customdata[1]:.1f}]<br>"
        "p = %{customdata[2]:.2~g}, Holm-adjusted %{customdata[8]:.2~g} · "
        "wins %{customdata[3]}, losses %{customdata[4]}, ties %{customdata[5]}"
        " · %{customdata[6]} problems<extra></extra>",
    )
