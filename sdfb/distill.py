"""Training on stored rollouts: self-distillation (the student, shown the question, is pushed toward the
self-teacher, shown question + context, on the student's own sampled tokens) or GRPO on the same rollout groups
for the binary condition. The loop is a `transformers.Trainer` whose only override is the loss; the math lives in
`sdfb.losses`. Teacher weights: the frozen initial policy (LoRA disabled), the live student, or an EMA of it.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from sdfb import schemas
from sdfb.config import DistillConfig
from sdfb.losses import (
    completion_logits,
    group_advantages,
    grpo_token_loss,
    importance_clip,
    k3_kl,
    masked_mean,
    per_token_loss,
    reverse_kl,
    token_advantages,
    token_logprobs,
)

log = logging.getLogger(__name__)

__all__ = [
    "Collator", "batch_divergence", "build_examples", "completion_logits", "empty_round", "fit_teacher_prompt",
    "masked_mean", "per_token_loss", "prepare_examples", "prepare_model", "reverse_kl", "student_and_teacher_logits",
    "token_advantages", "train_round",
]  # fmt: skip

EMA_FILE = "teacher_ema.pt"
_MARKER = " [...] "


# ---------------------------------------------------------------------------------------------------- examples
def fit_teacher_prompt(
    prefix: list[int], context: list[int], suffix: list[int], budget: int, marker: list[int]
) -> tuple[list[int], int]:
    """Teacher prompt ids within `budget` tokens. Only the context is cut, from its middle (the marker stands in
    for what was removed); the prefix (system prompt, question) and suffix are never cut. Returns the ids and the
    number of context tokens removed; raises ValueError when even an empty context does not fit."""
    if len(prefix) + len(context) + len(suffix) <= budget:
        return prefix + context + suffix, 0
    keep = budget - len(prefix) - len(suffix) - len(marker)
    if keep < 0:
        raise ValueError(
            f"the teacher prompt without its context needs {len(prefix) + len(suffix)} tokens > {budget}"
        )
    head, tail = keep - keep // 2, keep // 2
    kept = context[:head] + marker + (context[len(context) - tail :] if tail else [])
    return prefix + kept + suffix, len(context) - keep


@dataclass
class ExampleStats:
    student_too_long: int = 0
    teacher_too_long: int = 0
    teacher_truncated: int = 0
    teacher_tokens_cut: int = 0


def prepare_examples(
    rollouts: pd.DataFrame,
    contexts: pd.DataFrame,
    tokenizer,
    grades: pd.DataFrame | None = None,
    max_length: int | None = None,
    grpo_scale: bool = True,
) -> tuple[list[dict], ExampleStats]:
    """Training examples from the stored token ids (the completion is never re-tokenised); only the teacher prompt
    is tokenised here. With `grades`, each example carries its 0/1 reward and GRPO group advantage."""
    keys = ["problem_id", "sample_index"]
    if "context" not in contexts:
        contexts = contexts.assign(context="")  # without the context text nothing can be cut from it
    table = rollouts.merge(
        contexts[[*keys, "teacher_prompt", "context", "train"]], on=keys, validate="one_to_one"
    )
    if grades is not None:
        table = table.merge(grades[[*keys, "correct"]], on=keys, validate="one_to_one")
    table = table[table["train"] & (table["completion_ids"].map(len) > 0)].reset_index(drop=True)
    if grades is not None and len(table):
        import torch

        groups = torch.tensor(pd.factorize(table["problem_id"])[0])
        rewards = torch.tensor(table["correct"].astype(float).to_numpy())
        table = table.assign(advantage=group_advantages(rewards, groups, scale=grpo_scale).tolist())
    stats, examples = ExampleStats(), []
    has_logprobs = "logprobs" in table  # rollouts always carry them; hand-made test tables may not
    encode = lambda text: tokenizer(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    for row in table.itertuples(index=False):
        completion = [int(t) for t in row.completion_ids]
        prompt = [int(t) for t in row.prompt_ids]
        if max_length and len(prompt) + len(completion) > max_length:
            stats.student_too_long += 1  # the student prompt is never cut: the sample is left out
            continue
        teacher = encode(row.teacher_prompt)
        budget = (max_length or 10**9) - len(completion)
        if len(teacher) > budget:
            at = row.teacher_prompt.rfind(row.context) if row.context else -1
            try:
                assert at >= 0, "a teacher prompt over the limit must hold a context to cut"
                teacher, cut = fit_teacher_prompt(
                    encode(row.teacher_prompt[:at]), encode(row.context),
                    encode(row.teacher_prompt[at + len(row.context) :]), budget, encode(_MARKER),
                )  # fmt: skip
            except (AssertionError, ValueError):
                stats.teacher_too_long += 1
                continue
            stats.teacher_truncated += 1
            stats.teacher_tokens_cut += cut
        examples.append(
            {
                "index": len(examples),
                "problem_id": row.problem_id,
                "sample_index": int(row.sample_index),
                "student_ids": prompt + completion,
                "teacher_ids": list(teacher) + completion,
                "student_prompt_len": len(prompt),
                "teacher_prompt_len": len(teacher),
                "completion_ids": completion,
                "rollout_logprobs": [float(x) for x in row.logprobs]
                if has_logprobs
                else [0.0] * len(completion),
                "advantage": float(getattr(row, "advantage", 0.0)),
            }
        )
    return examples, stats


def build_examples(rollouts: pd.DataFrame, contexts: pd.DataFrame, tokenizer) -> list[dict]:
    """Self-distillation examples with no length limit."""
    return prepare_examples(rollouts, contexts, tokenizer)[0]


def bucket_by_length(examples: list[dict], batch_size: int, seed: int, window: int = 16) -> list[dict]:
    """Shuffle, then sort by length inside windows of `window` batches and shuffle the batches: neighbours in a
    batch have similar lengths (little padding) while the order across batches stays random."""
    rng = random.Random(seed)
    order = examples[:]
    rng.shuffle(order)
    span = batch_size * window
    batches = []
    for start in range(0, len(order), span):
        chunk = sorted(
            order[start : start + span], key=lambda e: len(e["teacher_ids"]) + len(e["student_ids"])
        )
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return [e for batch in batches for e in batch]


def padding_waste(examples: list[dict], batch_size: int) -> float:
    """Share of padded positions in the student and teacher batches, in this order."""
    real = padded = 0
    for start in range(0, len(examples), batch_size):
        batch = examples[start : start + batch_size]
        for key in ("student_ids", "teacher_ids"):
            lengths = [len(e[key]) for e in batch]
            real += sum(lengths)
            padded += max(lengths) * len(lengths)
    return 1.0 - real / padded if padded else 0.0


@dataclass
class Collator:
    pad_token_id: int
    with_teacher: bool = True

    def __call__(self, examples: list[dict]) -> dict:
        import torch

        def pad(seqs, value, dtype=torch.long):
            width = max(len(s) for s in seqs)
            return torch.tensor([list(s) + [value] * (width - len(s)) for s in seqs], dtype=dtype)

        lengths = torch.tensor([len(e["completion_ids"]) for e in examples])
        batch = {
            "student_input_ids": pad([e["student_ids"] for e in examples], self.pad_token_id),
            "student_attention_mask": pad([[1] * len(e["student_ids"]) for e in examples], 0),
            "student_prompt_lens": torch.tensor([e["student_prompt_len"] for e in examples]),
            "completion_ids": pad([e["completion_ids"] for e in examples], 0),
            "completion_mask": (torch.arange(int(lengths.max()))[None, :] < lengths[:, None]).float(),
            "rollout_logprobs": pad([e["rollout_logprobs"] for e in examples], 0.0, torch.float32),
            "advantages": torch.tensor([e["advantage"] for e in examples], dtype=torch.float32),
            "row": torch.tensor([e["index"] for e in examples]),
        }
        if self.with_teacher:
            batch |= {
                "teacher_input_ids": pad([e["teacher_ids"] for e in examples], self.pad_token_id),
                "teacher_attention_mask": pad([[1] * len(e["teacher_ids"]) for e in examples], 0),
                "teacher_prompt_lens": torch.tensor([e["teacher_prompt_len"] for e in examples]),
            }
        return batch


# ---------------------------------------------------------------------------------------------------- teacher
class TeacherState:
    """Where the teacher's weights come from. `base` with LoRA: the adapters disabled. `base` with full
    fine-tuning: a saved copy of the initial weights. `ema`: a copy updated after every optimizer step.
    Copies are swapped into the model under no_grad for the teacher pass, which runs before the student pass so
    no tensor saved for backward is ever modified."""

    def __init__(self, model, mode: str, finetune: str, rate: float, initial: dict | None = None):
        import torch

        self.mode, self.finetune, self.rate = mode, finetune, rate
        self.names = [n for n, p in model.named_parameters() if p.requires_grad]
        self.copy: dict[str, torch.Tensor] | None = None
        params = dict(model.named_parameters())
        if mode == "ema" or (mode == "base" and finetune == "full"):
            self.copy = {
                n: (initial[n] if initial and n in initial else params[n]).detach().clone()
                for n in self.names
            }

    @contextlib.contextmanager
    def weights(self, model):
        import torch

        if self.mode == "live":
            yield
        elif self.mode == "base" and self.finetune == "lora":
            with model.disable_adapter():
                yield
        else:
            params = dict(model.named_parameters())
            saved = {n: params[n].detach().clone() for n in self.names}
            with torch.no_grad():
                for n in self.names:
                    params[n].copy_(self.copy[n])
            try:
                yield
            finally:
                with torch.no_grad():
                    for n in self.names:
                        params[n].copy_(saved[n])

    def update(self, model) -> None:
        """One EMA step toward the current student weights (after an optimizer step)."""
        import torch

        if self.mode != "ema":
            return
        params = dict(model.named_parameters())
        with torch.no_grad():
            for n in self.names:
                self.copy[n].mul_(1.0 - self.rate).add_(params[n].detach(), alpha=self.rate)

    def state_dict(self) -> dict:
        return {"mode": self.mode, "copy": self.copy}

    def load_state_dict(self, state: dict) -> None:
        assert state["mode"] == self.mode, (
            f"teacher state is {state['mode']!r}, config asks for {self.mode!r}"
        )
        self.copy = state["copy"]


def _logits(model, ids, mask, prompt_lens, width):
    return completion_logits(model(input_ids=ids, attention_mask=mask).logits, prompt_lens, width)


def student_and_teacher_logits(model, batch, teacher: TeacherState | None = None):
    """Teacher logits (no grad, teacher weights) first, then the student's (with grad) on the same completion."""
    import torch

    width = batch["completion_ids"].shape[1]
    with torch.no_grad(), teacher.weights(model) if teacher else _disabled_adapter(model):
        t = _logits(
            model,
            batch["teacher_input_ids"],
            batch["teacher_attention_mask"],
            batch["teacher_prompt_lens"],
            width,
        )
    s = _logits(
        model,
        batch["student_input_ids"],
        batch["student_attention_mask"],
        batch["student_prompt_lens"],
        width,
    )
    return s, t.detach()


