"""An experiment's scores on its extra eval sets (`eval.sets`), each reported on its own: at
every scored checkpoint, with intervals over problems and seeds, and each arm against the
reference at the checkpoint chosen on the eval split's validation problems (a set never chooses
a checkpoint: all its problems are test problems)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from sdfb import stats
from sdfb.eval_sets import set_dir
from sdfb.experiment.analysis import checkpoints, run_config
from sdfb.store import verified_manifest

COLUMNS = ["eval_set", "arm", "seed", "checkpoint", "problem_id", "n_samples", *stats.METRICS]


def set_table(runs: dict[tuple[str, int], Path], k: int) -> pd.DataFrame:
    """eval_set, arm, seed, checkpoint, problem_id and the per-problem metrics on every run's eval sets."""
    frames = []
    for (arm, seed), run_dir in runs.items():
        for eval_set in run_config(run_dir).eval.sets:
            folder = set_dir(run_dir, eval_set.name) / "eval"
            for checkpoint in checkpoints(run_dir):
                path = folder / f"{checkpoint}.parquet"
                if verified_manifest(path) is None:
                    raise ValueError(
                        f"{run_dir}: eval set {eval_set.name} has no finished scoring of {checkpoint}"
                    )
                table = stats.per_problem(pd.read_parquet(path), k)
                frames.append(table.assign(eval_set=eval_set.name, arm=arm, seed=seed, checkpoint=checkpoint))
    if not frames:
        return pd.DataFrame(columns=COLUMNS)
    return pd.concat(frames, ignore_index=True)[COLUMNS]


def set_score_rows(table: pd.DataFrame, chosen: dict[str, dict], **kw) -> pd.DataFrame:
    """Scores with 95% intervals per eval set, arm, checkpoint and metric;
    `chosen` marks each arm's checkpoint."""
    rows = []
    for (eval_set, arm, checkpoint), group in table.groupby(["eval_set", "arm", "checkpoint"], sort=False):
        pick = chosen.get(arm, {}).get("chosen_checkpoint") == checkpoint
        for metric in stats.METRICS:
            found = stats.metric_intervals(group, metric, **kw)
            rows.append({"eval_set": eval_set, "arm": arm, "checkpoint": checkpoint, **found, "chosen": pick})
    columns = ["eval_set", "arm", "checkpoint", "metric", "estimate", "low", "high", "n_problems", "n_seeds"]
    return pd.DataFrame(rows, columns=[*columns, "chosen"])


def set_comparison_rows(table: pd.DataFrame, chosen: dict[str, dict], reference: str, **kw) -> pd.DataFrame:
    """Each arm against the reference on each eval set, paired by problem and seed, at each arm's chosen
    checkpoint; Holm-adjusted over the arms within a set and metric."""
    frames = []
    for eval_set, rows in table.groupby("eval_set", sort=False):
        at = {
            arm: rows[(rows["arm"] == arm) & (rows["checkpoint"] == pick["chosen_checkpoint"])]
            for arm, pick in chosen.items()
        }
        if reference in at:
            frames.append(stats.compare_arms(at, reference, **kw).assign(eval_set=eval_set))
    if not frames:
        return pd.DataFrame(columns=["eval_set", "arm", "reference", "metric", *stats.DIFFERENCE_COLUMNS])
    out = pd.concat(frames, ignore_index=True)
    return out[["eval_set", *[c for c in out.columns if c != "eval_set"]]]
