"""One round of training: the student model, its examples and teacher, the Trainer run (resuming from the last
intra-round checkpoint), the per-sample and per-token records, and the saved weights. Writes no tables."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from sdfb import schemas
from sdfb.config import DistillConfig, ModelConfig
from sdfb.distill.checkpoint import (
    is_main_process,
    load_round_stats,
    load_teacher_state,
    partial_dir,
    save_checkpoint,
)
from sdfb.distill.engine_teacher import attach_teacher_logprobs
from sdfb.distill.examples import Collator, Example, bucket_by_length, padding_waste, prepare_examples
from sdfb.distill.records import metrics as round_metrics
from sdfb.distill.records import per_sample_records, token_records, training_curve
from sdfb.distill.teacher import TeacherState, make_teacher
from sdfb.generation.base import Progress
from sdfb.health import HealthStop, HealthWatch, check_round
from sdfb.localisation import annotate_tokens
from sdfb.seeds import training_seed
from sdfb.tracking import TrackerRun, environment, training_arguments

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)


@dataclass
class RoundResult:
    metrics: dict
    per_sample: pd.DataFrame  # schemas.DISTILL
    tokens: pd.DataFrame  # schemas.TOKENS
    losses: list[float] = field(default_factory=list)  # one per training step
    teacher: TeacherState | None = None


def prepare_model(
    name: str, dtype: str, cfg: DistillConfig, previous: Path | None, trust_remote_code: bool = False
):
    """The student to train: LoRA adapters (continued from the previous round's, or new), or all weights."""
    from peft import LoraConfig, get_peft_model

    from sdfb.models import load_model

    trust = trust_remote_code
    if cfg.finetune == "full":
        return load_model(str(previous) if previous else name, dtype, trust_remote_code=trust)
    if previous is not None:
        return load_model(name, dtype, previous, trainable_adapter=True, trust_remote_code=trust)
    lora = LoraConfig(
        r=cfg.lora.r,
        lora_alpha=cfg.lora.alpha,
        lora_dropout=cfg.lora.dropout,
        target_modules=list(cfg.lora.target_modules),
        task_type="CAUSAL_LM",
    )
    return get_peft_model(load_model(name, dtype, trust_remote_code=trust), lora)


def _training_args(
    cfg: DistillConfig, output_dir: Path, seed: int, max_steps: int, tracking: TrackerRun | None
):
    import torch
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=str(output_dir),
        per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        num_train_epochs=cfg.epochs,
        max_steps=max_steps,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type="constant",
        max_grad_norm=cfg.max_grad_norm,
        logging_steps=1,
        save_strategy="steps" if cfg.save_steps else "no",
        save_steps=cfg.save_steps or 500,
        **training_arguments(tracking),
        remove_unused_columns=False,
        use_cpu=not torch.cuda.is_available(),
        bf16=torch.cuda.is_available(),
        seed=seed,
        data_seed=seed,
        dataloader_num_workers=0,
        disable_tqdm=True,
        # the examples arrive in bucket_by_length's order, which the Trainer must keep (and keeps on resume)
        train_sampling_strategy="sequential",
    )


