"""The teacher scored by the generation engine: the log-prob of every sampled completion
token under the teacher prompt exactly as training builds it, computed before training, so
each training step runs only the student."""

from __future__ import annotations

import dataclasses

import pandas as pd

from sdfb.distill.examples import Example, prepare_examples

COLUMNS = ["problem_id", "sample_index", "teacher_logprobs"]


def score_teacher(
    rollouts: pd.DataFrame,
    contexts: pd.DataFrame,
    grades: pd.DataFrame,
    tokenizer,
    generator,
    max_length: int,
) -> pd.DataFrame:
    """One row per trainable sample with the teacher's log-probs of its completion tokens. `generator`
    holds the teacher's weights (the base model, or the live student's adapter at the start of the round)."""
    examples, _ = prepare_examples(rollouts, contexts, tokenizer, grades, max_length)
    if not examples:
        return pd.DataFrame(columns=COLUMNS)
    scores = generator.prompt_logprobs(
        [e.teacher_ids for e in examples], [e.teacher_prompt_len for e in examples]
    )
    return pd.DataFrame(
        {
            "problem_id": [e.problem_id for e in examples],
            "sample_index": [e.sample_index for e in examples],
            "teacher_logprobs": scores,
        }
    )


def attach_teacher_logprobs(examples: list[Example], scores: pd.DataFrame) -> list[Example]:
    """`examples` carrying their stored teacher log-probs; every example
    must have them, one per completion token."""
    found = {(p, int(i)): list(lp) for p, i, lp in scores[COLUMNS].itertuples(index=False)}
    attached = []
    for e in examples:
        logprobs = found.get((e.problem_id, e.sample_index))
        if logprobs is None or len(logprobs) != len(e.completion_ids):
            raise ValueError(
                f"no engine-scored teacher log-probs for {e.problem_id}/{e.sample_index} matching its "
                f"{len(e.completion_ids)} completion tokens; rerun the teacher stage (delete its manifest)"
            )
        attached.append(dataclasses.replace(e, teacher_logprobs=logprobs))
    return attached