@contextlib.contextmanager
def _disabled_adapter(model):
    if hasattr(model, "disable_adapter"):
        with model.disable_adapter():
            yield
    else:
        yield


def batch_divergence(model, batch, teacher: TeacherState | None = None) -> float:
    """Mean per-token KL(student || teacher) on the batch's completion tokens, without gradients."""
    import torch

    with torch.no_grad():
        student, t = student_and_teacher_logits(model, batch, teacher)
        return float(masked_mean(reverse_kl(student, t), batch["completion_mask"]))


# -------------------------------------------------------------------------------------------------- trainer
@dataclass
class RoundStats:
    losses: list[float] = field(default_factory=list)
    kls: list[float] = field(default_factory=list)
    per_sample: dict[int, dict] = field(default_factory=dict)
    tokens: dict[int, dict] = field(default_factory=dict)


def _trainer_class():
    import torch
    from transformers import Trainer, TrainerCallback

    class TeacherCallback(TrainerCallback):
        """Keeps the EMA teacher in step with the optimizer and in every intra-round checkpoint."""

        def __init__(self, teacher: TeacherState):
            self.teacher = teacher

        def on_step_end(self, args, state, control, model=None, **kwargs):
            self.teacher.update(model)

        def on_save(self, args, state, control, **kwargs):
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if folder.exists():
                torch.save(self.teacher.state_dict(), folder / EMA_FILE)

    class SelfDistillationTrainer(Trainer):
        """transformers.Trainer with the self-distillation or GRPO loss; optimizer, accumulation, clipping,
        checkpoints, devices and accelerate/DeepSpeed launch are the stock Trainer's."""

        def __init__(
            self,
            *args,
            distill: DistillConfig,
            objective: str,
            stats: RoundStats,
            teacher: TeacherState,
            **kwargs,
        ):
            super().__init__(*args, **kwargs)
            self.distill, self.objective, self.stats, self.teacher = distill, objective, stats, teacher
            self.add_callback(TeacherCallback(teacher))

        def _get_train_sampler(self, *args, **kwargs):
            return torch.utils.data.SequentialSampler(self.train_dataset)  # the order is bucketed beforehand

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            cfg, mask, ids = self.distill, inputs["completion_mask"], inputs["completion_ids"]
            width = ids.shape[1]
            if self.objective == "grpo":
                student = _logits(
                    model,
                    inputs["student_input_ids"],
                    inputs["student_attention_mask"],
                    inputs["student_prompt_lens"],
                    width,
                )
                logp = token_logprobs(student, ids)
                per_token = grpo_token_loss(
                    logp,
                    inputs["rollout_logprobs"],
                    inputs["advantages"][:, None],
                    cfg.grpo.clip_low,
                    cfg.grpo.clip_high,
                )
                if cfg.grpo.kl_beta:
                    with torch.no_grad(), _disabled_adapter(model):
                        ref = token_logprobs(
                            _logits(
                                model,
                                inputs["student_input_ids"],
                                inputs["student_attention_mask"],
                                inputs["student_prompt_lens"],
                                width,
                            ),
                            ids,
                        )
                    per_token = per_token + cfg.grpo.kl_beta * k3_kl(logp, ref)
                teacher_lp = torch.full_like(logp, math.nan)
                adv = inputs["advantages"][:, None].expand_as(logp)
                kl = torch.zeros_like(logp)
            else:
                student, teacher = student_and_teacher_logits(model, inputs, self.teacher)
                per_token = per_token_loss(
                    student, teacher, ids, cfg.mode, cfg.alpha, cfg.topk, cfg.topk_tail
                )
                logp = token_logprobs(student, ids)
                if cfg.importance_clip:
                    per_token = importance_clip(
                        per_token, logp, inputs["rollout_logprobs"], cfg.importance_clip
                    )
                with torch.no_grad():
                    teacher_lp = token_logprobs(teacher, ids)
                    adv = teacher_lp - logp.detach()
                    kl = reverse_kl(student.detach(), teacher)
            loss = masked_mean(per_token, mask)
            self._record(inputs, mask, logp.detach(), teacher_lp, adv, kl, float(loss.detach()))
            return (loss, {"logits": logp}) if return_outputs else loss

        def _record(self, inputs, mask, logp, teacher_lp, adv, kl, loss):
            self.stats.losses.append(loss)
            self.stats.kls.append(float(masked_mean(kl, mask)))
            for i, row in enumerate(inputs["row"].tolist()):
                if row in self.stats.per_sample:
                    continue  # keep what was seen before any update on this sample
                m = mask[i].bool()
                a, k = adv[i][m], kl[i][m]
                self.stats.per_sample[row] = {
                    "n_tokens": int(a.numel()),
                    "mean_advantage": float(a.mean()),
                    "min_advantage": float(a.min()),
                    "frac_negative": float((a < 0).float().mean()),
                    "kl": float(k.mean()),
                }
                self.stats.tokens[row] = {
                    "token_id": inputs["completion_ids"][i][m].tolist(),
                    "student_logprob": logp[i][m].tolist(),
                    "teacher_logprob": teacher_lp[i][m].tolist(),
                    "advantage": a.tolist(),
                }

    return SelfDistillationTrainer


