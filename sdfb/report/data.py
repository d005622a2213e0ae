"""The report's inputs: the analysis folder's summary and tables read leniently
(missing or empty is no data), arm order and colours, and the small formatting helpers
every section shares. No plotting, no HTML layout."""

from __future__ import annotations

import html
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

log = logging.getLogger(__name__)

TABLES = (
    "scores",
    "comparisons",
    "localisation",
    "localisation_paired",
    "training",
    "critiques",
    "tokens_sample",
    "attempts_sample",
    "eval_set_scores",
    "eval_set_comparisons",
)
# Okabe-Ito, readable for colour-blind readers; the yellow is left out because it vanishes on white.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9", "#8C6D31", "#555555")
METRIC_NAMES = {"avg": "Avg@k", "pass_k": "Pass@k", "maj": "Maj@k"}


@dataclass(frozen=True)
class Inputs:
    """Everything one report is drawn from. A table that was missing or unreadable is an empty DataFrame."""

    summary: dict[str, Any]
    tables: dict[str, pd.DataFrame]
    arms: tuple[str, ...] = field(default=())

    def table(self, name: str) -> pd.DataFrame:
        return self.tables.get(name, pd.DataFrame())

    def colour(self, arm: str) -> str:
        index = self.arms.index(arm) if arm in self.arms else len(self.arms)
        return PALETTE[index % len(PALETTE)]


def load_inputs(analysis_dir: Path) -> Inputs:
    """Read `summary.json` and every known table from `analysis_dir`; anything absent becomes empty."""
    summary_path = analysis_dir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    tables = {name: _read_table(analysis_dir / f"{name}.parquet") for name in TABLES}
    return Inputs(summary=summary, tables=tables, arms=_arm_order(summary, tables))


def _read_table(path: Path) -> pd.DataFrame:
    if not path.is_file():
        log.info("report: %s is missing; its section says no data", path.name)
        return pd.DataFrame()
    return pd.read_parquet(path)


def _arm_order(summary: dict[str, Any], tables: dict[str, pd.DataFrame]) -> tuple[str, ...]:
    """The summary's arms in its order (the reference first when it names
    one), then any other arm in the tables."""
    order = list((summary.get("arms") or {}).keys())
    reference = summary.get("reference")
    if reference in order:
        order.remove(reference)
        order.insert(0, reference)
    for table in tables.values():
        if "arm" in table.columns:
            order += sorted({str(a) for a in table["arm"].dropna()} - set(order))
    return tuple(order)


def checkpoint_order(checkpoints) -> list[str]:
    """ "base" first, then the rest in name order (round_0001, round_0002, ...)."""
    names = sorted({str(c) for c in checkpoints})
    return (["base"] if "base" in names else []) + [c for c in names if c != "base"]


def pct(value: float, digits: int = 1) -> str:
    return "–" if pd.isna(value) else f"{100 * value:.{digits}f}%"


def interval(estimate: float, low: float, high: float, scale: float = 100.0, unit: str = "%") -> str:
    """ "45.2% [41.0, 49.3]" for fractions; pass scale=1, unit="" for raw numbers."""
    if pd.isna(estimate):
        return "–"
    return f"{scale * estimate:.1f}{unit} [{scale * low:.1f}, {scale * high:.1f}]"


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def no_data(*names: str) -> str:
    files = ", ".join(f"{n}.parquet" for n in names)
    return f'<p class="no-data">No data: {esc(files)} is missing or empty.</p>'


def html_table(headers: list[str], rows: list[list[str]], row_classes: list[str] | None = None) -> str:
    """A plain table; cells are already-escaped HTML."""
    head = "".join(f"<th>{h}</th>" for h in headers)
    body = []
    for i, row in enumerate(rows):
        cls = f' class="{row_classes[i]}"' if row_classes and row_classes[i] else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>")
    return f'<table class="data"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def arm_label(inputs: Inputs, arm: str) -> str:
    return f'<span class="arm" style="--arm:{inputs.colour(arm)}">{esc(arm)}</span>'
