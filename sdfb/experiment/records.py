"""The training-side records of an experiment's runs, gathered for its report: localisation per arm and round,
training curves, critique cases and statuses, and a sample of attempts with each token's advantage."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pandas as pd

from sdfb import localisation, stats
from sdfb.bootstrap import BOOTSTRAP_RESAMPLES
from sdfb.experiment.analysis import run_config
from sdfb.stages import output_path
from sdfb.store import manifest_path

Runs = dict[tuple[str, int], Path]


def _rounds(run_dir: Path, name: str = "distill", output: str = "tokens") -> list[int]:
    """The rounds of the run's current config whose `output` exists: never a glob of the folder, where an
    earlier config with more rounds may have left tables behind."""
    rounds = range(1, run_config(run_dir).rounds + 1)
    return [r for r in rounds if output_path(run_dir, name, output, round=r).is_file()]


def _pooled_tokens(runs: Runs, rounds: tuple[int, ...] | None = None) -> dict[tuple[str, int], pd.DataFrame]:
    """Each (arm, round)'s tokens tables over its seeds, with a seed column."""
    pooled: dict[tuple[str, int], list[pd.DataFrame]] = {}
    for (arm, seed), run_dir in runs.items():
        found = _rounds(run_dir)  # reads the run's config once, not once per wanted round
        for r in found if rounds is None else [r for r in rounds if r in found]:
            tokens = pd.read_parquet(output_path(run_dir, "distill", "tokens", round=r))
            pooled.setdefault((arm, r), []).append(tokens.assign(seed=seed))
    return {key: pd.concat(frames, ignore_index=True) for key, frames in pooled.items()}


LOCALISATION_COLUMNS = ["arm", "round", "measure", "mean", "low", "high", "n", "n_problems"]


def localisation_rows(runs: Runs, n_resamples: int = BOOTSTRAP_RESAMPLES) -> pd.DataFrame:
    """arm, round, measure, mean, low, high, n, n_problems: the attempts that count
    (`localisation.per_attempt`) pooled over seeds, 95% intervals resampling problems (one
    problem under several seeds is one cluster); the active shares of samples and tokens are
    counted over every attempt, with no interval."""
    rows = []
    for (arm, r), tokens in _pooled_tokens(runs).items():
        attempts = localisation.per_attempt(tokens)
        for measure, found in localisation.measure_intervals(attempts, n_resamples).items():
            rows.append(
                {"arm": arm, "round": r, "measure": measure, **found, "n_problems": found["n_clusters"]}
            )
        keys = ["seed", "problem_id", "sample_index"]
        activity = localisation.signal_activity([g["advantage"].to_numpy() for _, g in tokens.groupby(keys)])
        for measure, n in (("active_samples", "n_attempts"), ("active_tokens", "n_tokens")):
            value = activity[measure]
            rows.append(
                dict(
                    arm=arm,
                    round=r,
                    measure=measure,
                    mean=value,
                    low=value,
                    high=value,
                    n=activity[n],
                    n_problems=tokens["problem_id"].nunique(),
                )
            )
    return pd.DataFrame(rows, columns=LOCALISATION_COLUMNS)


PAIRED_COLUMNS = ["arm", "other", "round", "measure", "difference", "low", "high"]
PAIRED_COLUMNS += ["mean_arm", "mean_other", "n", "n_problems", "n_seeds"]
PAIRED_MEASURE = "share_minus_chance"


def _same_attempts(a: Path, b: Path) -> bool:
    """Whether two runs of one seed trained round 1 on the same rollouts judged by the same critiques."""
    hashes = []
    for run_dir in (a, b):
        paths = [output_path(run_dir, stage, round=1) for stage in ("rollouts", "critiques")]
        found = [manifest_path(p) for p in paths]
        hashes.append([json.loads(m.read_text()).get("content_hash") if m.is_file() else None for m in found])
    return None not in hashes[0] and hashes[0] == hashes[1]


def _shared_seeds(runs: Runs, arm: str, other: str) -> list[int]:
    return [
        seed
        for (name, seed), run_dir in runs.items()
        if name == arm and (other, seed) in runs and _same_attempts(run_dir, runs[(other, seed)])
    ]


def localisation_pairs(runs: Runs, n_resamples: int = BOOTSTRAP_RESAMPLES) -> pd.DataFrame:
    """Every pair of arms (in the order of `runs`) on the round-1 attempts both count, where they are the same
    attempts (same seed, same rollouts, same critiques): the mean of arm - other in share_minus_chance per
    attempt, with a 95% interval resampling problems, both arms' means on those attempts, n (attempts),
    n_problems and n_seeds (seeds that contribute pairs). A pair with nothing in common has n = 0."""
    attempts = {arm: localisation.per_attempt(t) for (arm, _), t in _pooled_tokens(runs, (1,)).items()}
    keys = ["seed", "problem_id", "sample_index"]
    column = PAIRED_MEASURE
    rows = []
    for arm, other in itertools.combinations(attempts, 2):
        seeds = _shared_seeds(runs, arm, other)
        mine, theirs = (
            attempts[a].loc[attempts[a]["seed"].isin(seeds), [*keys, column]] for a in (arm, other)
        )
        pairs = mine.merge(theirs, on=keys, suffixes=("_arm", "_other"))
        own = pairs[f"{column}_arm"]
        their = pairs[f"{column}_other"]
        found = stats.cluster_interval(own - their, pairs["problem_id"], n_resamples=n_resamples)
        rows.append(
            dict(
                arm=arm,
                other=other,
                round=1,
                measure=column,
                difference=found["mean"],
                low=found["low"],
                high=found["high"],
                mean_arm=own.mean(),
                mean_other=their.mean(),
                n=found["n"],
                n_problems=found["n_clusters"],
                n_seeds=pairs["seed"].nunique(),
            )
        )
    return pd.DataFrame(rows, columns=PAIRED_COLUMNS)