def train_round(
    model,
    tokenizer,
    examples: list[Example],
    cfg: DistillConfig,
    output_dir: Path,
    seed: int,
    objective: str = "self_distillation",
    teacher: TeacherState | None = None,
    max_steps: int = -1,
    tracking: TrackerRun | None = None,
    progress: Progress | None = None,
    round_index: int = 1,
) -> RoundResult:
    """Train `model` in place on `examples`; resumes from the newest checkpoint in `output_dir` if there is
    one. `tracking`: the trackers (`cfg.report_to`) and run names the Trainer reports the training curve
    to; `progress(step, steps)` after every optimizer step. Each step is judged by `cfg.health`; with its
    stop rule, a crossing raises `HealthStop` (carrying the curve so far) once the Trainer has stopped."""
    from sdfb.distill.trainer import RoundStats, StepProgress, gathered

    _check_inputs(examples, cfg, tracking)
    teacher = teacher or TeacherState(model, cfg.teacher, cfg.finetune, cfg.ema_rate)
    if objective == "control":  # the same loop and records, weights left as they are
        cfg = cfg.model_copy(update={"learning_rate": 0.0})
    ordered = bucket_by_length(examples, cfg.batch_size, seed)
    stats = RoundStats()
    watch = HealthWatch(cfg.health, round_index, objective)
    with environment(tracking):  # the integrations read it when the Trainer is built and while it trains
        args = _training_args(cfg, output_dir, seed, max_steps, tracking)
        trainer = _trainer(model, tokenizer, ordered, cfg, args, objective, stats, teacher, watch)
        if progress:
            trainer.add_callback(StepProgress(progress))
        resume = _resume(output_dir, teacher, stats)
        started = time.perf_counter()
        result = trainer.train(resume_from_checkpoint=resume)
    processes = trainer.accelerator.num_processes
    stats = gathered(stats, processes)  # every process's samples, so rank 0 records the whole round
    history = training_curve(
        trainer.state.log_history, stats.kls, cfg.gradient_accumulation_steps * processes
    )
    if watch.stopped is not None:
        raise HealthStop(watch.stopped, history)
    seen, per_sample = per_sample_records(examples, stats)
    grad_norms = [h["grad_norm"] for h in trainer.state.log_history if "grad_norm" in h]
    metrics = round_metrics(per_sample, stats, grad_norms) | {
        "objective": objective,
        "examples": len(examples),
        "steps": int(result.global_step),
        "resumed_from": resume,
        "padding_waste": padding_waste(ordered, cfg.batch_size),
        "train_seconds": time.perf_counter() - started,
        "processes": processes,
        "history": history,
        "health_alarms": [a.record() for a in watch.found],
    }
    return RoundResult(metrics, per_sample, token_records(seen, stats), stats.losses, teacher)


def _trainer(model, tokenizer, ordered, cfg: DistillConfig, args, objective: str, stats, teacher, watch):
    """The round's Trainer: the student, its examples in their bucketed order, the loss and the records."""
    from sdfb.distill.trainer import SelfDistillationTrainer

    return SelfDistillationTrainer(
        model=model,
        args=args,
        train_dataset=ordered,
        data_collator=Collator(tokenizer.pad_token_id, with_teacher=objective != "grpo"),
        distill=cfg,
        objective=objective,
        stats=stats,
        teacher=teacher,
        health=watch,
    )


def _resume(output_dir: Path, teacher: TeacherState, stats) -> str | None:
    """The newest checkpoint in `output_dir` (None: the round starts afresh), with the teacher's state and the
    records of the samples trained on before the crash loaded from it."""
    from transformers.trainer_utils import get_last_checkpoint

    resume = get_last_checkpoint(str(output_dir)) if Path(output_dir).is_dir() else None
    load_teacher_state(teacher, resume)
    if (saved := load_round_stats(resume)) is not None:
        stats.restore(saved)
    return resume


def _check_inputs(examples: list[Example], cfg: DistillConfig, tracking: TrackerRun | None) -> None:
    if not examples:
        raise ValueError("train_round needs at least one example; use empty_round() for a round without any")
    if (tracking.report_to if tracking else ()) != tuple(cfg.report_to):
        raise ValueError(
            f"distill.report_to={list(cfg.report_to)} needs a tracker run reporting to the same trackers"
        )


def empty_round() -> RoundResult:
    """Metrics and records of a round with nothing to train on (e.g. condition `none`)."""
    metrics = {
        "examples": 0,
        "steps": 0,
        "tokens": 0,
        "loss": math.nan,
        "mean_kl": math.nan,
        "mean_advantage": math.nan,
        "frac_negative_advantage": math.nan,
        "grad_norm": math.nan,
        "padding_waste": 0.0,
        "train_seconds": 0.0,
    }
    return RoundResult(
        metrics, pd.DataFrame(columns=schemas.DISTILL.names), pd.DataFrame(columns=schemas.TOKENS.names)
    )


