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
from sdfb.summary import comparison_markdown

# As an experiment's analysis holds them: two seeds on the same eval problems, every ok arm trained two rounds
# and scored at base, round_0001 and round_0002; the failed arm appears in the summary only (its runs are not
# analysed).
ARMS = ("reference", "sdft", "sdft_critic")
FAILED = "sdft_broken"
SEEDS = (0, 1)
ROUNDS = (1, 2)
CHECKPOINTS = ("base", "round_0001", "round_0002")
CHOSEN = {"reference": "round_0002", "sdft": "round_0001", "sdft_critic": "round_0002"}
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
FIGURES = (
    "fig-scores",
    "fig-comparisons",
    "fig-localisation-mass",
    "fig-localisation-advantage",
    "fig-localisation-active",
    "fig-training",
    "fig-critiques",
)

# (token_text, step_index, segment): two steps, the second wrong, then the answer line.
ATTEMPT_TOKENS = [
    ("Step 1:", 1, "prefix"),
    (" 2 + 3 = 5", 1, "prefix"),
    ("\n", 1, "prefix"),
    ("Step 2:", 2, "wrong_step"),
    (" 5 * 2 = <b>11</b>", 2, "wrong_step"),
    ("\n", 2, "wrong_step"),
    ("Answer:", -1, "answer"),
    (" 11", -1, "answer"),
]
WRONG_PER_ATTEMPT = sum(segment == "wrong_step" for _, _, segment in ATTEMPT_TOKENS)
# Avg@k at the chosen checkpoint against the reference: (difference, low, high, p). Holm over the two arms by
# hand: 0.02 * 2 = 0.04, then max(0.04, 0.04 * 1) = 0.04 for both. sdft's interval excludes 0, sdft_critic's
# does not.
PRIMARY = {"sdft": (0.03, 0.01, 0.05, 0.02, 0.04), "sdft_critic": (0.02, -0.01, 0.05, 0.04, 0.04)}


def _summary() -> dict:
    validation = {"base": 0.41, "round_0001": 0.47, "round_0002": 0.45}
    arms = {
        arm: {"status": "ok", "error": None, "chosen_checkpoint": CHOSEN[arm], "validation": validation}
        for arm in ARMS
    }
    arms[FAILED] = {
        "status": "failed",
        "error": "CriticUnavailable: server <down> at round 2",
        "chosen_checkpoint": None,
        "validation": {},
    }
    return {
        "name": "demo-experiment",
        "kind": "experiment",
        "reference": "reference",
        "arms": arms,
        "split": {"validation_problems": 40, "test_problems": 160},
        "shared": {"stage_outputs": 6, "uses": 14},
        "created": "2026-12-01T10:00:00Z",
    }


def _scores() -> pd.DataFrame:
    rows = []
    for arm in ARMS:
        for i, checkpoint in enumerate(CHECKPOINTS):
            for metric, level in (("avg", 0.40), ("pass_k", 0.70), ("maj", 0.50)):
                est = level + 0.03 * i
                rows.append(
                    {
                        "arm": arm,
                        "checkpoint": checkpoint,
                        "metric": metric,
                        "estimate": est,
                        "low": est - 0.04,
                        "high": est + 0.04,
                        "n_problems": 160,
                        "n_seeds": len(SEEDS),
                        "chosen": checkpoint == CHOSEN[arm],
                    }
                )
    return pd.DataFrame(rows)


def _comparisons(primary: dict = PRIMARY) -> pd.DataFrame:
    """Every (arm, metric, at) against the reference; the primary rows (avg, chosen) from `primary`, the
    others clearly null (p 0.5, Holm over two arms 1.0)."""
    rows = []
    for arm in ARMS[1:]:
        for metric in ("avg", "pass_k", "maj"):
            for at in ("chosen", "final"):
                d, low, high, p, p_holm = (
                    primary[arm] if (metric, at) == ("avg", "chosen") else (0.01, -0.03, 0.05, 0.5, 1.0)
                )
                finding = p_holm < 0.05 and (low > 0 or high < 0)
                rows.append(
                    {
                        "arm": arm,
                        "reference": "reference",
                        "metric": metric,
                        "at": at,
                        "difference": d,
                        "low": low,
                        "high": high,
                        "p_value": p,
                        "p_holm": p_holm,
                        "finding": finding,
                        "n_problems": 160,
                        "n_seeds": len(SEEDS),
                        "wins": 30,
                        "losses": 20,
                        "ties": 110,
                    }
                )
    return pd.DataFrame(rows)


MEASURES = {
    "neg_mass_in_wrong_step": 0.4,
    "wrong_step_token_share": 0.2,
    "share_minus_chance": 0.2,
    "mean_adv_prefix": 0.01,
    "mean_adv_wrong_step": -0.08,
    "mean_adv_after": -0.02,
    "active_samples": 0.8,
    "active_tokens": 0.3,
}


