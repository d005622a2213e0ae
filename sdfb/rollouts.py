"""Student rollouts: render each problem's student prompt and sample completions from the current policy.

Takes a generator (any backend); never loads models itself and never re-tokenises completions.
"""

from __future__ import annotations

import pandas as pd

from sdfb.config import SamplingConfig
from sdfb.generation import Generator, Progress
from sdfb.prompts import Template, render_student_prompt
from sdfb.seeds import rollout_seed


def sample_rollouts(
    problems: pd.DataFrame,
    generator: Generator,
    template: Template,
    sampling: SamplingConfig,
    policy_version: str,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """`sampling.n` completions per problem, one row each, with prompt
    and completion token ids and log-probs."""
    prompts = [render_student_prompt(generator.tokenizer, template, q) for q in problems["question"]]
    generations = generator.generate(prompts, sampling, want_logprobs=True, progress=progress)
    rows = []
    for pid, prompt, gen in zip(problems["problem_id"], prompts, generations, strict=True):
        for index, completion in enumerate(gen.completions):
            rows.append(
                {
                    "problem_id": pid,
                    "sample_index": index,
                    "prompt_text": prompt,
                    "prompt_ids": gen.prompt_ids,
                    "completion_ids": completion.token_ids,
                    "completion_text": completion.text,
                    "logprobs": completion.logprobs,
                    "finish_reason": completion.finish_reason,
                    "policy_version": policy_version,
                }
            )
    return pd.DataFrame(rows)


def round_rollouts(
    problems: pd.DataFrame,
    generator: Generator,
    template: Template,
    sampling: SamplingConfig,
    run_seed: int,
    round_index: int,
    policy_version: str,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """Round `round_index`'s rollouts, drawn with the round's seed (`sdfb.seeds.rollout_seed` of the run
    seed), as `distill.run_round` trains from `sdfb.seeds.training_seed` of the same two."""
    seeded = sampling.model_copy(update={"seed": rollout_seed(run_seed, sampling.seed, round_index)})
    return sample_rollouts(problems, generator, template, seeded, policy_version, progress)
