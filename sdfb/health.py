"""A training run's health: the per-step metrics judged against `distill.health`'s thresholds,
the per-round rates from the grades, the warnings and the stop rule. Pure Python over numbers
and tables; the torch math of each per-token metric is in `sdfb.losses` (token_entropy,
kl_to_start, active_tokens). See docs/health.md.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field

import pandas as pd

from sdfb.config import HealthConfig
from sdfb.names import GradeStatus

log = logging.getLogger(__name__)

# metric -> (the distill.health field holding its threshold, whether a healthy value stays above or below it)
STEP_RULES = {
    "entropy": ("min_entropy", "above"),
    "kl_to_start": ("max_kl_to_start", "below"),
    "active_share": ("min_active_share", "above"),
}
ROUND_RULES = {"format_rate": ("min_format_rate", "above"), "answer_rate": ("min_answer_rate", "above")}
STEP_METRICS = ("entropy", "kl_to_start", "completion_length", "active_share")


@dataclass(frozen=True)
class Alarm:
    """One metric past its threshold: at optimizer step `step` of round
    `round`, or (step None) for the round."""

    metric: str
    value: float
    threshold: float
    key: str  # the distill.health field
    round: int
    step: int | None = None

    def describe(self) -> str:
        where = f"round {self.round}" + (f" step {self.step}" if self.step is not None else "")
        side = "below" if self.key.startswith("min_") else "above"
        return (
            f"{where}: {self.metric} {self.value:.4g} is {side} distill.health.{self.key}={self.threshold:g}"
        )

    def record(self) -> dict:
        return asdict(self)


class HealthStop(RuntimeError):
    """Training stopped by `distill.health.stop`; `history` holds the
    round's training curve up to the stop."""

    def __init__(self, alarm: Alarm, history: list[dict] | None = None):
        super().__init__(
            f"distill.health stopped training at {alarm.describe()}. Finished rounds are kept; this round "
            "wrote no outputs. Lower distill.learning_rate (or move the threshold), or set "
            "distill.health.stop=false to train on with warnings only"
        )
        self.alarm = alarm
        self.history = history or []


def alarms(
    values: dict[str, float], rules: dict, cfg: HealthConfig, round_index: int, step=None
) -> list[Alarm]:
    """The metrics in `values` past their thresholds under `rules`; a NaN value (nothing measured) or a None
    threshold (not judged) never raises one."""
    found = []
    for metric, (key, healthy) in rules.items():
        value = values.get(metric, math.nan)
        threshold = getattr(cfg, key)
        if threshold is None or not math.isfinite(value):
            continue
        if (value < threshold) if healthy == "above" else (value > threshold):
            found.append(Alarm(metric, float(value), float(threshold), key, round_index, step))
    return found


def step_means(micro_batches: list[dict], step: int, accumulation: int) -> dict[str, float]:
    """The mean of each step metric over optimizer step `step`'s micro-batches (NaN where there are none)."""
    part = micro_batches[(step - 1) * accumulation : step * accumulation]
    return {m: _mean([b[m] for b in part if m in b]) for m in STEP_METRICS}


def _mean(values: list[float]) -> float:
    return float(sum(values) / len(values)) if values else math.nan


@dataclass
class HealthWatch:
    """Judges each optimizer step of one round: warns the first time each metric crosses its threshold,
    keeps every crossing, and with `cfg.stop` remembers the first one as the reason to stop."""

    cfg: HealthConfig
    round_index: int
    objective: str
    found: list[Alarm] = field(default_factory=list)
    stopped: Alarm | None = None

    def step(self, values: dict[str, float], step: int) -> bool:
        """Judge step `step`'s metrics; True when training should stop now."""
        rules = {
            m: r for m, r in STEP_RULES.items() if not (m == "active_share" and self.objective == "control")
        }
        new = alarms(values, rules, self.cfg, self.round_index, step)
        warned = {a.metric for a in self.found}
        for alarm in new:
            if alarm.metric not in warned:
                log.warning(
                    "distill.health: %s (further crossings are recorded, not logged)", alarm.describe()
                )
        self.found += new
        if self.cfg.stop and new and self.stopped is None:
            self.stopped = new[0]
        return self.stopped is not None


def round_rates(grades: pd.DataFrame, rollouts: pd.DataFrame) -> dict[str, float]:
    """The round's samples (from its starting policy): the share in the step format, the share with an answer
    line, their mean completion length in tokens and the share cut at the token limit (NaN where a column is
    missing: hand-made tables)."""
    rates = {"format_rate": math.nan, "answer_rate": math.nan, "mean_completion_length": math.nan}
    if len(grades) and "format_ok" in grades:
        rates["format_rate"] = float(grades["format_ok"].astype(bool).mean())
    if len(grades) and "status" in grades:
        rates["answer_rate"] = float((grades["status"] != GradeStatus.NO_ANSWER).mean())
    if len(rollouts) and "completion_ids" in rollouts:
        rates["mean_completion_length"] = float(rollouts["completion_ids"].map(len).mean())
    rates["truncated_share"] = (
        float((rollouts["finish_reason"] == "length").mean())
        if len(rollouts) and "finish_reason" in rollouts
        else math.nan
    )
    return rates


def check_round(
    grades: pd.DataFrame, rollouts: pd.DataFrame, cfg: HealthConfig, round_index: int, trained: bool
) -> tuple[dict[str, float], list[Alarm]]:
    """The round's rates and the alarms they raise, each warned. With `cfg.stop`, raises
    HealthStop on the first one when the rollouts come from a trained checkpoint (`trained`);
    the base model's rates are only warned."""
    rates = round_rates(grades, rollouts)
    found = alarms(rates, ROUND_RULES, cfg, round_index)
    for alarm in found:
        log.warning("distill.health: %s (the round's rollouts, from its starting policy)", alarm.describe())
    if cfg.stop and trained and found:
        raise HealthStop(found[0])
    return rates, found


def step_rows(history: list[dict]) -> list[dict]:
    """The training curve's health columns, one row per optimizer step, rounded for a table (NaN: None)."""
    columns = ("step", *STEP_METRICS)
    return [{c: _rounded(h.get(c, math.nan)) for c in columns} for h in history]


def _rounded(value: float) -> float | int | None:
    if isinstance(value, int):
        return value
    return round(float(value), 4) if math.isfinite(value) else None


def summary_markdown(round_index: int, rates: dict[str, float], found: list[dict], stopped: bool) -> str:
    """A round's health in a few lines: the per-round rates, then every crossing (`Alarm.record()`s)."""
    state = "stopped by distill.health.stop" if stopped else ("warnings" if found else "healthy")
    lines = [f"### Round {round_index} health: {state}", ""]
    lines += [f"- {name}: {_rounded(value)}" for name, value in rates.items()]
    if found:
        lines += ["", "| where | metric | value | threshold |", "|---|---|---|---|"]
        for a in found:
            where = f"step {a['step']}" if a["step"] is not None else "round"
            lines.append(f"| {where} | {a['metric']} | {a['value']:.4g} | {a['key']}={a['threshold']:g} |")
    return "\n".join(lines)
