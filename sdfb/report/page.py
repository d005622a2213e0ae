"""The report's page: stylesheet, sections, the header (experiment, arms,
checkpoint choice) and plotly embedding.

Plotly's JavaScript is inlined once in the head, so the file opens
offline; figures are drawn by the sections."""

from __future__ import annotations

from typing import Any

from sdfb.report.data import Inputs, arm_label, esc, html_table, pct
from sdfb.summary import headline

FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'DejaVu Sans', sans-serif"

CSS = """
:root { --ink: #1f2933; --muted: #616e7c; --line: #e4e7eb; --card: #ffffff; --bg: #f5f7fa; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--ink); font: 15px/1.5 FONT_STACK; }
main { max-width: 1240px; margin: 0 auto; padding: 24px 28px 64px; }
h1 { font-size: 28px; margin: 8px 0 2px; }
h2 { font-size: 20px; margin: 0 0 4px; }
h3 { font-size: 16px; margin: 18px 0 6px; }
.sub { color: var(--muted); margin: 0 0 12px; }
nav { display: flex; flex-wrap: wrap; gap: 6px 16px; margin: 12px 0 20px; font-size: 14px; }
nav a { color: #0b63b3; text-decoration: none; }
section, header.report { background: var(--card); border: 1px solid var(--line); border-radius: 10px;
  padding: 18px 22px; margin: 0 0 20px; box-shadow: 0 1px 2px rgba(0,0,0,.04); }
.summary { color: var(--muted); margin: 0 0 14px; }
.headline { font-size: 16px; font-weight: 600; margin: 10px 0; }
.no-data { color: var(--muted); font-style: italic; background: #fafbfc; border: 1px dashed var(--line);
  border-radius: 6px; padding: 10px 14px; }
.arm { display: inline-flex; align-items: center; gap: 6px; font-weight: 600; }
.arm::before { content: ""; width: 10px; height: 10px; border-radius: 50%; background: var(--arm); }
.badge { display: inline-block; border-radius: 10px; padding: 0 8px; font-size: 12px; font-weight: 600; }
.badge.ok { background: #e3f6ec; color: #146c43; } .badge.failed { background: #fde8e8; color: #a61b1b; }
pre.error { background: #fff5f5; border: 1px solid #f5c2c2; border-radius: 6px; padding: 8px 10px;
  white-space: pre-wrap; font-size: 12.5px; margin: 4px 0 0; }
table.data { border-collapse: collapse; font-size: 13.5px; margin: 6px 0; }
table.data th, table.data td { border-bottom: 1px solid var(--line); padding: 5px 12px; text-align: left; }
table.data th { color: var(--muted); font-weight: 600; }
table.data tr.chosen td { background: #f0f7ff; }
.figure { margin: 4px 0 10px; }
.attempt { border: 1px solid var(--line); border-radius: 8px; margin: 12px 0; overflow: hidden; }
.attempt-head { background: #fafbfc; border-bottom: 1px solid var(--line); padding: 6px 12px; font-size: 13px;
  color: var(--muted); }
.attempt-body { display: grid; grid-template-columns: minmax(0, 3fr) minmax(0, 2fr); }
.attempt-body > div { padding: 10px 12px; min-width: 0; }
.attempt-body > div + div { border-left: 1px solid var(--line); background: #fcfcfd; }
.label { font-size: 12px; color: var(--muted); text-transform: uppercase; letter-spacing: .04em;
  margin: 0 0 4px; }
.text, .completion { white-space: pre-wrap; overflow-wrap: anywhere;
  font: 13px/1.6 ui-monospace, 'DejaVu Sans Mono', monospace; margin: 0 0 10px; }
.context { max-height: 360px; overflow: auto; }
.tok { border-radius: 2px; }
.tok.step-start { border-left: 2px solid #7b8794; padding-left: 1px; }
.tok.wrong { outline: 1.5px solid #c81e1e; outline-offset: -1px; }
.scale { display: flex; align-items: center; gap: 8px; font-size: 12.5px; color: var(--muted);
  margin: 4px 0 8px; }
.scale .bar { width: 220px; height: 12px; border-radius: 3px; border: 1px solid var(--line);
  background: linear-gradient(90deg, rgba(214,39,40,.65), rgba(255,255,255,0), rgba(31,119,180,.65)); }
.key-wrong { outline: 1.5px solid #c81e1e; padding: 0 4px; }
.key-step { border-left: 2px solid #7b8794; padding-left: 4px; }
""".replace("FONT_STACK", FONT)


