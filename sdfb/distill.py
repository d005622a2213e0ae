"""Self-distillation on stored rollouts: the student (question only) is pushed toward the self-teacher (question plus
context) on the student's own sampled tokens. The teacher is the frozen initial policy: the same network with its
LoRA adapters disabled, under no_grad. Loss math is TRL's (`trl.experimental.sdft.loss_utils`); the training loop
is a `transformers.Trainer` whose only override is the loss."""

from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from sdfb.config import DistillConfig

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------------- batches
def build_examples(rollouts: pd.DataFrame, contexts: pd.DataFrame, tokenizer) -> list[dict]:
    """Training examples from the stored token ids; only the teacher prompt is tokenised here."""
    keys = ["problem_id", "sample_index"]
    table = rollouts.merge(contexts[[*keys, "teacher_prompt", "train"]], on=keys, validate="one_to_one")
    table = table[table["train"] & (table["completion_ids"].map(len) > 0)]
    examples = []
    for index, row in enumerate(table.itertuples(index=False)):
        completion = [int(t) for t in row.completion_ids]
        teacher_prompt = tokenizer(row.teacher_prompt, add_special_tokens=False)["input_ids"]
        examples.append(
            {
                "index": index,
                "problem_id": row.problem_id,
                "sample_index": int(row.sample_index),
                "student_ids": [int(t) for t in row.prompt_ids] + completion,
                "teacher_ids": list(teacher_prompt) + completion,
                "student_prompt_len": len(row.prompt_ids),
                "teacher_prompt_len": len(teacher_prompt),
                "completion_ids": completion,
            }
        )
    return examples


@dataclass
class Collator:
    pad_token_id: int

    def __call__(self, examples: list[dict]) -> dict:
        import torch

        def pad(seqs: list[list[int]], value: int) -> torch.Tensor:
            width = max(len(s) for s in seqs)
            return torch.tensor([s + [value] * (width - len(s)) for s in seqs])

        completions = [e["completion_ids"] for e in examples]
        lengths = torch.tensor([len(c) for c in completions])
        return {
            "student_input_ids": pad([e["student_ids"] for e in examples], self.pad_token_id),
            "student_attention_mask": pad([[1] * len(e["student_ids"]) for e in examples], 0),
            "teacher_input_ids": pad([e["teacher_ids"] for e in examples], self.pad_token_id),
            "teacher_attention_mask": pad([[1] * len(e["teacher_ids"]) for e in examples], 0),
            "student_prompt_lens": torch.tensor([e["student_prompt_len"] for e in examples]),
            "teacher_prompt_lens": torch.tensor([e["teacher_prompt_len"] for e in examples]),
            "completion_ids": pad(completions, 0),
            "completion_mask": (torch.arange(int(lengths.max()))[None, :] < lengths[:, None]).float(),
            "row": torch.tensor([e["index"] for e in examples]),
        }


# ------------------------------------------------------------------------------------------------ pure math
def completion_logits(logits, prompt_lens, width: int):
    """The logits that predict each completion token: positions prompt_len-1 .. prompt_len+width-2, per row."""
    import torch

    index = prompt_lens[:, None] - 1 + torch.arange(width, device=logits.device)[None, :]
    index = index.clamp(max=logits.shape[1] - 1)
    return logits.gather(1, index[..., None].expand(-1, -1, logits.shape[-1]))


def per_token_loss(student_logits, teacher_logits, completion_ids, mode: str, alpha: float):
    """Per-token self-distillation loss (batch, tokens), TRL's definitions."""
    from trl.experimental.sdft.loss_utils import (
        compute_full_logit_self_distillation_loss,
        compute_sampled_token_self_distillation_loss,
    )

    if mode == "sampled_token":
        return compute_sampled_token_self_distillation_loss(
            student_logits, teacher_logits, completion_ids, distillation_alpha=alpha
        )
    if mode == "full_logits":
        return compute_full_logit_self_distillation_loss(
            student_logits, teacher_logits, distillation_alpha=alpha
        )
    raise ValueError(f"distill.mode {mode!r} is not available")


