"""The training loop: a `transformers.Trainer` whose only override is the loss (self-distillation or GRPO);
the math lives in `sdfb.losses`. Also what the loop records per sample and per token before updating on it.

This module imports torch and transformers; only `train.train_round` imports it, inside the function,
so importing `sdfb.distill` stays light.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import zip_longest
from pathlib import Path

import torch
from transformers import Trainer, TrainerCallback
from transformers.trainer_callback import PrinterCallback

from sdfb import faults
from sdfb.config import DistillConfig
from sdfb.distill.checkpoint import save_round_stats, save_teacher_state
from sdfb.distill.teacher import TeacherState, disabled_adapter, student_and_teacher_logits, student_logits
from sdfb.health import HealthWatch, step_means
from sdfb.losses import (
    active_tokens,
    chunked_logprobs,
    distillation_terms,
    grpo_token_loss,
    importance_clip,
    k3_kl,
    kl_to_start,
    masked_mean,
    sampled_token_loss,
    token_entropy,
)


@dataclass
class RoundStats:
    losses: list[float] = field(default_factory=list)
    kls: list[float] = field(default_factory=list)
    per_sample: dict[int, dict] = field(default_factory=dict)
    tokens: dict[int, dict] = field(default_factory=dict)
    health: list[dict] = field(default_factory=list)  # one per micro-batch: `sdfb.health.STEP_METRICS`

    def state(self) -> dict:
        return {
            "losses": self.losses,
            "kls": self.kls,
            "per_sample": self.per_sample,
            "tokens": self.tokens,
            "health": self.health,
        }

    def restore(self, state: dict) -> None:
        """Continue from a saved state (JSON turned the row indices into strings)."""
        self.losses = list(state["losses"])
        self.kls = list(state["kls"])
        self.per_sample = {int(k): v for k, v in state["per_sample"].items()}
        self.tokens = {int(k): v for k, v in state["tokens"].items()}
        self.health = list(state.get("health", []))  # absent in checkpoints saved before health was recorded

    def record_health(self, inputs, mask, logp, adv, kl, entropy, threshold: float) -> None:
        """The micro-batch's step metrics (docs/health.md): the student's entropy, the k3
        KL to the round's starting policy from the rollouts' log-probs, the completions'
        mean length, the share of active tokens."""
        self.health.append(
            {
                "entropy": float(masked_mean(entropy, mask)),
                "kl_to_start": float(masked_mean(kl_to_start(logp, inputs["rollout_logprobs"]), mask)),
                "completion_length": float(mask.sum(1).float().mean()),
                "active_share": float(masked_mean(active_tokens(adv, kl, threshold), mask)),
            }
        )

    def record(self, inputs, mask, logp, teacher_lp, adv, kl, loss: float) -> None:
        """The batch's loss and KL, and for each sample seen for the first time its advantages and log-probs
        (before any update on it)."""
        self.losses.append(loss)
        self.kls.append(float(masked_mean(kl, mask)))
        for i, row in enumerate(inputs["row"].tolist()):
            if row in self.per_sample:
                continue
            m = mask[i].bool()
            a = adv[i][m]
            k = kl[i][m]
            self.per_sample[row] = {
                "n_tokens": int(a.numel()),
                "mean_advantage": float(a.mean()),
                "min_advantage": float(a.min()),
                "frac_negative": float((a < 0).float().mean()),
                "kl": float(k.mean()),
            }
            self.tokens[row] = {
                "token_id": inputs["completion_ids"][i][m].tolist(),
                "student_logprob": logp[i][m].tolist(),
                "teacher_logprob": teacher_lp[i][m].tolist(),
                "advantage": a.tolist(),
            }


def gathered(stats: RoundStats, processes: int) -> RoundStats:
    """Every process's records in one RoundStats (on every process). Each process of a
    multi-process launch sees only its share of the batches: accelerate hands process k the batches
    k, k + n, k + 2n, ... of the one sequence, so interleaving the processes' per-batch losses and
    KLs restores the order one process would have recorded."""
    if processes == 1:
        return stats
    from accelerate.utils import gather_object

    states = gather_object([stats.state()])
    merged = RoundStats()
    for name in ("losses", "kls"):
        columns = zip_longest(*(state[name] for state in states))  # a process short of one batch: None
        setattr(merged, name, [v for row in columns for v in row if v is not None])
    for state in states:
        merged.per_sample |= {int(k): v for k, v in state["per_sample"].items()}
        merged.tokens |= {int(k): v for k, v in state["tokens"].items()}
    return merged


def grpo_loss(model, inputs, cfg: DistillConfig, unwrapped=None):
    """Per-token clipped surrogate on the group advantages (plus the k3 KL to the base policy when
    kl_beta > 0); returns it with the log-probs, teacher log-probs (NaN: no teacher), advantages, KL
    and entropy to record. `unwrapped`: the model without its multi-process wrapper (default `model`),
    for the reference pass (see `compute_loss`)."""
    logits = student_logits(model, inputs)
    logp = chunked_logprobs(logits, inputs["completion_ids"])
    adv = inputs["advantages"][:, None]
    per_token = grpo_token_loss(logp, inputs["rollout_logprobs"], adv, cfg.grpo.clip_low, cfg.grpo.clip_high)
    if cfg.grpo.kl_beta:
        reference = model if unwrapped is None else unwrapped
        with torch.no_grad(), disabled_adapter(reference):
            ref = chunked_logprobs(student_logits(reference, inputs), inputs["completion_ids"])
        per_token = per_token + cfg.grpo.kl_beta * k3_kl(logp, ref)
    nan = torch.full_like(logp, math.nan)
    zero = torch.zeros_like(logp)
    return per_token, logp, nan, adv.expand_as(logp), zero, token_entropy(logits)


def distillation_loss(model, inputs, cfg: DistillConfig, teacher: TeacherState, unwrapped=None):
    """Per-token self-distillation loss of the configured mode (importance-clipped when configured);
    returns it with the student's and teacher's log-probs of the sampled tokens, A_t = teacher -
    student, the KL and the student's entropy. `unwrapped`: the model without its multi-process wrapper
    (default `model`), for the teacher pass."""
    ids = inputs["completion_ids"]
    if "teacher_logprobs" in inputs:
        return _engine_teacher_loss(model, inputs, cfg)
    student, t = student_and_teacher_logits(model, inputs, teacher, unwrapped)
    per_token, logp, teacher_lp, kl = distillation_terms(
        student, t, ids, cfg.mode, cfg.alpha, cfg.topk, cfg.topk_tail
    )
    if cfg.importance_clip:
        per_token = importance_clip(per_token, logp, inputs["rollout_logprobs"], cfg.importance_clip)
    return per_token, logp, teacher_lp, teacher_lp - logp.detach(), kl, token_entropy(student)


def _engine_teacher_loss(model, inputs, cfg: DistillConfig):
    """The sampled-token loss against the engine-scored teacher: only the student runs. The KL reported is the
    sampled-token estimate log p_s - log p_t (the full-vocabulary one needs the teacher's logits)."""
    ids = inputs["completion_ids"]
    teacher_lp = inputs["teacher_logprobs"]
    logits = student_logits(model, inputs)
    logp = chunked_logprobs(logits, ids)
    per_token = sampled_token_loss(logp, teacher_lp)
    if cfg.importance_clip:
        per_token = importance_clip(per_token, logp, inputs["rollout_logprobs"], cfg.importance_clip)
    advantage = teacher_lp - logp.detach()
    return per_token, logp, teacher_lp, advantage, -advantage, token_entropy(logits)


class StepProgress(TrainerCallback):
    """Reports each optimizer step to `progress(step, steps)` (the UI's progress artifact)."""

    def __init__(self, progress):
        self.progress = progress

    def on_step_end(self, args, state, control, **_):
        self.progress(int(state.global_step), int(state.max_steps))


class RoundStateCallback(TrainerCallback):
    """Keeps the EMA teacher in step with the optimizer, and saves it with the round's records so far in every
    intra-round checkpoint, so a resumed round continues the same EMA and still reports every sample (see
    `teacher` for why TRL's teacher callbacks are not used)."""

    def __init__(self, teacher: TeacherState, stats: RoundStats):
        self.teacher = teacher
        self.stats = stats

    def on_step_end(self, args, state, control, model=None, **_):
        self.teacher.update(model)
        faults.point("distill:step")  # the fault tests' kill point: step done, its checkpoint not saved yet

    def on_save(self, args, state, control, **_):
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if folder.exists():  # only the process that wrote the checkpoint has it
            save_teacher_state(self.teacher, folder)
            save_round_stats(self.stats.state(), folder)


class SelfDistillationTrainer(Trainer):
    """The stock Trainer with the loss of one objective: optimizer, accumulation, clipping,
    checkpoints, devices, accelerate/DeepSpeed launch and the sampler
    (`train_sampling_strategy="sequential"` over examples ordered by `bucket_by_length`) are the stock
    ones. The attribute names avoid the Trainer's own (it has `objective`)."""

    def __init__(
        self,
        *,
        distill: DistillConfig,
        objective: str,
        stats: RoundStats,
        teacher: TeacherState,
        health: HealthWatch,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.distill_cfg = distill
        self.loss_objective = objective
        self.round_stats = stats
        self.teacher_state = teacher
        self.health = health
        self.add_callback(RoundStateCallback(teacher, stats))
        self.remove_callback(PrinterCallback)  # its prints bypass logging; round metrics are logged instead

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        # Under a multi-process launch `model` is DDP's wrapper, which has neither PEFT's `disable_adapter`
        # nor the parameter names the teacher swaps: the no-grad teacher and reference passes run on the model
        # inside (no gradient to synchronise), the student pass through the wrapper.
        unwrapped = self.accelerator.unwrap_model(model)
        if self.loss_objective == "grpo":
            per_token, logp, teacher_lp, adv, kl, entropy = grpo_loss(
                model, inputs, self.distill_cfg, unwrapped
            )
        else:
            per_token, logp, teacher_lp, adv, kl, entropy = distillation_loss(
                model, inputs, self.distill_cfg, self.teacher_state, unwrapped
            )
        mask = inputs["completion_mask"]
        loss = masked_mean(per_token, mask)
        self.round_stats.record(inputs, mask, logp.detach(), teacher_lp, adv, kl, float(loss.detach()))
        threshold = self.distill_cfg.health.signal_threshold
        self.round_stats.record_health(inputs, mask, logp.detach(), adv, kl, entropy, threshold)
        return (loss, {"logits": logp}) if return_outputs else loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Each optimizer step's log also carries its health metrics (`health/<metric>`, to every tracker),
        judged by `distill.health`: a crossing is warned, and with `stop` ends training after this step."""
        if "loss" in logs:
            step = int(self.state.global_step)
            values = step_means(self.round_stats.health, step, self.args.gradient_accumulation_steps)
            values = self._across_processes(values)
            if self.health.step(values, step):
                self.control.should_training_stop = True
            logs = logs | {f"health/{name}": value for name, value in values.items()}
        super().log(logs, start_time)

    def _across_processes(self, values: dict[str, float]) -> dict[str, float]:
        # every process judges the same numbers, so all of them stop at the same step
        if self.accelerator.num_processes == 1:
            return values
        mean = self.accelerator.reduce(torch.tensor(list(values.values()), device=self.args.device), "mean")
        return dict(zip(values, mean.tolist(), strict=True))
