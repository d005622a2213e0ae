"""Experiment trackers: the names that group a run's rounds and conditions, the settings and
environment the Trainer's tracker integrations read while a round trains, and metrics (eval scores,
round summaries) logged to the same tracker runs afterwards. Each tracker is imported only when it is
used; none is ever imported by default.

Layout: one tracker run per round, `<name>-<condition>-seed<seed>-round<r>` (round 0: the base model's
scores), in the project `distill.tracker_project` (default: the run's name), grouped by the run's name.
TensorBoard files go under `<run_dir>/trackers/tensorboard/<tracker run>/`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sdfb.config import RunConfig

log = logging.getLogger(__name__)

TRACKERS_DIR = "trackers"


@dataclass(frozen=True)
class TrackerRun:
    """One round's run in every configured tracker."""

    report_to: tuple[str, ...]
    project: str  # wandb and trackio project, mlflow experiment
    group: str  # the run's name: groups its rounds (wandb group, mlflow tag)
    name: str  # the tracker run's name
    folder: Path  # <run_dir>/trackers

    @property
    def tensorboard_dir(self) -> Path:
        return self.folder / "tensorboard" / self.name

    @property
    def run_id(self) -> str:
        """wandb's run id: the same for the round's training and its scores, new for a new run folder."""
        return hashlib.sha256(f"{self.folder.resolve()}|{self.name}".encode()).hexdigest()[:16]


def run_name(name: str, condition: str, seed: int, round_index: int) -> str:
    return f"{name}-{condition}-seed{seed}-round{round_index}"


def checkpoint_round(checkpoint: str) -> int:
    """The round a checkpoint name stands for: 0 for `base`, r for `round_000r`."""
    if checkpoint == "base":
        return 0
    prefix, _, number = checkpoint.partition("_")
    if prefix != "round" or not number.isdigit():
        raise ValueError(f"not a checkpoint name: {checkpoint!r} (expected 'base' or 'round_NNNN')")
    return int(number)


def tracker_run(cfg: RunConfig, run_dir: Path | str, round_index: int) -> TrackerRun | None:
    """Round `round_index`'s tracker run under `cfg`, or None when the config names no tracker."""
    if not cfg.distill.report_to:
        return None
    return TrackerRun(
        report_to=cfg.distill.report_to,
        project=cfg.distill.tracker_project or cfg.name,
        group=cfg.name,
        name=run_name(cfg.name, cfg.context.condition, cfg.seed, round_index),
        folder=Path(run_dir) / TRACKERS_DIR,
    )


def training_arguments(run: TrackerRun | None) -> dict[str, Any]:
    """The TrainingArguments fields that point the Trainer's integrations at `run` (none: report to nothing).
    trackio stays local (no Space is made after training) unless TRACKIO_SPACE_ID names one."""
    if run is None:
        return {"report_to": []}
    return {
        "report_to": list(run.report_to),
        "run_name": run.name,
        "project": run.project,
        "trackio_static_space_id": False,
    }


def variables(run: TrackerRun) -> dict[str, str]:
    """The environment variables the integrations read their project, group and folder from (wandb reads
    its own once per process, so `environment` starts its run instead)."""
    env = {}
    if "tensorboard" in run.report_to:
        env["TENSORBOARD_LOGGING_DIR"] = str(run.tensorboard_dir)
    if "mlflow" in run.report_to:
        env |= {"MLFLOW_EXPERIMENT_NAME": run.project, "MLFLOW_TAGS": json.dumps({"sdfb.group": run.group})}
    if "comet_ml" in run.report_to:
        env["COMET_PROJECT_NAME"] = run.project
    if "clearml" in run.report_to:
        env |= {"CLEARML_PROJECT": run.project, "CLEARML_TASK": run.name}
    if "swanlab" in run.report_to:
        env["SWANLAB_PROJECT"] = run.project
    return env


# set by a tracker itself while it runs (mlflow.set_experiment), and put back with the variables sdfb sets
_SET_BY_TRACKERS = ("MLFLOW_EXPERIMENT_ID",)


@contextmanager
def _restored(env: dict[str, str]) -> Iterator[None]:
    """Set `env` for the block's duration, then put back these and `_SET_BY_TRACKERS` as they were."""
    saved = {key: os.environ.get(key) for key in (*env, *_SET_BY_TRACKERS)}
    os.environ.update(env)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextmanager
