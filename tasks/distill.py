"""Training of one round: self-distillation (or GRPO for the binary condition) on the round's rollouts and
contexts; saves the adapter (or weights) and the teacher state, per-sample and per-token records; reports
the round to the configured trackers and its health as Prefect artifacts (also when distill.health.stop
ends it) and, with distill.push_to_hub, pushes it to the Hugging Face Hub.

No retries: a crashed round resumes from its last intra-round checkpoint (distill.save_steps) on rerun.
"""

from functools import partial
from pathlib import Path

from sdfb import distill
from sdfb.config import RunConfig, objective
from sdfb.distill.checkpoint import discard_partial, is_main_process
from sdfb.generation import sleep_engines
from sdfb.health import HealthStop
from sdfb.resume import stage_paths
from sdfb.stages import ConfigView
from sdfb.store import read_table, write_errors
from sdfb.tracking import TrackerRun, log_metrics, round_metrics, tracker_run
from tasks._health import publish_health
from tasks._hub import hub_target, push_round
from tasks._progress import stage_progress
from tasks._stage import Inputs, compute_stage, stage_task, task_logger


def run_round(
    cfg: RunConfig,
    run_dir: str,
    round_index: int,
    rollouts: str,
    contexts: str,
    grades: str,
    teacher: str,
    previous: str | None,
) -> str:
    """The stage itself, also run by `sdfb train-round` under `accelerate launch` (only rank 0
    writes files). With distill.push_to_hub, the finished round is pushed (also one finished
    earlier: an unchanged push is a no-op)."""
    inputs = {
        "rollouts": rollouts,
        "contexts": contexts,
        "grades": grades,
        "teacher": teacher,
        "previous": previous,
    }
    checkpoint = stage_paths("distill", run_dir, round=round_index)["checkpoint"]
    hub = hub_target(cfg) if is_main_process() else None  # before training: a missing token costs no training
    tracking = tracker_run(cfg, run_dir, round_index)
    compute = partial(_distill, cfg=cfg, checkpoint=checkpoint, tracking=tracking)
    run = compute_stage("distill", cfg, run_dir, inputs, compute, round=round_index)
    if run.computed and is_main_process():
        with write_errors(run_dir, "distill"):
            discard_partial(checkpoint)
            metrics = run.extra["metrics"]
            task_logger().info("distill: %s", metrics)
            log_metrics(tracking, round_metrics(metrics), round_index)
            publish_health(cfg, round_index, metrics)
    if hub is not None:  # after the manifest: a failed push leaves the round finished, and a rerun pushes it
        push_round(cfg, hub, round_index, checkpoint)
    return str(checkpoint)


def _distill(
    c: ConfigView, inputs: Inputs, round: int, cfg: RunConfig, checkpoint: Path, tracking: TrackerRun | None
):
    """`distill.run_round` on the stage's inputs, saving the weights to `checkpoint`; a
    round the health stop rule ended still publishes its health. Other ranks of a
    multi-process launch leave the writing to rank 0."""
    sleep_engines()  # GPU: the rollout engine gives its memory back while training runs
    tables = {name: read_table(inputs[name]) for name in ("rollouts", "contexts", "grades")}
    teacher_scores = read_table(inputs["teacher"])
    previous = inputs["previous"]
    try:
        result = distill.run_round(
            c.model,
            c.distill,
            objective(c.context, c.distill),
            c.seed,
            round,
            **tables,
            previous=previous and Path(previous),
            checkpoint=checkpoint,
            teacher_scores=teacher_scores if len(teacher_scores) else None,
            tracking=tracking,
            progress=stage_progress(f"round {round} distillation: optimizer steps"),
        )
    except HealthStop as stop:
        found = {"history": stop.history, "health_alarms": [stop.alarm.record()]}
        publish_health(cfg, round, found, stopped=True)
        raise
    if not is_main_process():
        return None
    return {"distill": result.per_sample, "tokens": result.tokens}, {"metrics": result.metrics}


# The task is the stage function itself; `sdfb train-round` calls `run_round` directly.
distill_round = stage_task("distill", "distill (round {round_index})")(run_round)