def prepare_model(model_name: str, dtype: str, cfg: DistillConfig, previous: Path | None):
    """The student to train: LoRA adapters (continued from the previous round's, or new), or all weights."""
    from peft import LoraConfig, get_peft_model

    from sdfb.models import load_model

    if cfg.finetune == "full":
        return load_model(str(previous) if previous else model_name, dtype=dtype)
    if previous is not None:
        return load_model(model_name, dtype=dtype, adapter=previous, trainable_adapter=True)
    lora = LoraConfig(
        r=cfg.lora.r,
        lora_alpha=cfg.lora.alpha,
        lora_dropout=cfg.lora.dropout,
        target_modules=list(cfg.lora.target_modules),
        task_type="CAUSAL_LM",
    )
    return get_peft_model(load_model(model_name, dtype=dtype), lora)


def make_teacher(
    model, model_name: str, dtype: str, cfg: DistillConfig, previous: Path | None
) -> TeacherState:
    """The teacher for this round; its EMA (or, for full fine-tuning, the initial weights) comes from disk."""
    import torch

    initial = None
    if cfg.teacher == "base" and cfg.finetune == "full" and previous is not None:
        from sdfb.models import load_model

        initial = dict(load_model(model_name, dtype=dtype).named_parameters())
    teacher = TeacherState(model, cfg.teacher, cfg.finetune, cfg.ema_rate, initial)
    if cfg.teacher == "ema" and previous is not None and (Path(previous) / EMA_FILE).exists():
        teacher.load_state_dict(torch.load(Path(previous) / EMA_FILE, weights_only=False))
    return teacher