def as_records(table: pd.DataFrame) -> list[dict]:
    """A table as JSON-ready records: NaN becomes None (json.dumps would write NaN, which is not JSON)."""
    return table.astype(object).where(table.notna(), None).to_dict("records")


def training_rows(runs: Runs) -> pd.DataFrame:
    """arm, seed, round, step, loss, kl, grad_norm from each round's distillation manifest."""
    rows = []
    for (arm, seed), run_dir in runs.items():
        for r in _rounds(run_dir):
            manifest = manifest_path(output_path(run_dir, "distill", "checkpoint", round=r))
            metrics = json.loads(manifest.read_text()).get("metrics", {}) if manifest.is_file() else {}
            rows += [{"arm": arm, "seed": seed, "round": r, **h} for h in metrics.get("history", [])]
    return pd.DataFrame(rows, columns=["arm", "seed", "round", "step", "loss", "kl", "grad_norm"])


def critique_rows(runs: Runs) -> pd.DataFrame:
    """arm, seed, round, case, status, count."""
    frames = []
    for (arm, seed), run_dir in runs.items():
        for r in _rounds(run_dir, "critiques", "critiques"):
            path = output_path(run_dir, "critiques", "critiques", round=r)
            table = pd.read_parquet(path, columns=["case", "status"])
            counts = table.value_counts().rename("count").reset_index()
            frames.append(counts.assign(arm=arm, seed=seed, round=r))
    columns = ["arm", "seed", "round", "case", "status", "count"]
    return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)


def token_samples(runs: Runs, tokenizer, per_arm: int = 3) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A few first-round attempts per arm (first seed) with a known wrong step where there
    are any: the attempts (question, teacher context, completion, correctness) and their
    tokens (text, advantage, step, segment)."""
    attempts = []
    tokens = []
    for arm, run_dir in _first_seed(runs).items():
        table = pd.read_parquet(output_path(run_dir, "distill", "tokens", round=1))
        if table.empty:
            continue
        keys = ["problem_id", "sample_index"]
        contexts = pd.read_parquet(output_path(run_dir, "contexts", round=1))
        picked = _pick(table, contexts, per_arm)
        rollouts = pd.read_parquet(
            output_path(run_dir, "rollouts", round=1), columns=[*keys, "completion_text"]
        )
        grades = pd.read_parquet(output_path(run_dir, "grades", round=1), columns=[*keys, "correct"])
        problems = pd.read_parquet(
            output_path(run_dir, "problems", round=1), columns=["problem_id", "question"]
        )
        chosen = (
            picked.merge(contexts[[*keys, "context", "first_wrong_step"]], on=keys)
            .merge(rollouts, on=keys)
            .merge(grades, on=keys)
            .merge(problems, on="problem_id")
        )
        attempts.append(chosen.assign(arm=arm, seed=_seed_of(runs, run_dir), round=1))
        rows = table.merge(picked, on=keys)
        text = [tokenizer.decode([t], skip_special_tokens=False) for t in rows["token_id"]]
        tokens.append(rows.assign(arm=arm, seed=_seed_of(runs, run_dir), round=1, token_text=text))
    attempt_cols = [
        "arm",
        "seed",
        "round",
        "problem_id",
        "sample_index",
        "question",
        "context",
        "completion_text",
        "correct",
        "first_wrong_step",
    ]
    token_cols = [
        "arm",
        "seed",
        "round",
        "problem_id",
        "sample_index",
        "position",
        "token_text",
        "advantage",
        "step_index",
        "segment",
    ]
    return _frame(attempts, attempt_cols), _frame(tokens, token_cols)


def _pick(tokens: pd.DataFrame, contexts: pd.DataFrame, n: int) -> pd.DataFrame:
    keys = ["problem_id", "sample_index"]
    located = tokens.loc[tokens["segment"] == "wrong_step", keys].drop_duplicates()
    others = tokens[keys].drop_duplicates()
    return pd.concat([located, others]).drop_duplicates().head(n).reset_index(drop=True)


def _first_seed(runs: Runs) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for (arm, _), run_dir in sorted(runs.items(), key=lambda item: item[0][1]):
        out.setdefault(arm, run_dir)
    return out


def _seed_of(runs: Runs, run_dir: Path) -> int:
    return next(seed for (_, seed), d in runs.items() if d == run_dir)


def _frame(frames: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)
