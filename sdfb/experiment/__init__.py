"""Experiments: feedback conditions (arms) side by side on shared first-round work, over
one or more seeds, with paired statistics and the per-token localisation of the signal,
gathered into tables a report is drawn from."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd

from sdfb.atomic import atomic_path, write_text
from sdfb.bootstrap import BOOTSTRAP_RESAMPLES
from sdfb.experiment.analysis import (
    choose_checkpoints,
    comparison_rows,
    per_problem_table,
    score_rows,
    split_of,
)
from sdfb.experiment.config import (
    Arm,
    ExperimentConfig,
    ExperimentError,
    arm_config,
    by_arm,
    by_run,
    load_experiment,
    resolve_arms,
)
from sdfb.experiment.eval_sets import set_comparison_rows, set_score_rows, set_table
from sdfb.experiment.plan import FIRST_ROUND, Plan, fingerprint, plan_experiment
from sdfb.experiment.records import (
    as_records,
    critique_rows,
    localisation_pairs,
    localisation_rows,
    token_samples,
    training_rows,
)
from sdfb.shared import shared_uses

__all__ = [
    "FIRST_ROUND",
    "Arm",
    "ExperimentConfig",
    "ExperimentError",
    "Plan",
    "analyse",
    "arm_config",
    "arm_dir",
    "by_arm",
    "by_run",
    "fingerprint",
    "load_experiment",
    "plan_experiment",
    "resolve_arms",
    "shared_dir",
    "split_of",
    "write_analysis",
]


def arm_dir(root: Path | str, arm: str, seed: int) -> Path:
    return Path(root) / f"seed_{seed}" / arm


def shared_dir(root: Path | str, seed: int) -> Path:
    return Path(root) / f"seed_{seed}" / "shared"


def analyse(
    name: str,
    runs: dict[tuple[str, int], Path],
    outcomes: dict[str, dict],
    reference: str | None,
    k: int,
    validation_share: float,
    tokenizer,
    n_resamples: int = BOOTSTRAP_RESAMPLES,
    shared: dict | None = None,
) -> tuple[dict[str, pd.DataFrame], dict]:
    """Every table of the report (see `sdfb.report`) and the summary, from the finished runs in `runs`
    (arm, seed) and each arm's outcome ({"status": an `ArmStatus`, "error": ...})."""
    table = per_problem_table(runs, k, validation_share)
    chosen = choose_checkpoints(table)
    kw = {"n_resamples": n_resamples}
    attempts, tokens = token_samples(runs, tokenizer)
    sets = set_table(runs, k)
    tables = {
        "per_problem": table,
        "scores": score_rows(table, chosen, **kw),
        "comparisons": comparison_rows(table, chosen, reference, **kw) if reference else pd.DataFrame(),
        "localisation": localisation_rows(runs, n_resamples),
        "localisation_paired": localisation_pairs(runs, n_resamples),
        "training": training_rows(runs),
        "critiques": critique_rows(runs),
        "attempts_sample": attempts,
        "tokens_sample": tokens,
        "eval_sets": sets,
        "eval_set_scores": set_score_rows(sets, chosen, **kw),
        "eval_set_comparisons": set_comparison_rows(sets, chosen, reference, **kw)
        if reference
        else pd.DataFrame(),
    }
    problems = table.drop_duplicates("problem_id")["split"].value_counts()
    arms = {
        arm: {**outcome, **chosen.get(arm, {"chosen_checkpoint": None, "validation": {}})}
        for arm, outcome in outcomes.items()
    }
    summary = {
        "name": name,
        "kind": "experiment" if reference else "run",
        "reference": reference,
        "arms": arms,
        "split": {
            "validation_problems": int(problems.get("validation", 0)),
            "test_problems": int(problems.get("test", 0)),
        },
        "shared": shared or {"stage_outputs": 0, "uses": 0, "executions_saved": 0},
        "localisation_paired": as_records(tables["localisation_paired"]),
        "eval_sets": sorted(sets["eval_set"].unique()),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    return tables, summary


def shared_counts(root: Path, seeds: tuple[int, ...], arms: list[str]) -> dict:
    """How many first-round outputs were computed once and reused by other arms of the same seed."""
    outputs = uses = 0
    for seed in seeds:
        found = shared_uses([arm_dir(root, a, seed) for a in arms], shared_dir(root, seed))
        outputs += len(found)
        uses += sum(found.values())
    return {"stage_outputs": outputs, "uses": uses, "executions_saved": uses - outputs}


def write_analysis(folder: Path, tables: dict[str, pd.DataFrame], summary: dict) -> Path:
    """The analysis tables as Parquet and the summary as JSON in `folder`, each file written whole or not at
    all; returns the summary's path."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        with atomic_path(folder / f"{name}.parquet") as tmp:
            frame.to_parquet(tmp, index=False)
    return write_text(folder / "summary.json", json.dumps(summary, indent=2, default=str))