def style_figure(fig, height: int, **layout: Any):
    """One look for every chart: white template, the page's font, a legend along the top."""
    top = 90
    bottom = 50
    base = {
        "template": "plotly_white",
        "height": height,
        "font": {"family": FONT, "size": 13, "color": "#1f2933"},
        "margin": {"l": 60, "r": 20, "t": top, "b": bottom},
        # above the subplot titles, which plotly sets just over the plotting area
        "legend": {"orientation": "h", "yanchor": "bottom", "y": 1 + 36 / (height - top - bottom), "x": 0},
        "hoverlabel": {"align": "left"},
    }
    fig.update_layout(**{**base, **layout})
    return fig


def figure_html(fig, div_id: str) -> str:
    """The figure as a div with a stable id, drawn by the plotly.js that the page's head carries."""
    height = int(fig.layout.height or 420)
    body = fig.to_html(
        full_html=False,
        include_plotlyjs=False,
        div_id=div_id,
        default_height=f"{height}px",
        config={"displaylogo": False, "responsive": True},
    )
    return f'<div class="figure" data-figure="{esc(div_id)}">{body}</div>'


def section(anchor: str, title: str, summary: str, body: str) -> str:
    """A titled card; `summary` and `body` are already-escaped HTML."""
    return (
        f'<section id="{esc(anchor)}"><h2>{esc(title)}</h2><p class="summary">{summary}</p>{body}</section>'
    )


def header(inputs: Inputs) -> str:
    """Section 7: what was run, the headline (`sdfb.summary.headline`: an arm is named only on a Holm-adjusted
    finding), each arm's status (a failed arm with its error) and how checkpoints were chosen."""
    s = inputs.summary
    name = s.get("name") or "unnamed"
    split = s.get("split") or {}
    shared = s.get("shared") or {}
    facts = [f"{esc(s.get('kind') or 'experiment')}", f"created {esc(s.get('created') or 'unknown')}"]
    if s.get("reference"):
        facts.append(f"reference arm {arm_label(inputs, s['reference'])}")
    choice = (
        f"Checkpoints chosen on {esc(split.get('validation_problems', '?'))} validation problems, "
        f"results on {esc(split.get('test_problems', '?'))} test problems."
    )
    reuse = (
        f"Shared stages: {esc(shared.get('stage_outputs', 0))} stage outputs computed once and used "
        f"{esc(shared.get('uses', 0))} times across arms."
    )
    result = headline(inputs.table("comparisons"), s.get("reference"))
    return (
        f'<header class="report"><h1>{esc(name)}</h1><p class="sub">{" · ".join(facts)}</p>'
        f'<p class="headline">{esc(result)}</p>'
        f"<p>{choice}<br>{reuse}</p>{_arms_table(inputs)}</header>"
    )


def _arms_table(inputs: Inputs) -> str:
    arms = inputs.summary.get("arms") or {}
    if not arms:
        return '<p class="no-data">No data: summary.json is missing or lists no arms.</p>'
    rows = []
    for arm in inputs.arms:
        if arm not in arms:
            continue
        info = arms[arm] or {}
        status = str(info.get("status") or "unknown")
        badge = f'<span class="badge {esc(status)}">{esc(status)}</span>'
        if info.get("error"):
            badge += f'<pre class="error">{esc(info["error"])}</pre>'
        validation = info.get("validation") or {}
        chosen = info.get("chosen_checkpoint")
        cells = [f"{esc(c)} {pct(v)}" for c, v in validation.items()]
        val = ", ".join(
            f"<b>{cell}</b>" if c == chosen else cell for c, cell in zip(validation, cells, strict=True)
        )
        rows.append([arm_label(inputs, arm), badge, esc(chosen or "–"), val or "–"])
    headers = ["Arm", "Status", "Chosen checkpoint", "Validation Avg@k per checkpoint"]
    return html_table(headers, rows)


def page(title: str, head: str, sections: list[tuple[str, str, str]]) -> str:
    """The whole document: plotly.js inlined once in the head, a table of contents, then the sections.
    `sections` holds (anchor, title, html) triples."""
    from plotly.offline import get_plotlyjs

    # A literal "</script" inside the bundle would end the tag early; plotly.js has none today, but be sure.
    plotly_js = get_plotlyjs().replace("</script", "<\\/script")
    toc = "".join(f'<a href="#{esc(a)}">{esc(t)}</a>' for a, t, _ in sections)
    body = "".join(h for _, _, h in sections)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style>"
        f'<script type="text/javascript" id="plotly-js">{plotly_js}</script></head>'
        f"<body><main>{head}<nav>{toc}</nav>{body}</main></body></html>\n"
    )
