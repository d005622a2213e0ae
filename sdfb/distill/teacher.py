"""Where the self-teacher's weights come from (the frozen initial policy, the live
student, or an EMA of it) and the teacher and student forward passes on one batch. No
optimisation and no files here (see `checkpoint`).

TRL 1.16's SDFT/SDPO teacher callbacks are not used. `SyncTeacherModelCallback` keeps the EMA in a second
full model and reads its rate from TRL's own config (`teacher_update_rate`, `teacher_sync_steps`), which
the stock `TrainingArguments` lack. `PEFTAdapterEMACallback` keeps it in a second LoRA adapter that it
re-creates with zero weights at every `on_train_begin`, so the EMA can neither continue from the previous
round's nor survive a resume from an intra-round checkpoint (neither callback saves its weights on
`on_save`). Here the teacher's weights are one copy of the trainable tensors, swapped into the single model
for the teacher pass and saved with every checkpoint.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from sdfb.config import DistillConfig


class TeacherState:
    """`base` with LoRA: the adapters disabled. `base` with full fine-tuning: a saved copy of
    the initial weights. `ema`: a copy updated after every optimizer step. Copies are swapped
    into the model under no_grad for the teacher pass, which runs before the student pass so no
    tensor saved for backward is ever modified."""

    def __init__(self, model, mode: str, finetune: str, rate: float, initial: dict | None = None):
        self.mode = mode
        self.finetune = finetune
        self.rate = rate
        self.names = [n for n, p in model.named_parameters() if p.requires_grad]
        self.copy = None
        params = dict(model.named_parameters())
        if mode == "ema" or (mode == "base" and finetune == "full"):
            source = {n: initial[n] if initial and n in initial else params[n] for n in self.names}
            self.copy = {n: t.detach().clone() for n, t in source.items()}

    @contextlib.contextmanager
    def weights(self, model):
        if self.mode == "live":
            yield
        elif self.mode == "base" and self.finetune == "lora":
            with model.disable_adapter():
                yield
        else:
            with _swapped(model, self.names, self.copy):
                yield

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
        if state.get("mode") != self.mode:
            raise ValueError(
                f"the saved teacher state is {state.get('mode')!r} but distill.teacher is {self.mode!r}: "
                "train this run with the teacher it was started with, or start a new run folder"
            )
        self.copy = state["copy"]


@contextlib.contextmanager
def _swapped(model, names: list[str], weights: dict):
    """`weights` copied into the model's parameters for the block, the originals restored after it."""
    import torch

    params = dict(model.named_parameters())
    saved = {n: params[n].detach().clone() for n in names}
    with torch.no_grad():
        for n in names:
            params[n].copy_(weights[n])
    try:
        yield
    finally:
        with torch.no_grad():
            for n in names:
                params[n].copy_(saved[n])


def make_teacher(
    model,
    model_name: str,
    dtype: str,
    cfg: DistillConfig,
    previous: Path | None,
    trust_remote_code: bool = False,
) -> TeacherState:
    """The teacher for this round. Full fine-tuning against the base reloads the initial
    weights from `model_name`; an EMA teacher starts at the student until
    `checkpoint.load_teacher_state` restores the previous round's."""
    initial = None
    if cfg.teacher == "base" and cfg.finetune == "full" and previous is not None:
        from sdfb.models import load_model

        weights = load_model(model_name, dtype, trust_remote_code=trust_remote_code)
        initial = dict(weights.named_parameters())
    return TeacherState(model, cfg.teacher, cfg.finetune, cfg.ema_rate, initial)


def forward_completion_logits(model, ids, mask, positions, width):
    """The model's logits at the positions that predict each completion token. The batch is
    aligned (`Collator`): every completion starts at one column, so the output projection runs
    on the last width + 1 positions only."""
    logits = model(
        input_ids=ids, attention_mask=mask, position_ids=positions, logits_to_keep=width + 1
    ).logits
    return logits[:, :-1]


def student_logits(model, batch):
    width = batch["completion_ids"].shape[1]
    return forward_completion_logits(
        model,
        batch["student_input_ids"],
        batch["student_attention_mask"],
        batch["student_position_ids"],
        width,
    )


def student_and_teacher_logits(model, batch, teacher: TeacherState | None = None, teacher_model=None):
    """Teacher logits (no grad, teacher weights) first, then the student's (with grad) on the same completion.
    `teacher_model`: the module the teacher pass runs on (default `model`; the trainer passes the model inside
    a multi-process wrapper)."""
    import torch

    width = batch["completion_ids"].shape[1]
    inner = model if teacher_model is None else teacher_model
    with torch.no_grad(), teacher.weights(inner) if teacher else disabled_adapter(inner):
        t = forward_completion_logits(
            inner,
            batch["teacher_input_ids"],
            batch["teacher_attention_mask"],
            batch["teacher_position_ids"],
            width,
        )
    return student_logits(model, batch), t.detach()


@contextlib.contextmanager
def disabled_adapter(model):
    """The base model: LoRA adapters off (a model without adapters is already the base)."""
    if hasattr(model, "disable_adapter"):
        with model.disable_adapter():
            yield
    else:
        yield


def batch_divergence(model, batch, teacher: TeacherState | None = None) -> float:
    """Mean per-token KL(student || teacher) on the batch's completion tokens, without gradients."""
    import torch

    from sdfb.losses import masked_mean, reverse_kl

    with torch.no_grad():
        student, t = student_and_teacher_logits(model, batch, teacher)
        return float(masked_mean(reverse_kl(student, t), batch["completion_mask"]))
