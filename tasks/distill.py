"""Training of one round: self-distillation (or GRPO for the binary condition) on the round's rollouts and
contexts; saves the adapter (or weights) and the teacher state, per-sample and per-token records; reports the
round to the configured trackers and its health as Prefect artifacts (also when distill.health.stop ends it) and,
with distill.push_to_hub, pushes it to the Hugging Face Hub.

No retries: a crashed round resumes from its last intra-round checkpoint (distill.save_steps) on rerun.
"""

import time
from pathlib import Path

from sdfb import distill
from sdfb.config import RunConfig, objective
from sdfb.distill.checkpoint import discard_partial, is_main_process
from sdfb.generation import sleep_engines
from sdfb.health import HealthStop
from sdfb.stages import config_view, stage, stage_key
from sdfb.store import finish_folder, read_table, write_errors, write_table
from sdfb.tracking import log_metrics, round_metrics, tracker_run
from tasks._health import publish_health
from tasks._hub import hub_target, push_round
from tasks._progress import stage_progress
from tasks._stage import finished, stage_paths, stage_task, task_logger


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
    """The stage itself, also run by `sdfb train-round` under `accelerate launch` (only rank 0 writes files). With
    distill.push_to_hub, the finished round is pushed (also one finished earlier: an unchanged push is a no-op)."""
    inputs = {
        "rollouts": rollouts,
        "contexts": contexts,
        "grades": grades,
        "teacher": teacher,
        "previous": previous,
    }
    paths = stage_paths("distill", run_dir, round=round_index)
    hub = hub_target(cfg) if is_main_process() else None  # before training: a missing token costs no training
    if finished("distill", cfg, run_dir, inputs, round=round_index):
        task_logger().info("distill: finished earlier, reusing %s", paths["checkpoint"])
    else:
        _train(cfg, run_dir, round_index, inputs, paths)
    if hub is not None:  # after the manifest: a failed push leaves the round finished, and a rerun pushes it
        push_round(cfg, hub, round_index, paths["checkpoint"])
    return str(paths["checkpoint"])


def _train(cfg: RunConfig, run_dir: str, round_index: int, inputs: dict, paths: dict[str, Path]) -> None:
    with write_errors(run_dir, "distill"):
        sleep_engines()  # GPU: the rollout engine gives its memory back while training runs
        started, tracking = time.perf_counter(), tracker_run(cfg, run_dir, round_index)
        result = _watched_round(cfg, round_index, inputs, paths, tracking)
        if is_main_process():  # other ranks of a multi-process launch leave the writing to rank 0
            key, schemas = stage_key(cfg, "distill", inputs, round=round_index), stage("distill").outputs
            extra = {
                "seconds": time.perf_counter() - started,
                "finished_at": time.time(),
                "metrics": result.metrics,
            }
            write_table(
                result.per_sample,
                paths["distill"],
                schemas["distill"].schema,
                key,
                {**extra, "stage": "distill"},
            )
            write_table(
                result.tokens,
                paths["tokens"],
                schemas["tokens"].schema,
                key,
                {**extra, "stage": "tokens", "seconds": 0.0},
            )
            finish_folder(paths["checkpoint"], key, {**extra, "stage": "checkpoint", "seconds": 0.0})
            discard_partial(paths["checkpoint"])
            task_logger().info("distill: %s", result.metrics)
            log_metrics(tracking, round_metrics(result.metrics), round_index)
            publish_health(cfg, round_index, result.metrics)


def _watched_round(cfg: RunConfig, round_index: int, inputs: dict, paths: dict[str, Path], tracking):
    """`distill.run_round` on the stage's inputs; a round the health stop rule ended still publishes its health."""
    c = config_view(cfg, "distill")
    tables = {name: read_table(inputs[name]) for name in ("rollouts", "contexts", "grades")}
    teacher_scores, previous = read_table(inputs["teacher"]), inputs["previous"]
    try:
        return distill.run_round(
            c.model,
            c.distill,
            objective(c.context, c.distill),
            c.seed,
            round_index,
            **tables,
            previous=previous and Path(previous),
            checkpoint=paths["checkpoint"],
            teacher_scores=teacher_scores if len(teacher_scores) else None,
            tracking=tracking,
            progress=stage_progress(f"round {round_index} distillation: optimizer steps"),
        )
    except HealthStop as stop:
        found = {"history": stop.history, "health_alarms": [stop.alarm.record()]}
        publish_health(cfg, round_index, found, stopped=True)
        raise


# The task is the stage function itself; `sdfb train-round` calls `run_round` directly.
distill_round = stage_task("distill", "distill (round {round_index})")(run_round)
