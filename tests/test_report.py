"""The HTML report: self-contained (plotly.js inlined once, nothing remote), escaped, "no data" for missing
tables, and, under the `browser` marker, drawn by a real headless Chromium without a console error."""

import importlib.util
import json
import os
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from sdfb.report import write_report
from sdfb.report.tokens import clip_scale, token_colour

ARMS = ("reference", "sdft", "sdft_critic")  # the third arm failed; its tables hold only what it wrote
ROUNDS = (1, 2)
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--no-first-run"]  # fmt: skip
FIGURES = ("fig-scores", "fig-comparisons", "fig-localisation-mass", "fig-localisation-advantage",
           "fig-localisation-active", "fig-training", "fig-critiques")  # fmt: skip

# (token_text, step_index, segment): two steps, the second wrong, then the answer line.
ATTEMPT_TOKENS = [
    ("Step 1:", 1, "prefix"), (" 2 + 3 = 5", 1, "prefix"), ("\n", 1, "prefix"),
    ("Step 2:", 2, "wrong_step"), (" 5 * 2 = <b>11</b>", 2, "wrong_step"), ("\n", 2, "wrong_step"),
    ("Answer:", -1, "answer"), (" 11", -1, "answer"),
]  # fmt: skip
WRONG_PER_ATTEMPT = sum(segment == "wrong_step" for _, _, segment in ATTEMPT_TOKENS)


def _summary() -> dict:
    arms = {
        "reference": {"status": "ok", "error": None, "chosen_checkpoint": "base", "validation": {"base": 0.41}},
        "sdft": {"status": "ok", "error": None, "chosen_checkpoint": "round_0001",
                 "validation": {"base": 0.41, "round_0001": 0.47, "round_0002": 0.45}},
        "sdft_critic": {"status": "failed", "error": "CriticUnavailable: server <down> at round 2",
                        "chosen_checkpoint": None, "validation": {}},
    }  # fmt: skip
    return {"name": "demo-experiment", "kind": "experiment", "reference": "reference", "arms": arms,
            "split": {"validation_problems": 40, "test_problems": 160}, "shared": {"stage_outputs": 6, "uses": 14},
            "created": "2026-12-01T10:00:00Z"}  # fmt: skip


def _scores() -> pd.DataFrame:
    rows = []
    for arm, checkpoints, chosen in (("reference", ["base"], "base"),
                                     ("sdft", ["base", "round_0001", "round_0002"], "round_0001")):  # fmt: skip
        for i, checkpoint in enumerate(checkpoints):
            for metric, level in (("avg", 0.40), ("pass_k", 0.70), ("maj", 0.50)):
                est = level + 0.03 * i
                rows.append({"arm": arm, "checkpoint": checkpoint, "metric": metric, "estimate": est,
                             "low": est - 0.04, "high": est + 0.04, "n_problems": 160, "n_seeds": 2,
                             "chosen": checkpoint == chosen})  # fmt: skip
    return pd.DataFrame(rows)


def _comparisons() -> pd.DataFrame:
    return pd.DataFrame(
        {"arm": "sdft", "reference": "reference", "metric": m, "at": at, "difference": d, "low": d - 0.03,
         "high": d + 0.03, "p_value": 0.02, "n_problems": 160, "n_seeds": 2, "wins": 30, "losses": 20, "ties": 110}
        for m in ("avg", "pass_k", "maj") for at, d in (("chosen", 0.03), ("final", 0.01))
    )  # fmt: skip


def _localisation() -> pd.DataFrame:
    measures = {"neg_mass_in_wrong_step": 0.4, "wrong_step_token_share": 0.2, "mean_adv_prefix": 0.01,
                "mean_adv_wrong_step": -0.08, "mean_adv_after": -0.02, "active_samples": 0.8, "active_tokens": 0.3}  # fmt: skip
    return pd.DataFrame(
        {
            "arm": arm,
            "round": r,
            "measure": m,
            "mean": v * (1 + 0.2 * a),
            "low": v * (1 + 0.2 * a) - 0.05,
            "high": v * (1 + 0.2 * a) + 0.05,
            "n": 64,
        }
        for a, arm in enumerate(ARMS[1:])
        for r in ROUNDS
        for m, v in measures.items()
    )


