"""The run summary: scores per checkpoint, per-round statistics, stage wall times and Prefect overhead.

Built from manifests and tables the caller has read; formats the results table for the CLI and the UI.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pandas as pd

from sdfb.localisation import round_localisation
from sdfb.names import ArmStatus


def stage_times(manifests: dict[str, dict[str, Any]], since: float) -> dict[str, Any]:
    """Seconds per stage (summed over rounds) and the share of this invocation's work, from manifests keyed by
    relative path. A manifest written before `since` belongs to an earlier invocation (a skipped stage)."""
    per_stage: dict[str, float] = defaultdict(float)
    this_run = 0.0
    for rel, manifest in manifests.items():
        stage = manifest.get("stage", rel)
        seconds = float(manifest.get("seconds", 0.0))
        per_stage[stage] += seconds
        if float(manifest.get("finished_at", 0.0)) >= since:
            this_run += seconds
    return {"per_stage_seconds": dict(sorted(per_stage.items())), "work_seconds_this_run": this_run}


def round_stats(
    round_index: int,
    grades: pd.DataFrame,
    critiques: pd.DataFrame,
    tokens: pd.DataFrame,
    distill_metrics: dict[str, Any],
    inputs: list[str],
) -> dict[str, Any]:
    """A round's statistics from its grades, critiques, per-token records and training metrics:
    rollout accuracy and format rate, grade and critique value counts, where the advantage falls
    (`localisation`). `inputs`: the content hashes of the tables they come from, kept so that a
    later summary can reuse them unchanged."""
    return {
        "round": round_index,
        "rollouts": len(grades),
        "rollout_accuracy": float(grades["correct"].mean()),
        "rollout_format_rate": float(grades["format_ok"].mean()),
        "grade_status": grades["status"].value_counts().to_dict(),
        "critique_cases": critiques["case"].value_counts().to_dict(),
        "critique_status": critiques["status"].value_counts().to_dict(),
        "distill": distill_metrics,
        "localisation": round_localisation(tokens),
        "inputs": inputs,
    }


def earlier_rounds(summary: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """The per-round statistics of an earlier summary by round ({} when it has none this version can read)."""
    try:
        return {r["round"]: r for r in summary.get("rounds", [])}
    except (KeyError, TypeError, AttributeError):
        return {}


def build_summary(
    run_name: str,
    config: dict[str, Any],
    scores: list[dict[str, Any]],
    rounds: list[dict[str, Any]],
    manifests: dict[str, dict[str, Any]],
    started_at: float,
    finished_at: float,
    set_scores: dict[str, list[dict[str, Any]]] | None = None,
) -> dict[str, Any]:
    """summary.json: `scores` on the eval split per checkpoint, `eval_sets` the same on each of eval.sets."""
    times = stage_times(manifests, started_at)
    wall = finished_at - started_at
    work = times["work_seconds_this_run"]
    base = next((s for s in scores if s["checkpoint"] == "base"), None)
    return {
        "run": run_name,
        "scores": scores,
        "base_student": (
            {"format_rate": base["format_rate"], "accuracy": base["avg_at_k"], "k": base["k"]}
            if base
            else None
        ),
        "eval_sets": set_scores or {},
        "rounds": rounds,
        "timing": {
            **times,
            "flow_wall_seconds": wall,
            # everything in the flow run that is not a stage's own work: task/flow orchestration, state
            # reporting
            "prefect_overhead_share": max(0.0, (wall - work) / wall) if wall > 0 else 0.0,
        },
        "config": config,
    }


def results_rows(summary: dict[str, Any], eval_set: str | None = None) -> list[list[str]]:
    """Rows of the results table: checkpoint, k, problems, Avg@k, Pass@k, Maj@k, format rate (percentages),
    on the eval split or on eval set `eval_set`."""
    scores = summary["eval_sets"][eval_set] if eval_set else summary["scores"]
    return [
        [
            s["checkpoint"],
            str(s["k"]),
            str(s["n_problems"]),
            f"{100 * s['avg_at_k']:.1f}",
            f"{100 * s['pass_at_k']:.1f}",
            f"{100 * s['maj_at_k']:.1f}",
            f"{100 * s['format_rate']:.1f}",
        ]
        for s in scores
    ]


RESULTS_HEADER = ["checkpoint", "k", "problems", "Avg@k %", "Pass@k %", "Maj@k %", "format %"]


def results_markdown(summary: dict[str, Any]) -> str:
    """The results table on the eval split, then one per eval set under its name."""
    parts = []
    for eval_set in [None, *summary.get("eval_sets", {})]:
        lines = [f"**{eval_set}**\n"] if eval_set else []
        lines += ["| " + " | ".join(RESULTS_HEADER) + " |", "|" + "---|" * len(RESULTS_HEADER)]
        lines += ["| " + " | ".join(row) + " |" for row in results_rows(summary, eval_set)]
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def localisation_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per round: where the negative advantage falls against chance, mean advantage by segment, and
    the share of tokens with any signal (for the UI's table artifact)."""
    rows = []
    for stats in summary["rounds"]:
        loc = stats["localisation"]

        def show(measure: str, loc=loc) -> str:
            m = loc[measure]
            return "n/a" if m["n"] == 0 else f"{m['mean']:.3f} [{m['low']:.3f}, {m['high']:.3f}]"

        rows.append(
            {
                "round": stats["round"],
                "attempts with a wrong step": loc["attempts_with_wrong_step"],
                "counted (some A < 0)": loc.get("attempts_counted", ""),
                "neg. mass in wrong step": show("neg_mass_in_wrong_step"),
                "chance (its token share)": show("wrong_step_token_share"),
                "mass minus chance": show("share_minus_chance") if "share_minus_chance" in loc else "n/a",
                "mean A prefix": show("mean_adv_prefix"),
                "mean A wrong step": show("mean_adv_wrong_step"),
                "mean A after": show("mean_adv_after"),
                "active tokens": f"{loc['activity']['active_tokens']:.3f}",
            }
        )
    return rows