def token_advantages(student_logits, teacher_logits, completion_ids):
    """A_t = log p_teacher(y_t) - log p_student(y_t) on the sampled tokens."""
    import torch

    ids = completion_ids[..., None]
    student = torch.log_softmax(student_logits.float(), -1).gather(-1, ids).squeeze(-1)
    teacher = torch.log_softmax(teacher_logits.float(), -1).gather(-1, ids).squeeze(-1)
    return teacher - student


def reverse_kl(student_logits, teacher_logits):
    """Per-token KL(student || teacher) over the full vocabulary."""
    from trl.experimental.sdft.loss_utils import compute_full_logit_self_distillation_loss

    return compute_full_logit_self_distillation_loss(
        student_logits.float(), teacher_logits.float(), distillation_alpha=1.0
    )


def masked_mean(values, mask):
    return (values * mask).sum() / mask.sum().clamp(min=1)


# -------------------------------------------------------------------------------------------- model passes
@contextlib.contextmanager
def teacher_weights(model):
    """The frozen initial policy: LoRA adapters disabled (a model without adapters is its own teacher)."""
    if hasattr(model, "disable_adapter"):
        with model.disable_adapter():
            yield
    else:
        yield


def student_and_teacher_logits(model, batch):
    import torch

    width = batch["completion_ids"].shape[1]
    student = model(
        input_ids=batch["student_input_ids"], attention_mask=batch["student_attention_mask"]
    ).logits
    student = completion_logits(student, batch["student_prompt_lens"], width)
    with torch.no_grad(), teacher_weights(model):
        teacher = model(
            input_ids=batch["teacher_input_ids"], attention_mask=batch["teacher_attention_mask"]
        ).logits
        teacher = completion_logits(teacher, batch["teacher_prompt_lens"], width).detach()
    return student, teacher


def batch_divergence(model, batch) -> float:
    """Mean per-token reverse KL(student || teacher) on the batch's completion tokens, without gradients."""
    import torch

    with torch.no_grad():
        student, teacher = student_and_teacher_logits(model, batch)
        return float(masked_mean(reverse_kl(student, teacher), batch["completion_mask"]))


# -------------------------------------------------------------------------------------------------- trainer
@dataclass
class RoundStats:
    losses: list[float] = field(default_factory=list)
    kls: list[float] = field(default_factory=list)
    per_sample: dict[int, dict] = field(default_factory=dict)


def _trainer_class():
    from transformers import Trainer

    class SelfDistillationTrainer(Trainer):
        """transformers.Trainer with the self-distillation loss; everything else (optimizer, accumulation,
        clipping, devices, accelerate/DeepSpeed launch) is the stock Trainer's."""

        def __init__(self, *args, distill: DistillConfig, stats: RoundStats, **kwargs):
            super().__init__(*args, **kwargs)
            self.distill = distill
            self.stats = stats

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            import torch

            student, teacher = student_and_teacher_logits(model, inputs)
            mask = inputs["completion_mask"]
            losses = per_token_loss(
                student, teacher, inputs["completion_ids"], self.distill.mode, self.distill.alpha
            )
            loss = masked_mean(losses, mask)
            with torch.no_grad():
                adv = token_advantages(student.detach(), teacher, inputs["completion_ids"])
                kl = reverse_kl(student.detach(), teacher)
                self.stats.kls.append(float(masked_mean(kl, mask)))
                self.stats.losses.append(float(loss.detach()))
                for row, a, k, m in zip(inputs["row"].tolist(), adv, kl, mask, strict=True):
                    if row in self.stats.per_sample:
                        continue  # keep the advantage as first seen, before any update on this sample
                    a, k = a[m.bool()], k[m.bool()]
                    self.stats.per_sample[row] = {
                        "n_tokens": int(a.numel()),
                        "mean_advantage": float(a.mean()) if a.numel() else 0.0,
                        "min_advantage": float(a.min()) if a.numel() else 0.0,
                        "frac_negative": float((a < 0).float().mean()) if a.numel() else 0.0,
                        "kl": float(k.mean()) if k.numel() else 0.0,
                    }
            return (loss, {"logits": student}) if return_outputs else loss

    return SelfDistillationTrainer


