"""What a round of training records: the per-sample table, one row per trained token, the training curve
and the round's summary metrics, from what the trainer collected (`sdfb.distill.trainer.RoundStats`)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import pandas as pd

from sdfb import schemas
from sdfb.distill.examples import Example
from sdfb.health import STEP_METRICS

if TYPE_CHECKING:
    from sdfb.distill.trainer import RoundStats


def per_sample_records(examples: list[Example], stats: RoundStats) -> tuple[list[Example], pd.DataFrame]:
    """The examples trained on, in their order (a max_steps limit may leave some out), and their records
    (schemas.DISTILL)."""
    seen = [e for e in examples if e.index in stats.per_sample]
    rows = [
        {"problem_id": e.problem_id, "sample_index": e.sample_index, **stats.per_sample[e.index]}
        for e in seen
    ]
    return seen, pd.DataFrame(rows, columns=schemas.DISTILL.names)


def training_curve(log_history: list[dict], kls: list[float], accumulation: int) -> list[dict]:
    """The training curve, one entry per optimizer step: loss, grad norm and the health metrics as the Trainer
    logged them, and the mean KL(student || teacher) of the step's micro-batches."""
    steps = [h for h in log_history if "loss" in h and "step" in h]
    return [
        {
            "step": int(h["step"]),
            "loss": float(h["loss"]),
            "grad_norm": float(h.get("grad_norm", math.nan)),
            "kl": _mean(kls[(int(h["step"]) - 1) * accumulation : int(h["step"]) * accumulation]),
            **{m: float(h.get(f"health/{m}", math.nan)) for m in STEP_METRICS},
        }
        for h in steps
    ]


def _mean(values: list[float]) -> float:
    return float(sum(values) / len(values)) if values else math.nan


def metrics(per_sample: pd.DataFrame, stats: RoundStats, grad_norms: list[float]) -> dict:
    n_tokens = int(per_sample["n_tokens"].sum())
    weighted = lambda col: float((per_sample[col] * per_sample["n_tokens"]).sum() / max(n_tokens, 1))  # noqa: E731
    return {
        "tokens": n_tokens,
        "loss": _mean(stats.losses),
        "mean_kl": _mean(stats.kls),
        "mean_advantage": weighted("mean_advantage"),
        "frac_negative_advantage": weighted("frac_negative"),
        "grad_norm": _mean(grad_norms),
    }


def token_records(examples: list[Example], stats: RoundStats) -> pd.DataFrame:
    """One row per trained token: its position, id, student and teacher log-prob and advantage."""
    frames = []
    for e in examples:
        rec = stats.tokens[e.index]
        n = len(rec["token_id"])
        frames.append(
            pd.DataFrame(
                {"problem_id": e.problem_id, "sample_index": e.sample_index, "position": range(n), **rec}
            )
        )
    columns = [c for c in schemas.TOKENS.names if c not in ("step_index", "segment")]  # added by localisation
    return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)
