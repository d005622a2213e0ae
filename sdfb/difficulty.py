"""The paper's difficulty filter: keep the training problems the base model solves in
fewer than `below` of its `samples` samples. Pure: counts graded samples (drawn by the
`filter` stage) into the candidates' table."""

from __future__ import annotations

import pandas as pd

from sdfb.datafiles import DataError


def solve_counts(candidates: pd.DataFrame, graded: pd.DataFrame, below: int) -> pd.DataFrame:
    """`candidates` (schemas.PROBLEMS rows) with `n_samples`, `n_correct` (from `graded`: one row per
    sample with `problem_id` and `correct`) and `kept` (solved in fewer than `below` samples). A candidate
    with no graded sample is an error: its count would read as 0 and keep it unseen."""
    counts = graded.groupby("problem_id")["correct"].agg(n_samples="count", n_correct="sum")
    missing = set(candidates["problem_id"]) - set(counts.index)
    if missing:
        raise ValueError(
            f"{len(missing)} candidate problems have no graded sample, e.g. {sorted(missing)[:3]}"
        )
    out = candidates.join(counts, on="problem_id")
    out["n_samples"] = out["n_samples"].astype("int32")
    out["n_correct"] = out["n_correct"].astype("int32")
    return out.assign(kept=out["n_correct"] < below)


def kept_problems(filtered: pd.DataFrame, below: int, samples: int) -> pd.DataFrame:
    """The problems the filter kept (schemas.PROBLEMS columns), or a DataError naming
    what to change when it kept none. Fewer than a round's batch is allowed: the rounds
    then reuse them, as they do a small pool."""
    kept = filtered[filtered["kept"]]
    if kept.empty:
        raise DataError(
            f"the difficulty filter kept none of its {len(filtered)} candidates: the base model solves each "
            f"in {below} or more of {samples} samples. Raise data.filter.below or data.filter.candidates, "
            "or use harder problems (data.filter: null turns the filter off)"
        )
    return kept.drop(columns=["n_samples", "n_correct", "kept"]).reset_index(drop=True)