def environment(run: TrackerRun | None) -> Iterator[None]:
    """Set `variables(run)` while the round trains (the integrations read some when the
    Trainer is built), and put the environment back afterwards. wandb: the round's run is
    started here (the Trainer's integration logs to a run already started) and finished
    afterwards, which the integration leaves undone."""
    if run is None:
        yield
        return
    with _restored(variables(run)):
        live = _wandb_run(run) if "wandb" in run.report_to and os.environ.get("RANK", "0") == "0" else None
        try:
            yield
        finally:
            if live is not None:
                live.finish()


def score_metrics(scores: dict[str, Any], eval_set: str | None = None) -> dict[str, float]:
    """A scores row (schemas.SCORES) as tracker metrics: `eval/avg_at_<k>`,
    `eval/pass_at_<k>`, `eval/maj_at_<k>`, `eval/format_rate` ('@' is not allowed in
    TensorBoard or MLflow names); `eval/<set>/...` for an eval set."""
    k = int(scores["k"])
    names = {"avg_at_k": f"avg_at_{k}", "pass_at_k": f"pass_at_{k}", "maj_at_k": f"maj_at_{k}"}
    names["format_rate"] = "format_rate"
    prefix = f"eval/{eval_set}/" if eval_set else "eval/"
    return {f"{prefix}{new}": float(scores[old]) for old, new in names.items()}


def round_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """A round's summary metrics (a distill manifest's `metrics`) that are numbers, as `round/<name>`."""
    return {
        f"round/{key}": float(value)
        for key, value in metrics.items()
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    }


def log_metrics(run: TrackerRun | None, metrics: dict[str, float], step: int) -> list[str]:
    """Log `metrics` at `step` (the round) to `run` in each configured tracker sdfb can write to after
    training; returns those it wrote to. Others (the rest of transformers' integrations) get a warning."""
    if run is None:
        return []
    written = []
    for tracker in run.report_to:
        writer = _WRITERS.get(tracker)
        if writer is None:
            log.warning(
                "tracker %s gets the training curves but not %s: sdfb logs those to %s only",
                tracker,
                ", ".join(metrics),
                ", ".join(_WRITERS),
            )
            continue
        with _restored({}):
            writer(run, metrics, step)
        written.append(tracker)
    return written


def _tensorboard(run: TrackerRun, metrics: dict[str, float], step: int) -> None:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # transformers' integration falls back the same way
        from tensorboardX import SummaryWriter

    writer = SummaryWriter(log_dir=str(run.tensorboard_dir))
    try:
        for tag, value in metrics.items():
            writer.add_scalar(tag, value, step)
    finally:
        writer.close()


def _wandb_run(run: TrackerRun):
    """The round's wandb run, started or (a resumed round, its scores) continued: its id is `run.run_id`."""
    import wandb

    return wandb.init(project=run.project, id=run.run_id, name=run.name, group=run.group, resume="allow")


def _wandb(run: TrackerRun, metrics: dict[str, float], step: int) -> None:
    # the training run's own steps are past the round's number and wandb drops steps that go back, so the
    # round is logged as a value of its own
    with _wandb_run(run) as live:
        live.log({**metrics, "round": step})


def _trackio(run: TrackerRun, metrics: dict[str, float], step: int) -> None:
    import trackio

    trackio.init(project=run.project, name=run.name, resume="allow")  # trackio knows a run by its name
    try:
        trackio.log({**metrics, "round": step})
    finally:
        trackio.finish()


def _mlflow(run: TrackerRun, metrics: dict[str, float], step: int) -> None:
    import mlflow

    mlflow.set_experiment(run.project)
    found = mlflow.search_runs(
        filter_string=f"tags.`mlflow.runName` = '{run.name}'", max_results=1, output_format="list"
    )
    with mlflow.start_run(run_id=found[0].info.run_id) if found else mlflow.start_run(run_name=run.name):
        mlflow.set_tag("sdfb.group", run.group)
        mlflow.log_metrics(metrics, step=step)


_WRITERS = {"tensorboard": _tensorboard, "wandb": _wandb, "trackio": _trackio, "mlflow": _mlflow}