def _round_examples(
    rollouts, contexts, grades, tokenizer, distill: DistillConfig, objective: str, teacher_scores
):
    """The round's examples from its stored token ids, with the engine-scored teacher's log-probs attached
    when there are any (GRPO needs no teacher); sequences over distill.max_length are counted and logged."""
    examples, counts = prepare_examples(
        rollouts, contexts, tokenizer, grades, distill.max_length, distill.grpo.scale_rewards
    )
    if teacher_scores is not None and objective != "grpo":
        examples = attach_teacher_logprobs(examples, teacher_scores)
    if counts.teacher_truncated or counts.teacher_too_long or counts.student_too_long:
        log.warning("distill: sequences over distill.max_length=%d: %s", distill.max_length, counts)
    return examples, counts


def _add_round_records(result: RoundResult, counts, rates: dict, round_alarms: list) -> None:
    """The round's example counts, format and answer rates and its round-level alarms, beside the steps'."""
    result.metrics |= {f"examples_{k}": v for k, v in vars(counts).items()} | rates
    step_alarms = result.metrics.get("health_alarms", [])
    result.metrics["health_alarms"] = [a.record() for a in round_alarms] + step_alarms


def run_round(
    model: ModelConfig,
    distill: DistillConfig,
    objective: str,
    seed: int,
    round_index: int,
    rollouts: pd.DataFrame,
    contexts: pd.DataFrame,
    grades: pd.DataFrame,
    previous: Path | None,
    checkpoint: Path,
    teacher_scores: pd.DataFrame | None = None,
    tracking: TrackerRun | None = None,
    progress: Progress | None = None,
) -> RoundResult:
    """The distillation stage's work: train this round from the previous round's weights (resuming from
    the intra-round checkpoints beside `checkpoint`) and save the new weights to `checkpoint` (main
    process only). `teacher_scores`: the engine-scored teacher's log-probs
    (`engine_teacher.score_teacher`); the trainer then runs no teacher forward. `tracking`: where the
    training curve is reported (`sdfb.tracking.tracker_run`)."""
    from transformers import set_seed

    from sdfb.models import load_tokenizer

    # judged first: with the stop rule, a collapsed previous round costs no model loading
    rates, round_alarms = check_round(grades, rollouts, distill.health, round_index, previous is not None)
    # Everything training draws (new LoRA weights, dropout, the buckets' order) starts from the round's seed,
    # not from whatever the process drew before: a resumed run or another order of arms trains alike.
    seed = training_seed(seed, round_index)
    set_seed(seed)
    tokenizer = load_tokenizer(model.name_or_path, model.trust_remote_code)
    trust = model.trust_remote_code
    student = prepare_model(model.name_or_path, model.dtype, distill, previous, trust)
    teacher = make_teacher(student, model.name_or_path, model.dtype, distill, previous, trust)
    load_teacher_state(teacher, previous)
    examples, counts = _round_examples(
        rollouts, contexts, grades, tokenizer, distill, objective, teacher_scores
    )
    if examples:
        result = train_round(
            student,
            tokenizer,
            examples,
            distill,
            partial_dir(checkpoint),
            seed,
            objective,
            teacher,
            tracking=tracking,
            progress=progress,
            round_index=round_index,
        )
    else:
        log.warning("distill: no trainable samples this round (the condition gave none); weights unchanged")
        result = empty_round()
    _add_round_records(result, counts, rates, round_alarms)
    result.tokens = annotate_tokens(result.tokens, rollouts, contexts, tokenizer)
    if is_main_process():
        save_checkpoint(student, teacher, checkpoint)
    return result
