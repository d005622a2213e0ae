"""Sections 3 to 5: where the negative advantage lands per round (localisation), the
training curves, and the critic's cases and statuses. Reads the localisation, training and
critiques tables; no statistics of its own."""

from __future__ import annotations

import pandas as pd

from sdfb.names import CriticCase, CritiqueStatus
from sdfb.report.data import Inputs, arm_label, esc, html_table, interval, no_data, pct
from sdfb.report.page import figure_html, section, style_figure

SEGMENTS = {
    "mean_adv_prefix": "before the wrong step",
    "mean_adv_wrong_step": "wrong step",
    "mean_adv_after": "after the wrong step",
}
ACTIVE = {"active_samples": "attempts with any |A| > 0", "active_tokens": "tokens with |A| > 0"}
CASE_COLOURS = {
    CriticCase.REPRODUCE: "#0072B2",
    CriticCase.INSERT_STEP: "#56B4E9",
    CriticCase.FINISH: "#E69F00",
    CriticCase.FIX_ERROR: "#D55E00",
    CriticCase.NONE: "#BFC5CC",
}
STATUS_COLOURS = {
    CritiqueStatus.OK: "#009E73",
    CritiqueStatus.WRONG_ANSWER: "#E69F00",
    CritiqueStatus.DROPPED_STEPS: "#CC79A7",
    CritiqueStatus.MALFORMED: "#D55E00",
    CritiqueStatus.FAILED: "#A61B1B",
    CritiqueStatus.NO_STEPS: "#8C6D31",
    CritiqueStatus.UNAVAILABLE: "#9AA5B1",
}


def _line(go, inputs: Inputs, rows: pd.DataFrame, arm: str, show: bool, scale: float = 1.0, **style):
    """One arm's measure over rounds, with its interval as error bars; `style` may set name, group, dash,
    symbol and any other Scatter attribute."""
    rows = rows.sort_values("round")
    name = style.pop("name", arm)
    group = style.pop("group", arm)
    dash = style.pop("dash", "solid")
    symbol = style.pop("symbol", "circle")
    unit = "%" if scale == 100 else ""
    return go.Scatter(
        x=rows["round"],
        y=scale * rows["mean"],
        name=name,
        legendgroup=group,
        showlegend=show,
        mode="lines+markers",
        line={"color": inputs.colour(arm), "width": 2, "dash": dash},
        marker={"color": inputs.colour(arm), "size": 7, "symbol": symbol},
        error_y={
            "type": "data",
            "array": scale * (rows["high"] - rows["mean"]),
            "arrayminus": scale * (rows["mean"] - rows["low"]),
            "thickness": 1.2,
            "width": 3,
        },
        customdata=rows.assign(lo=scale * rows["low"], hi=scale * rows["high"])[["lo", "hi", "n"]],
        hovertemplate=f"<b>{esc(arm)}</b> round %{{x}}: %{{y:.3~g}}{unit} [%{{customdata[0]:.3~g}}, "
        f"%{{customdata[1]:.3~g}}] (n=%{{customdata[2]}})<extra>{esc(name) if name != arm else ''}</extra>",
        **style,
    )


def localisation_section(inputs: Inputs) -> str:
    table = inputs.table("localisation")
    title = "Localisation"
    if table.empty:
        return section("localisation", title, "Where the negative advantage lands.", no_data("localisation"))
    parts = []
    for arm in inputs.arms:
        own = table[(table["arm"] == arm)]
        last = (
            own[own["round"] == own["round"].max()].set_index("measure") if not own.empty else pd.DataFrame()
        )
        if {"neg_mass_in_wrong_step", "wrong_step_token_share"} <= set(last.index):
            mass, chance = (
                pct(last.loc[m, "mean"]) for m in ("neg_mass_in_wrong_step", "wrong_step_token_share")
            )
            part = f"{arm_label(inputs, arm)} {mass} of negative mass on {chance} of tokens"
            if "share_minus_chance" in last.index:
                excess = last.loc["share_minus_chance"]
                part += f" (mass minus chance {interval(*excess[['mean', 'low', 'high']], unit=' pp')})"
            parts.append(part)
    summary = (
        "Negative advantage mass that falls on the critic's first wrong step, against that step's share of "
        "tokens (what chance would give), over the attempts with a first wrong step that has tokens and "
        "some negative advantage (docs/localisation.md); mean advantage per segment; how often the teacher "
        "disagrees at all. Means over attempts with 95% intervals that resample problems."
    )
    if parts:
        summary += " Last round: " + "; ".join(parts) + "."
    figures = [
        ("fig-localisation-mass", "Negative mass on the wrong step vs its token share", _mass_figure),
        ("fig-localisation-advantage", "Mean advantage by segment", _advantage_figure),
        ("fig-localisation-active", "Active share of attempts and tokens", _active_figure),
    ]
    body = _paired_table(inputs)
    for div_id, heading, build in figures:
        fig = build(inputs, table)
        body += f"<h3>{esc(heading)}</h3>" + (figure_html(fig, div_id) if fig else no_data("localisation"))
    return section("localisation", title, summary, body)


