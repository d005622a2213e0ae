"""Training examples from stored rollouts: the sampled completion ids (never
re-tokenised) behind the student's prompt and behind the teacher's prompt,
length-grouped batches and the collator. No model code here."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

_MARKER = " [...] "
_KEYS = ["problem_id", "sample_index"]


@dataclass(frozen=True)
class Example:
    """One trainable sample: the same completion ids after the student's and after the teacher's prompt."""

    index: int
    problem_id: str
    sample_index: int
    student_ids: list[int]
    teacher_ids: list[int]
    student_prompt_len: int
    teacher_prompt_len: int
    completion_ids: list[int]
    rollout_logprobs: list[float] = field(repr=False)
    advantage: float = 0.0  # GRPO group advantage of the sample's 0/1 reward; 0 without grades
    # log p_teacher per completion token, scored by the engine before training (distill.teacher_source:
    # engine)
    teacher_logprobs: list[float] | None = field(default=None, repr=False)


@dataclass
class ExampleStats:
    """How many samples `prepare_examples` left out or cut because they exceed `max_length`."""

    student_too_long: int = 0
    teacher_too_long: int = 0
    teacher_truncated: int = 0
    teacher_tokens_cut: int = 0


def fit_teacher_prompt(
    prefix: list[int], context: list[int], suffix: list[int], budget: int, marker: list[int]
) -> tuple[list[int], int]:
    """Teacher prompt ids within `budget` tokens. Only the context is cut, from its middle
    (the marker stands in for what was removed); the prefix (system prompt, question) and
    suffix are never cut. Returns the ids and the number of context tokens removed; raises
    ValueError when even an empty context does not fit."""
    if len(prefix) + len(context) + len(suffix) <= budget:
        return prefix + context + suffix, 0
    keep = budget - len(prefix) - len(suffix) - len(marker)
    if keep < 0:
        raise ValueError(
            f"the teacher prompt without its context needs {len(prefix) + len(suffix)} tokens > {budget}"
        )
    head = keep - keep // 2
    tail = keep // 2
    kept = context[:head] + marker + (context[len(context) - tail :] if tail else [])
    return prefix + kept + suffix, len(context) - keep


def _trainable_rows(
    rollouts: pd.DataFrame, contexts: pd.DataFrame, grades: pd.DataFrame | None, grpo_scale: bool
) -> pd.DataFrame:
    """Rollouts joined with their contexts (and rewards), only the rows
    marked for training with a completion."""
    if "context" not in contexts:
        contexts = contexts.assign(context="")  # without the context text nothing can be cut from it
    table = rollouts.merge(
        contexts[[*_KEYS, "teacher_prompt", "context", "train"]], on=_KEYS, validate="one_to_one"
    )
    if grades is not None:
        table = table.merge(grades[[*_KEYS, "correct"]], on=_KEYS, validate="one_to_one")
    table = table[table["train"] & (table["completion_ids"].map(len) > 0)].reset_index(drop=True)
    if grades is not None and len(table):
        import torch

        from sdfb.losses import group_advantages

        groups = torch.tensor(pd.factorize(table["problem_id"])[0])
        rewards = torch.tensor(table["correct"].astype(float).to_numpy())
        table = table.assign(advantage=group_advantages(rewards, groups, scale=grpo_scale).tolist())
    return table


def _teacher_prompt_ids(row, encode, budget: int, stats: ExampleStats) -> list[int] | None:
    """The teacher prompt's ids within `budget`, its context cut in the middle if needed; None (and
    counted) when it cannot fit: no context to cut, or too long even without one."""
    teacher = encode(row.teacher_prompt)
    if len(teacher) <= budget:
        return teacher
    at = row.teacher_prompt.rfind(row.context) if row.context else -1
    if at < 0:
        stats.teacher_too_long += 1
        return None
    prefix = row.teacher_prompt[:at]
    suffix = row.teacher_prompt[at + len(row.context) :]
    try:
        ids, cut = fit_teacher_prompt(
            encode(prefix), encode(row.context), encode(suffix), budget, encode(_MARKER)
        )
    except ValueError:
        stats.teacher_too_long += 1
        return None
    stats.teacher_truncated += 1
    stats.teacher_tokens_cut += cut
    return ids


def prepare_examples(
    rollouts: pd.DataFrame,
    contexts: pd.DataFrame,
    tokenizer,
    grades: pd.DataFrame | None = None,
    max_length: int | None = None,
    grpo_scale: bool = True,
) -> tuple[list[Example], ExampleStats]:
    """Training examples from the stored token ids (the completion is never re-tokenised); only the
    teacher prompt is tokenised here. With `grades`, each example carries its GRPO group advantage.
    A student sequence over `max_length` is left out (the student prompt is never cut); a teacher
    prompt over it loses its context's middle."""
    table = _trainable_rows(rollouts, contexts, grades, grpo_scale)
    stats = ExampleStats()
    examples = []
    has_logprobs = "logprobs" in table  # rollouts always carry them; hand-made test tables may not
    encode = lambda text: tokenizer(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    limit = max_length or 10**9
    for row in table.itertuples(index=False):
        completion = [int(t) for t in row.completion_ids]
        prompt = [int(t) for t in row.prompt_ids]
        if len(prompt) + len(completion) > limit:
            stats.student_too_long += 1
            continue
        teacher = _teacher_prompt_ids(row, encode, limit - len(completion), stats)
        if teacher is None:
            continue
        logprobs = [float(x) for x in row.logprobs] if has_logprobs else [0.0] * len(completion)
        examples.append(
            Example(
                len(examples),
                row.problem_id,
                int(row.sample_index),
                prompt + completion,
                list(teacher) + completion,
                len(prompt),
                len(teacher),
                completion,
                logprobs,
                float(getattr(row, "advantage", 0.0)),
            )
        )
    return examples, stats


def build_examples(rollouts: pd.DataFrame, contexts: pd.DataFrame, tokenizer) -> list[Example]:
    """Self-distillation examples with no length limit."""
    return prepare_examples(rollouts, contexts, tokenizer)[0]


def bucket_by_length(examples: list[Example], batch_size: int, seed: int, window: int = 16) -> list[Example]:
    """Examples in transformers' length-grouped order (random mega-batches of `window` batches, sorted
    by length inside, the longest batch first), by student plus teacher length: neighbours in a batch
    pad little, the order across mega-batches stays random. transformers' default mega-batch (at least
    four per epoch) leaves twice the padding on a round of 64 samples (`benchmarks/distill.py`: 0.101
    against 0.057 with windows of 16 batches).

    This calls transformers' own `get_length_grouped_indices` once instead of setting the Trainer's
    `train_sampling_strategy="group_by_length"` (transformers 5.19): that sampler always uses the
    default mega-batch, and it reads lengths only from a `datasets.Dataset` column or the items'
    `input_ids`, while an example here is a dataclass with two sequences (`"batch_rebalance"` reads
    lengths the same way and varies the batch size). The Trainer then reads this order sequentially, so
    a resumed round sees the same batches."""
    import torch
    from transformers.trainer_pt_utils import get_length_grouped_indices

    lengths = [len(e.student_ids) + len(e.teacher_ids) for e in examples]
    generator = torch.Generator().manual_seed(seed)
    order = get_length_grouped_indices(lengths, batch_size, mega_batch_mult=window, generator=generator)
    return [examples[i] for i in order]


def padding_waste(examples: list[Example], batch_size: int) -> float:
    """Share of padded positions in the student and teacher batches, in this order, as `Collator` lays them
    out (prompts padded to the longest prompt, completions to the longest completion)."""
    real = padded = 0
    for start in range(0, len(examples), batch_size):
        batch = examples[start : start + batch_size]
        width = max(len(e.completion_ids) for e in batch)
        for prompts in ([e.student_prompt_len for e in batch], [e.teacher_prompt_len for e in batch]):
            real += sum(prompts) + sum(len(e.completion_ids) for e in batch)
            padded += (max(prompts) + width) * len(batch)
    return 1.0 - real / padded if padded else 0.0


@dataclass
class Collator:
    """Batches with every completion starting at one column: prompts are padded on the left, completions on
    the right, and position ids count only real tokens (so padding changes no logit). The model's output
    projection then runs on the last `width + 1` positions only (`logits_to_keep`), never over the prompts."""

    pad_token_id: int
    with_teacher: bool = True

    def __call__(self, examples: list[Example]) -> dict:
        import torch

        def pad(seqs, value, dtype=torch.long):
            width = max(len(s) for s in seqs)
            return torch.tensor([list(s) + [value] * (width - len(s)) for s in seqs], dtype=dtype)

        lengths = torch.tensor([len(e.completion_ids) for e in examples])
        width = int(lengths.max())
        batch = {
            **self._aligned("student", [(e.student_ids, e.student_prompt_len) for e in examples], width),
            "completion_ids": pad([e.completion_ids for e in examples], 0),
            "completion_mask": (torch.arange(width)[None, :] < lengths[:, None]).float(),
            "rollout_logprobs": pad([e.rollout_logprobs for e in examples], 0.0, torch.float32),
            "advantages": torch.tensor([e.advantage for e in examples], dtype=torch.float32),
            "row": torch.tensor([e.index for e in examples]),
        }
        if self.with_teacher and examples[0].teacher_logprobs is not None:  # scored by the engine: no forward
            batch["teacher_logprobs"] = pad([e.teacher_logprobs for e in examples], 0.0, torch.float32)
        elif self.with_teacher:
            batch |= self._aligned(
                "teacher", [(e.teacher_ids, e.teacher_prompt_len) for e in examples], width
            )
        return batch

    def _aligned(self, side: str, rows: list[tuple[list[int], int]], width: int) -> dict:
        """`<side>_input_ids`, `_attention_mask`, `_position_ids`, and `_prompt_lens` (the column where every
        completion starts, the same for every row)."""
        import torch

        start = max(prompt_len for _, prompt_len in rows)
        ids = []
        mask = []
        for seq, prompt_len in rows:
            left = start - prompt_len
            right = start + width - left - len(seq)
            ids.append([self.pad_token_id] * left + list(seq) + [self.pad_token_id] * right)
            mask.append([0] * left + [1] * len(seq) + [0] * right)
        mask = torch.tensor(mask)
        return {
            f"{side}_input_ids": torch.tensor(ids),
            f"{side}_attention_mask": mask,
            f"{side}_position_ids": (mask.cumsum(-1) - 1).clamp(min=0),
            f"{side}_prompt_lens": torch.full((len(rows),), start),
        }
