"""Training on stored rollouts: self-distillation (the student, shown the question, is pushed toward the
self-teacher, shown question + context, on the student's own sampled tokens) or GRPO on the same rollout groups.

Modules: `examples` (typed examples from stored ids, length grouping, collator), `teacher` (teacher weights and
forward passes), `trainer` (the Trainer subclass: only the loss), `train` (one round -> RoundResult),
`checkpoint` (saved weights, intra-round resume). Importing the package loads neither torch nor transformers: the
functions that need them import them.
"""

from sdfb.distill.checkpoint import EMA_FILE, discard_partial, is_main_process, partial_dir, save_checkpoint
from sdfb.distill.examples import (
    Collator,
    Example,
    ExampleStats,
    bucket_by_length,
    build_examples,
    fit_teacher_prompt,
    padding_waste,
    prepare_examples,
)
from sdfb.distill.teacher import TeacherState, batch_divergence, make_teacher, student_and_teacher_logits
from sdfb.distill.train import RoundResult, empty_round, prepare_model, run_round, token_records, train_round

_LOSSES = ("completion_logits", "masked_mean", "per_token_loss", "reverse_kl", "token_advantages")

__all__ = [
    "EMA_FILE", "Collator", "Example", "ExampleStats", "RoundResult", "TeacherState", "batch_divergence",
    "bucket_by_length", "build_examples", "completion_logits", "discard_partial", "empty_round",
    "fit_teacher_prompt", "is_main_process", "make_teacher", "masked_mean", "padding_waste", "partial_dir",
    "per_token_loss", "prepare_examples", "prepare_model", "reverse_kl", "run_round", "save_checkpoint",
    "student_and_teacher_logits", "token_advantages", "token_records", "train_round",
]  # fmt: skip


def __getattr__(name: str):
    # the loss math re-exported from sdfb.losses imports torch, so it is loaded on first use (PEP 562)
    if name in _LOSSES:
        from sdfb import losses

        return getattr(losses, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