def _paired_table(inputs: Inputs) -> str:
    """Arms compared on the same round-1 attempts: the mean paired difference in mass minus chance."""
    paired = inputs.table("localisation_paired")
    heading = "<h3>Arms on the same round-1 attempts: paired difference in mass minus chance</h3>"
    if paired.empty:
        return heading + no_data("localisation_paired")
    rows = []
    for r in paired.sort_values("n", ascending=False, kind="stable").itertuples(index=False):
        arms = [arm_label(inputs, r.arm), arm_label(inputs, r.other)]
        if r.n == 0:
            rows.append([*arms, "no attempt counts in both", "–", "–", "0", "0"])
            continue
        means = [f"{100 * m:+.1f} pp" for m in (r.mean_arm, r.mean_other)]
        rows.append(
            [*arms, interval(r.difference, r.low, r.high, unit=" pp"), *means, esc(r.n), esc(r.n_problems)]
        )
    headers = [
        "Arm",
        "minus",
        "difference [95% CI]",
        "arm's mean",
        "other's mean",
        "attempts",
        "problems",
    ]
    note = (
        '<p class="summary">Same seed, rollouts and critiques, so both arms see the same tokens and the same '
        "wrong step; the interval resamples problems.</p>"
    )
    return heading + note + html_table(headers, rows)


def _mass_figure(inputs: Inputs, table: pd.DataFrame):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    arms = [
        a for a in inputs.arms if a in set(table.loc[table["measure"] == "neg_mass_in_wrong_step", "arm"])
    ]
    if not arms:
        return None
    fig = make_subplots(rows=1, cols=len(arms), shared_yaxes=True, subplot_titles=arms)
    for col, arm in enumerate(arms, start=1):
        own = table[table["arm"] == arm]
        mass, chance = (
            own[own["measure"] == "neg_mass_in_wrong_step"],
            own[own["measure"] == "wrong_step_token_share"],
        )
        fig.add_trace(
            _line(go, inputs, mass, arm, col == 1, 100, name="negative mass on wrong step", group="mass"),
            row=1,
            col=col,
        )
        if not chance.empty:
            fig.add_trace(
                _line(
                    go,
                    inputs,
                    chance,
                    arm,
                    col == 1,
                    100,
                    name="wrong step's token share (chance)",
                    group="chance",
                    dash="dot",
                    symbol="circle-open",
                    opacity=0.7,
                ),
                row=1,
                col=col,
            )
        fig.update_xaxes(title_text="round", dtick=1, row=1, col=col)
    fig.update_yaxes(ticksuffix="%", rangemode="tozero")
    return style_figure(fig, 360)


def _advantage_figure(inputs: Inputs, table: pd.DataFrame):
    return _measures_figure(inputs, table, SEGMENTS, scale=1.0, height=340, zero_line=True)


def _active_figure(inputs: Inputs, table: pd.DataFrame):
    return _measures_figure(inputs, table, ACTIVE, scale=100, height=320, zero_line=False)


