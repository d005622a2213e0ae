"""An experiment's results with the statistics a reviewer asks for: per-problem tables, each
arm's checkpoint chosen on held-out validation problems, scores with intervals and paired
differences on the test problems only."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd

from sdfb import stats
from sdfb.config import RunConfig, build_config
from sdfb.stages import BASE, scored_checkpoints
from sdfb.store import verified_manifest

_SCORES = ".scores.parquet"


def split_of(problem_id: str, validation_share: float) -> str:
    """'validation' or 'test', fixed by the problem's id alone, so every arm and seed splits alike."""
    position = int(hashlib.sha256(f"split:{problem_id}".encode()).hexdigest()[:8], 16) / 2**32
    return "validation" if position < validation_share else "test"


def run_config(run_dir: Path) -> RunConfig:
    """The config a finished run folder was last run with, from its summary (written last by the pipeline)."""
    path = Path(run_dir) / "summary.json"
    if not path.is_file():
        raise ValueError(f"{run_dir} has no summary.json: the run has not finished; run it to the end first")
    return build_config(json.loads(path.read_text())["config"])


def checkpoints(run_dir: Path) -> list[str]:
    """The checkpoints the run's current config scores, base first, then rounds in order. Never a glob of
    the folder: scores left by an earlier config with more rounds are not candidates. Raises ValueError
    when one of them has no finished scoring (its manifest)."""
    cfg = run_config(run_dir)
    names = scored_checkpoints(cfg.rounds, cfg.eval.every)
    for name in names:
        if verified_manifest(Path(run_dir) / "eval" / f"{name}{_SCORES}") is None:
            raise ValueError(
                f"{run_dir}: checkpoint {name} has no finished scoring; rerun the run to finish it"
            )
    return names


def per_problem_table(runs: dict[tuple[str, int], Path], k: int, validation_share: float) -> pd.DataFrame:
    """arm, seed, checkpoint, problem_id, split and the per-problem metrics of every finished run."""
    frames = []
    for (arm, seed), run_dir in runs.items():
        for checkpoint in checkpoints(run_dir):
            samples = pd.read_parquet(run_dir / "eval" / f"{checkpoint}.parquet")
            table = stats.per_problem(samples, k)
            frames.append(table.assign(arm=arm, seed=seed, checkpoint=checkpoint))
    if not frames:
        return pd.DataFrame(columns=["arm", "seed", "checkpoint", "problem_id", "split", *stats.METRICS])
    table = pd.concat(frames, ignore_index=True)
    split = table["problem_id"].map(lambda pid: split_of(pid, validation_share))
    return table.assign(split=split)[
        ["arm", "seed", "checkpoint", "problem_id", "split", "n_samples", *stats.METRICS]
    ]


def choose_checkpoints(table: pd.DataFrame) -> dict[str, dict]:
    """Per arm: the checkpoint with the best mean Avg@k on the validation problems (over
    seeds; ties go to the earlier checkpoint, the one trained less) and every checkpoint's
    validation score. Test problems never count."""
    chosen = {}
    validation = table[table["split"] == "validation"]
    for arm, rows in validation.groupby("arm", sort=False):
        means = rows.groupby("checkpoint", sort=False)["avg"].mean()
        order = sorted(means.index, key=lambda n: (n != BASE, n))
        best = max(order, key=lambda n: (means[n], -order.index(n)))
        chosen[arm] = {"chosen_checkpoint": best, "validation": {n: float(means[n]) for n in order}}
    return chosen


def score_rows(table: pd.DataFrame, chosen: dict[str, dict], **kw) -> pd.DataFrame:
    """Scores with 95% intervals per arm, checkpoint and metric, on the test problems."""
    rows = []
    test = table[table["split"] == "test"]
    for (arm, checkpoint), group in test.groupby(["arm", "checkpoint"], sort=False):
        for metric in stats.METRICS:
            found = stats.metric_intervals(group, metric, **kw)
            pick = chosen.get(arm, {}).get("chosen_checkpoint") == checkpoint
            rows.append({"arm": arm, "checkpoint": checkpoint, **found, "chosen": pick})
    columns = ["arm", "checkpoint", "metric", "estimate", "low", "high", "n_problems", "n_seeds", "chosen"]
    return pd.DataFrame(rows, columns=columns)


def _at(table: pd.DataFrame, arm: str, checkpoint: str) -> pd.DataFrame:
    return table[(table["arm"] == arm) & (table["checkpoint"] == checkpoint) & (table["split"] == "test")]


def comparison_rows(table: pd.DataFrame, chosen: dict[str, dict], reference: str, **kw) -> pd.DataFrame:
    """Each arm against the reference on the test problems, paired by problem and seed: at each arm's chosen
    checkpoint, and at its final one."""
    columns = ["arm", "reference", "metric", "at", *stats.DIFFERENCE_COLUMNS]
    if reference not in chosen:
        return pd.DataFrame(columns=columns)
    finals = {
        arm: max(rows["checkpoint"], key=lambda n: (n != BASE, n)) for arm, rows in table.groupby("arm")
    }
    rows = []
    for at, pick in (("chosen", lambda a: chosen[a]["chosen_checkpoint"]), ("final", finals.get)):
        tables = {arm: _at(table, arm, pick(arm)) for arm in chosen}
        compared = stats.compare_arms(tables, reference, **kw)
        rows.append(compared.assign(at=at))
    return pd.concat(rows, ignore_index=True)[columns]