COMPARISON_HEADER = [
    "arm",
    "checkpoint",
    "Avg@k [95% CI]",
    "Pass@k [95% CI]",
    "Maj@k [95% CI]",
    "Avg@k vs reference",
    "p",
    "p (Holm)",
]


def _interval(row) -> str:
    return f"{100 * row['estimate']:.1f} [{100 * row['low']:.1f}, {100 * row['high']:.1f}]"


def _primary(comparisons) -> Any:
    """The primary comparison's rows: Avg@k at each arm's checkpoint chosen on validation."""
    if comparisons is None or comparisons.empty:
        return comparisons
    return comparisons[(comparisons["at"] == "chosen") & (comparisons["metric"] == "avg")]


def headline(comparisons, reference: str | None) -> str:
    """The experiment's result in one sentence, from the primary comparison (Avg@k at the chosen checkpoints).
    An arm is named only when its difference is a finding (`stats.is_finding`: Holm-adjusted p < 0.05 over the
    arms and a 95% interval excluding 0); otherwise the sentence says that no difference is established."""
    from sdfb.stats import FINDING_ALPHA, is_finding

    rows = _primary(comparisons)
    if rows is None or rows.empty:
        return "No paired comparison against a reference arm."
    family = f"Holm-adjusted over the {len(rows)} arm{'s' if len(rows) > 1 else ''} compared with {reference}"
    found = [r for _, r in rows.iterrows() if "p_holm" in r and is_finding(r["p_holm"], r["low"], r["high"])]
    if not found:
        return (
            f"No difference in Avg@k from {reference} is established: no arm has p < {FINDING_ALPHA} "
            f"({family}) with a 95% interval that excludes 0."
        )
    parts = [
        f"{r['arm']} is {'better' if r['difference'] > 0 else 'worse'} than {reference} "
        f"by {100 * r['difference']:+.1f} pp [{100 * r['low']:+.1f}, "
        f"{100 * r['high']:+.1f}], p = {r['p_holm']:.3g}"
        for r in found
    ]
    return f"Avg@k at the chosen checkpoint ({family}): " + "; ".join(parts) + "."


def _difference_cells(comparisons, arm: str) -> list[str]:
    picked = _primary(comparisons)
    picked = picked[picked["arm"] == arm] if picked is not None and not picked.empty else picked
    if picked is None or picked.empty:
        return ["", "", ""]
    c = picked.iloc[0]
    holm = f"{c['p_holm']:.3f}" if "p_holm" in c else ""
    diff = f"{100 * c['difference']:+.1f} [{100 * c['low']:+.1f}, {100 * c['high']:+.1f}]"
    return [diff, f"{c['p_value']:.3f}", holm]


def comparison_rows(tables: dict, summary: dict[str, Any]) -> list[list[str]]:
    """One row per arm at its checkpoint chosen on validation: test-split scores with intervals, and the
    paired Avg@k difference against the reference arm (percentage points) with its interval, its p-value
    and the p-value Holm-adjusted over the arms."""
    scores = tables["scores"]
    comparisons = tables["comparisons"]
    rows = []
    for arm, info in summary["arms"].items():
        if info.get("status") != ArmStatus.OK or not info.get("chosen_checkpoint"):
            error = (info.get("error") or "").splitlines() or [""]
            rows.append([arm, ArmStatus.FAILED, error[0][:100], "", "", "", "", ""])
            continue
        at = scores[(scores["arm"] == arm) & (scores["checkpoint"] == info["chosen_checkpoint"])].set_index(
            "metric"
        )
        cells = [_interval(at.loc[m]) if m in at.index else "" for m in ("avg", "pass_k", "maj")]
        compared = (
            ["reference", "", ""] if arm == summary.get("reference") else _difference_cells(comparisons, arm)
        )
        rows.append([arm, info["chosen_checkpoint"], *cells, *compared])
    return rows


def comparison_markdown(tables: dict, summary: dict[str, Any]) -> str:
    split = summary["split"]
    lines = [
        f"# {summary['name']}",
        "",
        f"**{headline(tables['comparisons'], summary.get('reference'))}**",
        "",
        f"Checkpoints chosen on {split['validation_problems']} validation problems; scores (%) on "
        f"{split['test_problems']} test problems; differences in percentage points, paired by problem and "
        "seed. p: paired sign-flip test; p (Holm): Holm-adjusted over the arms compared with the "
        "reference, for each metric and checkpoint choice.",
        "",
        "| " + " | ".join(COMPARISON_HEADER) + " |",
        "|" + "---|" * len(COMPARISON_HEADER),
    ]
    lines += ["| " + " | ".join(row) + " |" for row in comparison_rows(tables, summary)]
    return "\n".join(lines)