def _measures_figure(
    inputs: Inputs, table: pd.DataFrame, labels: dict[str, str], scale: float, height: int, zero_line: bool
):
    """One panel per measure in `labels` that the table holds, every arm's line over rounds in each;
    `scale` 100 draws shares as percentages, `zero_line` marks y = 0 (signed measures)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    present = [m for m in labels if m in set(table["measure"])]
    if not present:
        return None
    fig = make_subplots(
        rows=1, cols=len(present), shared_yaxes=True, subplot_titles=[labels[m] for m in present]
    )
    for col, measure in enumerate(present, start=1):
        for arm in inputs.arms:
            rows = table[(table["arm"] == arm) & (table["measure"] == measure)]
            if not rows.empty:
                fig.add_trace(_line(go, inputs, rows, arm, col == 1, scale), row=1, col=col)
        if zero_line:
            fig.add_hline(y=0, line={"color": "#9aa5b1", "width": 1}, row=1, col=col)
        fig.update_xaxes(title_text="round", dtick=1, row=1, col=col)
    if scale == 100:
        fig.update_yaxes(ticksuffix="%", range=[0, 105])
    else:
        fig.update_yaxes(title_text="mean advantage", row=1, col=1)
    return style_figure(fig, height)


def training_section(inputs: Inputs) -> str:
    table = inputs.table("training")
    title = "Training"
    if table.empty:
        return section("training", title, "Loss, KL and gradient norm per step.", no_data("training"))
    curves = _global_steps(table)
    last = curves.sort_values("global_step").groupby("arm").tail(1)
    parts = [f"{arm_label(inputs, r['arm'])} loss {r['loss']:.3g}" for _, r in last.iterrows()]
    summary = (
        f"Per optimiser step, averaged over seeds; the x axis runs across rounds "
        f"({int(table['round'].nunique())} rounds, dotted lines at round starts). "
        f"Last step: {'; '.join(parts)}."
    )
    return section("training", title, summary, figure_html(_training_figure(inputs, curves), "fig-training"))


def _global_steps(table: pd.DataFrame) -> pd.DataFrame:
    """Seed means per (arm, round, step), numbered 0, 1, ... across rounds within each arm."""
    means = table.groupby(["arm", "round", "step"], as_index=False)[["loss", "kl", "grad_norm"]].mean()
    means = means.sort_values(["arm", "round", "step"])
    return means.assign(global_step=means.groupby("arm").cumcount())


def _training_figure(inputs: Inputs, curves: pd.DataFrame):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    panels = [("loss", "loss"), ("kl", "KL"), ("grad_norm", "grad norm")]
    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.06)
    for row, (column, label) in enumerate(panels, start=1):
        for arm in inputs.arms:
            own = curves[curves["arm"] == arm]
            if own.empty:
                continue
            fig.add_trace(
                go.Scatter(
                    x=own["global_step"],
                    y=own[column],
                    name=arm,
                    legendgroup=arm,
                    showlegend=row == 1,
                    mode="lines",
                    line={"color": inputs.colour(arm), "width": 1.8},
                    customdata=own[["round", "step"]],
                    hovertemplate=f"<b>{esc(arm)}</b> round %{{customdata[0]}} "
                    f"step %{{customdata[1]}}<br>{label} "
                    "%{y:.4g}<extra></extra>",
                ),
                row=row,
                col=1,
            )
        fig.update_yaxes(title_text=label, row=row, col=1)
    starts = curves.groupby("round")["global_step"].min().iloc[1:]
    for x in starts:
        fig.add_vline(x=x - 0.5, line={"color": "#cbd2d9", "width": 1, "dash": "dot"})
    fig.update_xaxes(title_text="step (across rounds)", row=3, col=1)
    return style_figure(fig, 600)


def critiques_section(inputs: Inputs) -> str:
    table = inputs.table("critiques")
    title = "Critiques"
    if table.empty:
        return section("critiques", title, "The critic's cases and statuses.", no_data("critiques"))
    total = int(table["count"].sum())
    ok = int(table.loc[table["status"] == CritiqueStatus.OK, "count"].sum())
    summary = (
        f"{total} critiques over all seeds and rounds, {pct(ok / total if total else float('nan'))} "
        "with status ok. Cases on the left, statuses on the right, stacked per arm."
    )
    return section(
        "critiques", title, summary, figure_html(_critiques_figure(inputs, table), "fig-critiques")
    )


def _critiques_figure(inputs: Inputs, table: pd.DataFrame):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    arms = [a for a in inputs.arms if a in set(table["arm"])]
    fig = make_subplots(rows=1, cols=2, subplot_titles=["case", "status"], horizontal_spacing=0.12)
    for col, (column, colours) in enumerate((("case", CASE_COLOURS), ("status", STATUS_COLOURS)), start=1):
        counts = table.groupby(["arm", column])["count"].sum()
        values = [str(v) for v in table[column].dropna().unique()]
        for value in [str(v) for v in colours if v in values] + sorted(set(values) - set(colours)):
            ys = [int(counts.get((arm, value), 0)) for arm in arms]
            fig.add_trace(
                go.Bar(
                    x=arms,
                    y=ys,
                    name=value,
                    marker_color=colours.get(value, "#7b8794"),
                    legendgroup=column,
                    legendgrouptitle_text=column,
                    hovertemplate=f"%{{x}}: {esc(value)} %{{y}}<extra></extra>",
                ),
                row=1,
                col=col,
            )
    fig.update_yaxes(title_text="critiques", row=1, col=1)
    return style_figure(fig, 380, barmode="stack", legend={"orientation": "v", "x": 1.02, "y": 1})
