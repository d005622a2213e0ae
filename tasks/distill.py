"""Training of one round: self-distillation (or GRPO for the binary condition) on the round's rollouts and
contexts; saves the adapter (or weights) and the teacher state, per-sample and per-token records.

No retries: a crashed round resumes from its last intra-round checkpoint (distill.save_steps) on rerun.
"""

import os
import shutil
import time
from pathlib import Path

import torch
from prefect import task
from prefect.cache_policies import NONE

from sdfb import distill, schemas
from sdfb.config import RunConfig, objective
from sdfb.generation import sleep_engines
from sdfb.models import load_tokenizer
from sdfb.runs import RunLayout, stage_key
from sdfb.store import finish_folder, is_finished, read_table, write_table
from tasks._stage import task_logger


def run_round(
    cfg: RunConfig,
    run_dir: str,
    round_index: int,
    rollouts: str,
    contexts: str,
    grades: str,
    previous: str | None,
) -> str:
    """The stage itself, also run by `sdfb train-round` under `accelerate launch` (only rank 0 writes files)."""
    layout, logger = RunLayout(Path(run_dir)), task_logger()
    checkpoint = layout.checkpoint(round_index)
    records, tokens = layout.distill_records(round_index), layout.token_records(round_index)
    key = stage_key(
        cfg, "distill", {"rollouts": rollouts, "contexts": contexts, "grades": grades, "previous": previous}
    )
    if all(is_finished(p, key) for p in (checkpoint, records, tokens)):
        logger.info("distill: finished earlier, reusing %s", checkpoint)
        return str(checkpoint)
    started = time.perf_counter()
    sleep_engines()  # GPU: the rollout engine gives its memory back while training runs
    d, previous_path = cfg.distill, previous and Path(previous)
    tokenizer = load_tokenizer(cfg.model.name_or_path)
    model = distill.prepare_model(cfg.model.name_or_path, cfg.model.dtype, d, previous_path)
    teacher = distill.make_teacher(model, cfg.model.name_or_path, cfg.model.dtype, d, previous_path)
    examples, counts = distill.prepare_examples(
        read_table(rollouts),
        read_table(contexts),
        tokenizer,
        read_table(grades),
        d.max_length,
        d.grpo.scale_rewards,
    )
    if counts.teacher_truncated or counts.teacher_too_long or counts.student_too_long:
        logger.warning("distill: sequences over distill.max_length=%d: %s", d.max_length, counts)
    partial = checkpoint.with_name(
        checkpoint.name + ".partial"
    )  # intra-round checkpoints, kept until the end
    if examples:
        result = distill.train_round(
            model, tokenizer, examples, d, partial, cfg.seed + round_index, objective(cfg.context, cfg.distill), teacher
        )
    else:
        logger.warning(
            "distill: no trainable samples this round (condition %r); weights unchanged",
            cfg.context.condition,
        )
        result = distill.empty_round()
    if int(os.environ.get("RANK", "0")) != 0:
        return str(checkpoint)  # other ranks of a multi-process launch: rank 0 saves
    staging = checkpoint.with_name(checkpoint.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging)
    if d.teacher == "ema":
        torch.save(teacher.state_dict(), staging / distill.EMA_FILE)
    shutil.rmtree(checkpoint, ignore_errors=True)
    staging.rename(checkpoint)
    metrics = {**result["metrics"], **{f"examples_{k}": v for k, v in vars(counts).items()}}
    extra = {
        "stage": "distill",
        "seconds": time.perf_counter() - started,
        "finished_at": time.time(),
        "metrics": metrics,
    }
    write_table(result["per_sample"], records, schemas.DISTILL, key, extra)
    write_table(result["tokens"], tokens, schemas.TOKENS, key, {**extra, "stage": "tokens", "seconds": 0.0})
    finish_folder(checkpoint, key, {**extra, "stage": "checkpoint", "seconds": 0.0})
    shutil.rmtree(partial, ignore_errors=True)
    logger.info("distill: %s", metrics)
    return str(checkpoint)


# The task is the stage function itself; `sdfb train-round` calls `run_round` directly.
distill_round = task(run_round, name="distill", cache_policy=NONE)
