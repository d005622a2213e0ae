"""One self-contained HTML report (plotly.js inlined, no network) of an experiment's
analysis folder: header, scores, paired differences, localisation, training, critiques and
a token view. Draws; computes no statistics."""

from __future__ import annotations

from pathlib import Path

from sdfb.atomic import atomic_path
from sdfb.report.data import load_inputs
from sdfb.report.diagnostics import critiques_section, localisation_section, training_section
from sdfb.report.page import header, page
from sdfb.report.scores import comparisons_section, scores_section
from sdfb.report.sets import eval_sets_section
from sdfb.report.tokens import tokens_section

__all__ = ["render_report", "write_report"]

SECTIONS = (
    ("scores", "Scores", scores_section),
    ("comparisons", "Paired differences", comparisons_section),
    ("eval-sets", "Eval sets", eval_sets_section),
    ("localisation", "Localisation", localisation_section),
    ("training", "Training", training_section),
    ("critiques", "Critiques", critiques_section),
    ("tokens", "Token view", tokens_section),
)


def render_report(analysis_dir: Path) -> str:
    """The report's HTML for the summary and tables in `analysis_dir`; a missing or empty table gives its
    section a "no data" note instead of an error."""
    inputs = load_inputs(Path(analysis_dir))
    sections = [(anchor, title, build(inputs)) for anchor, title, build in SECTIONS]
    title = f"{inputs.summary.get('name') or 'sdfb'} · sdfb report"
    return page(title, header(inputs), sections)


def write_report(analysis_dir: Path, out: Path) -> Path:
    """Write the report for `analysis_dir` to `out` (one HTML file that opens offline) and return `out`."""
    text = render_report(Path(analysis_dir))
    with atomic_path(out) as tmp:
        tmp.write_text(text, encoding="utf-8")  # the page declares utf-8 whatever the locale
    return Path(out)
