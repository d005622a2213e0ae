"""Training of one round: self-distillation (or GRPO for the binary condition) on the round's rollouts and
contexts; saves the adapter (or weights) and the teacher state, per-sample and per-token records.

No retries: a crashed round resumes from its last intra-round checkpoint (distill.save_steps) on rerun.
"""

import time
from pathlib import Path

from prefect import task
from prefect.cache_policies import NONE

from sdfb import distill
from sdfb.config import RunConfig, objective
from sdfb.distill.checkpoint import discard_partial, is_main_process
from sdfb.generation import sleep_engines
from sdfb.stages import config_view, stage, stage_key
from sdfb.store import finish_folder, read_table, write_errors, write_table
from tasks._stage import finished, stage_paths, task_logger


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
    """The stage itself, also run by `sdfb train-round` under `accelerate launch` (only rank 0 writes files)."""
    inputs = {
        "rollouts": rollouts,
        "contexts": contexts,
        "grades": grades,
        "teacher": teacher,
        "previous": previous,
    }
    paths = stage_paths("distill", run_dir, round=round_index)
    if finished("distill", cfg, run_dir, inputs, round=round_index):
        task_logger().info("distill: finished earlier, reusing %s", paths["checkpoint"])
        return str(paths["checkpoint"])
    with write_errors(run_dir, "distill"):
        sleep_engines()  # GPU: the rollout engine gives its memory back while training runs
        started, c = time.perf_counter(), config_view(cfg, "distill")
        tables = {name: read_table(inputs[name]) for name in ("rollouts", "contexts", "grades")}
        teacher_scores = read_table(teacher)
        result = distill.run_round(
            c.model, c.distill, objective(c.context, c.distill), c.seed, round_index,
            **tables, previous=previous and Path(previous), checkpoint=paths["checkpoint"],
            teacher_scores=teacher_scores if len(teacher_scores) else None,
        )  # fmt: skip
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
    return str(paths["checkpoint"])


# The task is the stage function itself; `sdfb train-round` calls `run_round` directly.
distill_round = task(run_round, name="distill", cache_policy=NONE)