def prepare_model(model_name: str, dtype: str, cfg: DistillConfig, previous_adapter: Path | None):
    """The student with trainable LoRA adapters: continued from the previous round's, or freshly initialised."""
    from peft import LoraConfig, get_peft_model

    from sdfb.models import load_model

    if previous_adapter is not None:
        return load_model(model_name, dtype=dtype, adapter=previous_adapter, trainable_adapter=True)
    base = load_model(model_name, dtype=dtype)
    lora = LoraConfig(
        r=cfg.lora.r,
        lora_alpha=cfg.lora.alpha,
        lora_dropout=cfg.lora.dropout,
        target_modules=list(cfg.lora.target_modules),
        task_type="CAUSAL_LM",
    )
    return get_peft_model(base, lora)


def train_round(
    model, tokenizer, examples: list[dict], cfg: DistillConfig, output_dir: Path, seed: int
) -> dict:
    """Train `model` in place on `examples`; return round metrics and per-sample advantage rows."""
    import torch
    from transformers import TrainingArguments

    assert examples, "train_round needs at least one example"
    stats = RoundStats()
    args = TrainingArguments(
        output_dir=str(output_dir),
        per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        num_train_epochs=cfg.epochs,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type="constant",
        max_grad_norm=cfg.max_grad_norm,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        remove_unused_columns=False,
        use_cpu=not torch.cuda.is_available(),
        bf16=torch.cuda.is_available(),
        seed=seed,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    trainer = _trainer_class()(
        model=model,
        args=args,
        train_dataset=examples,
        data_collator=Collator(tokenizer.pad_token_id),
        distill=cfg,
        stats=stats,
    )
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(
        PrinterCallback
    )  # its prints bypass logging; the round metrics are logged instead
    started = time.perf_counter()
    result = trainer.train()
    grad_norms = [h["grad_norm"] for h in trainer.state.log_history if "grad_norm" in h]
    rows = []
    for example in examples:
        rows.append(
            {
                "problem_id": example["problem_id"],
                "sample_index": example["sample_index"],
                **stats.per_sample[example["index"]],
            }
        )
    per_sample = pd.DataFrame(rows)
    tokens = int(per_sample["n_tokens"].sum())
    metrics = {
        "examples": len(examples),
        "steps": int(result.global_step),
        "tokens": tokens,
        "loss": float(sum(stats.losses) / len(stats.losses)),
        "mean_kl": float(sum(stats.kls) / len(stats.kls)),
        "mean_advantage": float(
            (per_sample["mean_advantage"] * per_sample["n_tokens"]).sum() / max(tokens, 1)
        ),
        "frac_negative_advantage": float(
            (per_sample["frac_negative"] * per_sample["n_tokens"]).sum() / max(tokens, 1)
        ),
        "grad_norm": float(sum(grad_norms) / len(grad_norms)) if grad_norms else math.nan,
        "train_seconds": time.perf_counter() - started,
    }
    return {"metrics": metrics, "per_sample": per_sample}


def empty_round() -> dict:
    """Metrics and records of a round with nothing to train on (e.g. condition `none`)."""
    columns = [
        "problem_id",
        "sample_index",
        "n_tokens",
        "mean_advantage",
        "min_advantage",
        "frac_negative",
        "kl",
    ]
    metrics = {"examples": 0, "steps": 0, "tokens": 0, "loss": math.nan, "mean_kl": math.nan,
               "mean_advantage": math.nan, "frac_negative_advantage": math.nan, "grad_norm": math.nan,
               "train_seconds": 0.0}  # fmt: skip
    return {"metrics": metrics, "per_sample": pd.DataFrame(columns=columns)}