def train_round(
    model,
    tokenizer,
    examples: list[dict],
    cfg: DistillConfig,
    output_dir: Path,
    seed: int,
    objective: str = "self_distillation",
    teacher: TeacherState | None = None,
    max_steps: int = -1,
) -> dict:
    """Train `model` in place on `examples`; resumes from the newest checkpoint in `output_dir` if there is one.
    Returns round metrics, per-sample advantage rows and per-token records."""
    import torch
    from transformers import TrainingArguments
    from transformers.trainer_callback import PrinterCallback
    from transformers.trainer_utils import get_last_checkpoint

    assert examples, "train_round needs at least one example"
    teacher = teacher or TeacherState(model, cfg.teacher, cfg.finetune, cfg.ema_rate)
    ordered = bucket_by_length(examples, cfg.batch_size, seed)
    stats = RoundStats()
    args = TrainingArguments(
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
        report_to=[],
        remove_unused_columns=False,
        use_cpu=not torch.cuda.is_available(),
        bf16=torch.cuda.is_available(),
        seed=seed,
        data_seed=seed,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    trainer = _trainer_class()(
        model=model,
        args=args,
        train_dataset=ordered,
        data_collator=Collator(tokenizer.pad_token_id, with_teacher=objective != "grpo"),
        distill=cfg,
        objective=objective,
        stats=stats,
        teacher=teacher,
    )
    trainer.remove_callback(PrinterCallback)  # its prints bypass logging; round metrics are logged instead
    resume = get_last_checkpoint(str(output_dir)) if Path(output_dir).is_dir() else None
    if resume and (Path(resume) / EMA_FILE).exists():
        teacher.load_state_dict(torch.load(Path(resume) / EMA_FILE, weights_only=False))
    started = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=resume)
    grad_norms = [h["grad_norm"] for h in trainer.state.log_history if "grad_norm" in h]
    seen = [e for e in examples if e["index"] in stats.per_sample]
    per_sample = pd.DataFrame(
        [
            {"problem_id": e["problem_id"], "sample_index": e["sample_index"], **stats.per_sample[e["index"]]}
            for e in seen
        ],
        columns=schemas.DISTILL.names,
    )
    tokens = token_records(seen, stats)
    n_tokens = int(per_sample["n_tokens"].sum())
    weighted = lambda col: float((per_sample[col] * per_sample["n_tokens"]).sum() / max(n_tokens, 1))  # noqa: E731
    metrics = {
        "objective": objective,
        "examples": len(examples),
        "steps": int(result.global_step),
        "resumed_from": resume,
        "tokens": n_tokens,
        "loss": float(sum(stats.losses) / len(stats.losses)) if stats.losses else math.nan,
        "mean_kl": float(sum(stats.kls) / len(stats.kls)) if stats.kls else math.nan,
        "mean_advantage": weighted("mean_advantage"),
        "frac_negative_advantage": weighted("frac_negative"),
        "grad_norm": float(sum(grad_norms) / len(grad_norms)) if grad_norms else math.nan,
        "padding_waste": padding_waste(ordered, cfg.batch_size),
        "train_seconds": time.perf_counter() - started,
    }
    return {
        "metrics": metrics,
        "per_sample": per_sample,
        "tokens": tokens,
        "losses": stats.losses,
        "teacher": teacher,
    }


def token_records(examples: list[dict], stats: RoundStats) -> pd.DataFrame:
    """One row per trained token: its position, id, student and teacher log-prob and advantage."""
    frames = []
    for e in examples:
        rec = stats.tokens[e["index"]]
        n = len(rec["token_id"])
        frames.append(
            pd.DataFrame(
                {
                    "problem_id": e["problem_id"],
                    "sample_index": e["sample_index"],
                    "position": range(n),
                    **rec,
                }
            )
        )
    columns = schemas.TOKENS.names
    return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)


def empty_round() -> dict:
    """Metrics and records of a round with nothing to train on (e.g. condition `none`)."""
    columns = schemas.DISTILL.names
    token_columns = schemas.TOKENS.names
    metrics = {"examples": 0, "steps": 0, "tokens": 0, "loss": math.nan, "mean_kl": math.nan,
               "mean_advantage": math.nan, "frac_negative_advantage": math.nan, "grad_norm": math.nan,
               "padding_waste": 0.0, "train_seconds": 0.0}  # fmt: skip
    return {
        "metrics": metrics,
        "per_sample": pd.DataFrame(columns=columns),
        "tokens": pd.DataFrame(columns=token_columns),
        "teacher": None,
    }
