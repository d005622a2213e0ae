"""Benchmark scoring of one checkpoint: k samples per held-out problem, graded, then Avg@k, Pass@k and Maj@k.

Takes a generator (any backend); returns tables, writes nothing.
"""

from __future__ import annotations

import pandas as pd

from sdfb.config import EvalConfig, GradingConfig
from sdfb.generation import Generator, Progress
from sdfb.grading import grade_completions
from sdfb.metrics import score
from sdfb.prompts import Template, render_student_prompt


def sample_and_grade(
    problems: pd.DataFrame,
    generator: Generator,
    template: Template,
    cfg: EvalConfig,
    grading: GradingConfig,
    checkpoint: str,
    progress: Progress | None = None,
    seed: int | None = None,
) -> pd.DataFrame:
    """`cfg.k` graded samples per problem, drawn with `seed` (None: `cfg.sampling.seed`)."""
    prompts = [render_student_prompt(generator.tokenizer, template, q) for q in problems["question"]]
    seed = cfg.sampling.seed if seed is None else seed
    sampling = cfg.sampling.model_copy(update={"n": cfg.k, "seed": seed})
    generations = generator.generate(prompts, sampling, want_logprobs=False, progress=progress)
    rows = [
        {
            "checkpoint": checkpoint,
            "problem_id": pid,
            "sample_index": index,
            "completion_text": c.text,
            "n_tokens": len(c.token_ids),
            "finish_reason": c.finish_reason,
        }
        for pid, gen in zip(problems["problem_id"], generations, strict=True)
        for index, c in enumerate(gen.completions)
    ]
    samples = pd.DataFrame(rows)
    grades = grade_completions(samples, problems, grading.timeout_seconds, grading.workers, grading.memory_mb)
    keys = ["problem_id", "sample_index"]
    return samples.merge(grades.drop(columns=["n_steps"]), on=keys, validate="one_to_one")


def score_samples(samples: pd.DataFrame, k: int, checkpoint: str) -> pd.DataFrame:
    return pd.DataFrame([{"checkpoint": checkpoint, **score(samples, k)}])
