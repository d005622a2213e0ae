"""The run summary: scores per checkpoint, per-round statistics, stage wall times and Prefect overhead.

Built from manifests and tables the caller has read; formats the results table for the CLI and the UI.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any


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


def build_summary(
    run_name: str,
    config: dict[str, Any],
    scores: list[dict[str, Any]],
    rounds: list[dict[str, Any]],
    manifests: dict[str, dict[str, Any]],
    started_at: float,
    finished_at: float,
) -> dict[str, Any]:
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
        "rounds": rounds,
        "timing": {
            **times,
            "flow_wall_seconds": wall,
            # everything in the flow run that is not a stage's own work: task/flow orchestration, state reporting
            "prefect_overhead_share": max(0.0, (wall - work) / wall) if wall > 0 else 0.0,
        },
        "config": config,
    }


def results_rows(summary: dict[str, Any]) -> list[list[str]]:
    """Rows of the results table: checkpoint, k, problems, Avg@k, Pass@k, Maj@k, format rate (percentages)."""
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
        for s in summary["scores"]
    ]


RESULTS_HEADER = ["checkpoint", "k", "problems", "Avg@k %", "Pass@k %", "Maj@k %", "format %"]


def results_markdown(summary: dict[str, Any]) -> str:
    lines = ["| " + " | ".join(RESULTS_HEADER) + " |", "|" + "---|" * len(RESULTS_HEADER)]
    lines += ["| " + " | ".join(row) + " |" for row in results_rows(summary)]
    return "\n".join(lines)


def localisation_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per round: where the negative advantage falls against chance, mean advantage by segment, and the
    share of tokens with any signal (for the UI's table artifact)."""
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
                "neg. mass in wrong step": show("neg_mass_in_wrong_step"),
                "chance (its token share)": show("wrong_step_token_share"),
                "mean A prefix": show("mean_adv_prefix"),
                "mean A wrong step": show("mean_adv_wrong_step"),
                "mean A after": show("mean_adv_after"),
                "active tokens": f"{loc['activity']['active_tokens']:.3f}",
            }
        )
    return rows