def _localisation() -> pd.DataFrame:
    """Every ok arm and round, pooled over both seeds: 64 attempts that
    count on 30 problems (seeds share them)."""
    rows = []
    for a, arm in enumerate(ARMS):
        for r in ROUNDS:
            for m, v in MEASURES.items():
                mean = v * (1 + 0.2 * a)
                rows.append(
                    {
                        "arm": arm,
                        "round": r,
                        "measure": m,
                        "mean": mean,
                        "low": mean - 0.05,
                        "high": mean + 0.05,
                        "n": 64,
                        "n_problems": 30,
                    }
                )
    return pd.DataFrame(rows)


def _localisation_with_a_gap() -> pd.DataFrame:
    """A round whose counted attempts have no token after their wrong
    step: that segment's mean is NaN, n 0."""
    table = _localisation()
    gap = (table["arm"] == "sdft_critic") & (table["round"] == 1) & (table["measure"] == "mean_adv_after")
    masked = {c: table[c].mask(gap) for c in ("mean", "low", "high")}
    return table.assign(**masked, n=table["n"].mask(gap, 0), n_problems=table["n_problems"].mask(gap, 0))


def _localisation_paired() -> pd.DataFrame:
    pairs = [
        ("reference", "sdft", -0.04),
        ("reference", "sdft_critic", -0.08),
        ("sdft", "sdft_critic", -0.04),
    ]
    return pd.DataFrame(
        {
            "arm": arm,
            "other": other,
            "round": 1,
            "measure": "share_minus_chance",
            "difference": d,
            "low": d - 0.03,
            "high": d + 0.03,
            "mean_arm": 0.2 + d,
            "mean_other": 0.2,
            "n": 40,
            "n_problems": 20,
            "n_seeds": len(SEEDS),
        }
        for arm, other, d in pairs
    )


def _training() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "arm": arm,
            "seed": seed,
            "round": r,
            "step": step,
            "loss": (1 + a) / (1 + step + 4 * r),
            "kl": 0.01 * step * (1 + a),
            "grad_norm": 1.5 - 0.1 * step - 0.2 * a,
        }
        for a, arm in enumerate(ARMS)
        for seed in SEEDS
        for r in ROUNDS
        for step in range(4)
    )


def _critiques() -> pd.DataFrame:
    rows = [("A", "ok", 12), ("B", "ok", 5), ("C", "wrong_answer", 3), ("none", "malformed", 2)]
    return pd.DataFrame(
        {"arm": arm, "seed": seed, "round": r, "case": case, "status": status, "count": count + 3 * a}
        for a, arm in enumerate(ARMS)
        for seed in SEEDS
        for r in ROUNDS
        for case, status, count in rows
    )


def _attempts() -> pd.DataFrame:
    """The token view's sample: the first seed's round 1, per arm an
    attempt with a wrong step and one without."""
    return pd.DataFrame(
        {
            "arm": arm,
            "seed": SEEDS[0],
            "round": 1,
            "problem_id": f"p{i}",
            "sample_index": i,
            "question": "What is (2 + 3) * 2? <i>Show steps</i>",
            "context": "Teacher hint:\n  step 2 is wrong & why",
            "completion_text": "Step 1: 2 + 3 = 5\nStep 2: 5 * 2 = <b>11</b>\nAnswer: 11",
            "correct": False,
            "first_wrong_step": 2 if i == 0 else None,
        }  # a critic that gave no verdict: unknown
        for arm in ARMS
        for i in range(2)
    )


def _tokens(attempts: pd.DataFrame) -> pd.DataFrame:
    """Each sampled attempt's tokens; without a verdict its step tokens are
    "unknown", as annotate_tokens has it."""
    rows = []
    for a in attempts.itertuples():
        for pos, (text, step, seg) in enumerate(ATTEMPT_TOKENS):
            known = not pd.isna(a.first_wrong_step)
            rows.append(
                {
                    "arm": a.arm,
                    "seed": a.seed,
                    "round": a.round,
                    "problem_id": a.problem_id,
                    "sample_index": a.sample_index,
                    "position": pos,
                    "token_text": text,
                    "advantage": (-0.5 if seg == "wrong_step" else 0.1) * (pos + 1),
                    "step_index": step,
                    "segment": seg if known or step < 1 else "unknown",
                }
            )
    return pd.DataFrame(rows)


def _analysis(folder: Path, comparisons: pd.DataFrame | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "summary.json").write_text(json.dumps(_summary()))
    attempts = _attempts()
    tables = {
        "scores": _scores(),
        "comparisons": _comparisons() if comparisons is None else comparisons,
        "localisation": _localisation_with_a_gap(),
        "localisation_paired": _localisation_paired(),
        "training": _training(),
        "critiques": _critiques(),
        "attempts_sample": attempts,
        "tokens_sample": _tokens(attempts),
    }
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


