"""The training-side records of an experiment's runs, gathered for its report: localisation per arm and round,
training curves, critique cases and statuses, and a sample of attempts with each token's advantage."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from sdfb import localisation, stats
from sdfb.stages import output_path
from sdfb.store import manifest_path

Runs = dict[tuple[str, int], Path]


def _rounds(run_dir: Path) -> list[int]:
    return sorted(int(p.parent.name.removeprefix("round_")) for p in run_dir.glob("round_*/tokens.parquet"))


def localisation_rows(runs: Runs, n_resamples: int = 2000) -> pd.DataFrame:
    """arm, round, measure, mean, low, high, n: attempts pooled over seeds; the active shares of samples and tokens
    are counted over all of them."""
    pooled: dict[tuple[str, int], list[pd.DataFrame]] = {}
    for (arm, seed), run_dir in runs.items():
        for r in _rounds(run_dir):
            tokens = pd.read_parquet(output_path(run_dir, "distill", "tokens", round=r))
            pooled.setdefault((arm, r), []).append(
                tokens.assign(problem_id=tokens["problem_id"] + f"@{seed}")
            )
    rows = []
    for (arm, r), frames in pooled.items():
        tokens = pd.concat(frames, ignore_index=True)
        attempts = localisation.per_attempt(tokens)
        for measure in localisation.MEASURES:
            found = stats.mean_interval(attempts[measure].to_numpy(), n_resamples=n_resamples)
            rows.append({"arm": arm, "round": r, "measure": measure, **found})
        by_attempt = [g["advantage"].to_numpy() for _, g in tokens.groupby(["problem_id", "sample_index"])]
        activity = localisation.signal_activity(by_attempt)
        for measure, n in (("active_samples", "n_attempts"), ("active_tokens", "n_tokens")):
            value = activity[measure]
            rows.append({"arm": arm, "round": r, "measure": measure, "mean": value, "low": value, "high": value,
                         "n": activity[n]})  # fmt: skip
    return pd.DataFrame(rows, columns=["arm", "round", "measure", "mean", "low", "high", "n"])


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
        for path in sorted(run_dir.glob("round_*/critiques.parquet")):
            table = pd.read_parquet(path, columns=["case", "status"])
            counts = table.value_counts().rename("count").reset_index()
            frames.append(
                counts.assign(arm=arm, seed=seed, round=int(path.parent.name.removeprefix("round_")))
            )
    columns = ["arm", "seed", "round", "case", "status", "count"]
    return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)


def token_samples(runs: Runs, tokenizer, per_arm: int = 3) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A few first-round attempts per arm (first seed) with a known wrong step where there are any: the attempts
    (question, teacher context, completion, correctness) and their tokens (text, advantage, step, segment)."""
    attempts, tokens = [], []
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
    attempt_cols = ["arm", "seed", "round", "problem_id", "sample_index", "question", "context", "completion_text",
                    "correct", "first_wrong_step"]  # fmt: skip
    token_cols = ["arm", "seed", "round", "problem_id", "sample_index", "position", "token_text", "advantage",
                  "step_index", "segment"]  # fmt: skip
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
