"""Training on stored rollouts: self-distillation (the student, shown the question, is
pushed toward the self-teacher, shown question + context, on the student's own sampled
tokens) or GRPO on the same rollout groups.

Modules: `examples` (typed examples from stored ids, length grouping, collator), `teacher` (teacher weights
and forward passes), `trainer` (the Trainer subclass: only the loss), `train` (one round -> RoundResult),
`checkpoint` (saved weights, intra-round resume). Importing the package loads neither torch nor
transformers: the functions that need them import them.
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
from sdfb.distill.records import token_records
from sdfb.distill.teacher import TeacherState, batch_divergence, make_teacher, student_and_teacher_logits
from sdfb.distill.train import RoundResult, empty_round, prepare_model, run_round, train_round

__all__ = [
    "EMA_FILE",
    "Collator",
    "Example",
    "ExampleStats",
    "RoundResult",
    "TeacherState",
    "batch_divergence",
    "bucket_by_length",
    "build_examples",
    "discard_partial",
    "empty_round",
    "fit_teacher_prompt",
    "is_main_process",
    "make_teacher",
    "padding_waste",
    "partial_dir",
    "prepare_examples",
    "prepare_model",
    "run_round",
    "save_checkpoint",
    "student_and_teacher_logits",
    "token_records",
    "train_round",
]