def _headline(text: str) -> str:
    return re.search(r'<p class="headline">(.*?)</p>', text).group(1)


def test_the_headline_names_only_an_arm_whose_holm_adjusted_difference_excludes_zero(report):
    text = report.read_text(encoding="utf-8")
    # sdft: Holm p 0.04 < 0.05 and [+1.0, +5.0] excludes 0; sdft_critic: Holm p 0.04 but [-1.0, +5.0] holds 0
    assert _headline(text) == (
        "Avg@k at the chosen checkpoint (Holm-adjusted over the 2 arms compared with reference): sdft is "
        "better than reference by +3.0 pp [+1.0, +5.0], p = 0.04."
    )
    assert "Best chosen" not in text  # no arm is crowned on its score alone


def test_the_headline_establishes_no_difference_when_only_unadjusted_p_values_are_small(tmp_path):
    # p 0.03 and 0.04 are each below 0.05, but Holm over the two arms gives 0.03 * 2 = 0.06, max(0.06, 0.04) =
    # 0.06
    primary = {"sdft": (0.03, 0.01, 0.05, 0.03, 0.06), "sdft_critic": (0.02, 0.005, 0.05, 0.04, 0.06)}
    folder = _analysis(tmp_path / "analysis", _comparisons(primary))
    text = write_report(folder, tmp_path / "report.html").read_text(encoding="utf-8")

    assert _headline(text) == (
        "No difference in Avg@k from reference is established: no arm has p &lt; 0.05 (Holm-adjusted over "
        "the 2 arms compared with reference) with a 95% interval that excludes 0."
    )
    markdown = comparison_markdown({"scores": _scores(), "comparisons": _comparisons(primary)}, _summary())
    assert "**No difference in Avg@k from reference is established" in markdown


def test_the_markdown_comparison_shows_raw_and_holm_adjusted_p_values_per_arm():
    markdown = comparison_markdown({"scores": _scores(), "comparisons": _comparisons()}, _summary())
    lines = markdown.splitlines()

    assert (
        "**Avg@k at the chosen checkpoint (Holm-adjusted over the 2 arms compared with reference): sdft"
        in markdown
    )
    assert "p (Holm): Holm-adjusted over the arms compared with the reference" in markdown
    assert "| p | p (Holm) |" in lines[6]
    # chosen checkpoints: sdft round_0001 (i = 1: avg 43.0 [39.0, 47.0]), sdft_critic round_0002 (46.0)
    scores = "43.0 [39.0, 47.0] | 73.0 [69.0, 77.0] | 53.0 [49.0, 57.0]"
    assert f"| sdft | round_0001 | {scores} | +3.0 [+1.0, +5.0] | 0.020 | 0.040 |" in lines
    scores = "46.0 [42.0, 50.0] | 76.0 [72.0, 80.0] | 56.0 [52.0, 60.0]"
    assert f"| sdft_critic | round_0002 | {scores} | +2.0 [-1.0, +5.0] | 0.040 | 0.040 |" in lines
    assert "| sdft_broken | failed | CriticUnavailable: server <down> at round 2 |  |  |  |  |  |" in lines


def test_the_localisation_section_shows_each_pair_of_arms_on_the_same_attempts(report):
    text = report.read_text(encoding="utf-8")
    assert "paired difference in mass minus chance" in text
    # reference - sdft_critic: -0.08 [-0.11, -0.05] as percentage points, over 40 attempts of 20 problems
    assert "-8.0 pp [-11.0, -5.0]</td><td>+12.0 pp</td><td>+20.0 pp</td><td>40</td><td>20</td>" in text


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
    attempts = _attempts()
    n_attempts, n_located = len(attempts), int(attempts["first_wrong_step"].notna().sum())
    assert "first wrong step 2" in text and "first wrong step unknown" in text
    assert len(re.findall(r'class="tok[ "]', text)) == n_attempts * len(ATTEMPT_TOKENS)
    assert len(re.findall(r'class="tok[^"]*\bwrong\b', text)) == n_located * WRONG_PER_ATTEMPT
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


# --- a real browser
# ---------------------------------------------------------------------------------------------


def _chromium_or_skip() -> str:
    """The system Chromium's path; without it or playwright the test skips,
    or fails when SDFB_REQUIRE_BROWSER=1."""
    chromium = os.environ.get("SDFB_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    missing = [
        what
        for what, ok in (
            ("the playwright package", importlib.util.find_spec("playwright")),
            ("a chromium binary", chromium),
        )
        if not ok
    ]
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
    attempts = _attempts()
    n_attempts, n_located = len(attempts), int(attempts["first_wrong_step"].notna().sum())
    assert (n_tok, n_wrong) == (n_attempts * len(ATTEMPT_TOKENS), n_located * WRONG_PER_ATTEMPT)
    assert screenshot.stat().st_size > 10_000