def _localisation_with_a_gap() -> pd.DataFrame:
    """A round with no attempt that has a known wrong step: its segment means are NaN."""
    table = _localisation()
    gap = (table["arm"] == "sdft_critic") & (table["round"] == 1) & (table["measure"] == "mean_adv_after")
    return table.assign(**{c: table[c].mask(gap) for c in ("mean", "low", "high")})


def _training() -> pd.DataFrame:
    return pd.DataFrame(
        {"arm": arm, "seed": seed, "round": r, "step": step, "loss": (1 + a) / (1 + step + 4 * r),
         "kl": 0.01 * step * (1 + a), "grad_norm": 1.5 - 0.1 * step - 0.2 * a}
        for a, arm in enumerate(ARMS[1:]) for seed in (0, 1) for r in ROUNDS for step in range(4)
    )  # fmt: skip


def _critiques() -> pd.DataFrame:
    rows = [("A", "ok", 12), ("B", "ok", 5), ("C", "wrong_answer", 3), ("none", "malformed", 2)]
    return pd.DataFrame(
        {"arm": arm, "seed": 0, "round": r, "case": case, "status": status, "count": count + 3 * a}
        for a, arm in enumerate(ARMS[1:])
        for r in ROUNDS
        for case, status, count in rows
    )


def _attempts() -> pd.DataFrame:
    return pd.DataFrame(
        {"arm": arm, "seed": 0, "round": 1, "problem_id": f"p{i}", "sample_index": i,
         "question": "What is (2 + 3) * 2? <i>Show steps</i>", "context": "Teacher hint:\n  step 2 is wrong & why",
         "completion_text": "Step 1: 2 + 3 = 5\nStep 2: 5 * 2 = <b>11</b>\nAnswer: 11", "correct": False,
         "first_wrong_step": 2 if i == 0 else None}  # a critic that gave no verdict: unknown
        for arm in ARMS[1:] for i in range(2)
    )  # fmt: skip


def _tokens(attempts: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {"arm": a.arm, "seed": a.seed, "round": a.round, "problem_id": a.problem_id, "sample_index": a.sample_index,
         "position": pos, "token_text": text, "advantage": (-0.5 if seg == "wrong_step" else 0.1) * (pos + 1),
         "step_index": step, "segment": seg, "first_wrong_step": 2}
        for a in attempts.itertuples() for pos, (text, step, seg) in enumerate(ATTEMPT_TOKENS)
    )  # fmt: skip


def _analysis(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "summary.json").write_text(json.dumps(_summary()))
    attempts = _attempts()
    tables = {"scores": _scores(), "comparisons": _comparisons(), "localisation": _localisation_with_a_gap(),
              "training": _training(), "critiques": _critiques(), "attempts_sample": attempts,
              "tokens_sample": _tokens(attempts)}  # fmt: skip
    for name, table in tables.items():
        table.to_parquet(folder / f"{name}.parquet")
    return folder


@pytest.fixture
def report(tmp_path) -> Path:
    return write_report(_analysis(tmp_path / "analysis"), tmp_path / "out" / "report.html")


def test_the_report_is_one_file_that_carries_plotly_once_and_loads_nothing_remote(report):
    text = report.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    assert text.count("plotly.js v") == 1, "plotly.js must be inlined exactly once"
    assert re.search(r"<script[^>]*\bsrc\s*=", text, re.I) is None
    assert re.search(r"<link\b", text, re.I) is None
    assert re.search(r"<(img|iframe)[^>]*\bsrc\s*=\s*[\"']?https?:", text, re.I) is None
    for div_id in FIGURES:
        assert f'id="{div_id}"' in text


def test_text_from_the_tables_is_escaped_not_interpreted(report):
    text = report.read_text(encoding="utf-8")
    assert "&lt;b&gt;11&lt;/b&gt;" in text
    assert "<b>11</b>" not in text
    assert "&lt;i&gt;Show steps&lt;/i&gt;" in text
    assert "server &lt;down&gt; at round 2" in text
    assert "step 2 is wrong &amp; why" in text


def test_the_header_states_arms_their_status_and_how_checkpoints_were_chosen(report):
    text = report.read_text(encoding="utf-8")
    assert "demo-experiment" in text
    assert "Checkpoints chosen on 40 validation problems, results on 160 test problems." in text
    assert '<span class="badge failed">failed</span>' in text
    assert "6 stage outputs computed once and used 14 times" in text


def test_the_colour_scale_is_clipped_at_the_95th_percentile_of_absolute_advantage():
    # |A| = 1..20: the 95th percentile interpolates 19 + 0.05 * (20 - 19) = 19.05
    assert clip_scale(pd.Series([-a if a % 2 else a for a in range(1, 21)])) == pytest.approx(19.05)
    assert clip_scale(pd.Series([0.0, 0.0])) == 1.0  # nothing to scale by: no division by zero
    assert token_colour(-19.05, 19.05) == "rgba(214,39,40,0.650)"  # full red at -scale
    assert token_colour(100.0, 19.05) == "rgba(31,119,180,0.650)"  # clipped, full blue
    assert token_colour(19.05 / 2, 19.05) == "rgba(31,119,180,0.325)"
    assert token_colour(0.0, 19.05) == token_colour(float("nan"), 19.05) == "transparent"


def test_every_token_is_a_span_and_the_first_wrong_step_is_marked(report):
    text = report.read_text(encoding="utf-8")
    n_attempts = len(_attempts())
    assert "first wrong step 2" in text and "first wrong step unknown" in text
    assert len(re.findall(r'class="tok[ "]', text)) == n_attempts * len(ATTEMPT_TOKENS)
    assert len(re.findall(r'class="tok[^"]*\bwrong\b', text)) == n_attempts * WRONG_PER_ATTEMPT
    assert len(re.findall(r'class="tok[^"]*\bstep-start\b', text)) == n_attempts * 3  # step 1, step 2, answer


def test_missing_and_empty_tables_give_no_data_sections_not_errors(tmp_path):
    folder = tmp_path / "analysis"
    folder.mkdir()
    (folder / "summary.json").write_text(json.dumps(_summary()))
    pd.DataFrame(columns=["arm", "checkpoint", "metric", "estimate"]).to_parquet(folder / "scores.parquet")
    text = write_report(folder, tmp_path / "report.html").read_text(encoding="utf-8")
    for name in ("scores", "comparisons", "localisation", "training", "critiques", "attempts_sample"):
        assert f"No data: {name}.parquet is missing or empty." in text
    assert text.count("plotly.js v") == 1


def test_an_empty_analysis_folder_still_gives_a_page(tmp_path):
    folder = tmp_path / "analysis"
    folder.mkdir()
    text = write_report(folder, tmp_path / "report.html").read_text(encoding="utf-8")
    assert "No data: summary.json is missing or lists no arms." in text
    assert "</html>" in text


# --- a real browser ---------------------------------------------------------------------------------------------


def _chromium_or_skip() -> str:
    """The system Chromium's path; without it or playwright the test skips, or fails when SDFB_REQUIRE_BROWSER=1."""
    chromium = os.environ.get("SDFB_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    missing = [what for what, ok in (("the playwright package", importlib.util.find_spec("playwright")),
                                      ("a chromium binary", chromium)) if not ok]  # fmt: skip
    if missing:
        message = f"{' and '.join(missing)} not found: run scripts/install-browser.sh (or set SDFB_CHROMIUM)"
        if os.environ.get("SDFB_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return chromium


DRAWN = """ids => ids.map(id => {
  const root = document.getElementById(id);
  return [id, root ? root.querySelectorAll('.main-svg').length : -1,
          root ? root.querySelectorAll('g.trace path').length : -1];
})"""


@pytest.mark.browser
def test_a_headless_chromium_draws_every_chart_and_the_token_view_without_errors(report, tmp_path):
    chromium = _chromium_or_skip()
    from playwright.sync_api import sync_playwright

    screenshot = Path(os.environ.get("SDFB_REPORT_SCREENSHOT") or tmp_path / "report.png")
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=LAUNCH_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1360, "height": 900})
            page.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
            page.goto(report.resolve().as_uri(), wait_until="load")
            page.wait_for_function(
                "ids => ids.every(id => document.querySelector('#' + id + ' .main-svg'))",
                arg=list(FIGURES),
                timeout=30_000,
            )
            drawn = page.evaluate(DRAWN, list(FIGURES))
            n_tok, n_wrong = page.locator("span.tok").count(), page.locator("span.tok.wrong").count()
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    assert errors == []
    assert [d for d in drawn if d[1] < 1 or d[2] < 1] == [], f"charts not drawn (id, svgs, paths): {drawn}"
    n_attempts = len(_attempts())
    assert (n_tok, n_wrong) == (n_attempts * len(ATTEMPT_TOKENS), n_attempts * WRONG_PER_ATTEMPT)
    assert screenshot.stat().st_size > 10_000
