"""The teacher scored by the generation engine before training (distill.teacher_source: engine); an empty
table when the teacher runs inside training or the objective has no teacher (GRPO)."""

from sdfb.config import RunConfig, objective
from sdfb.distill.engine_teacher import COLUMNS, score_teacher
from sdfb.generation import make_generator
from sdfb.stages import ConfigView
from sdfb.store import read_table
from tasks._stage import Inputs, run_stage, stage_task


def _teacher(c: ConfigView, inputs: Inputs, round: int):
    import pandas as pd

    d = c.distill
    if d.teacher_source != "engine" or objective(c.context, d) == "grpo":
        return pd.DataFrame(columns=COLUMNS)
    adapter = inputs["previous"] if d.teacher == "live" else None  # the live teacher as the round starts
    generator = make_generator(
        c.model, c.rollout.engine, c.rollout.vllm, c.seed, adapter, c.rollout.batch_size
    )
    tables = {name: read_table(inputs[name]) for name in ("rollouts", "contexts", "grades")}
    return score_teacher(
        **tables, tokenizer=generator.tokenizer, generator=generator, max_length=d.max_length
    )


@stage_task("teacher", "teacher (round {round_index})")
def score_teacher_task(
    cfg: RunConfig,
    run_dir: str,
    round_index: int,
    rollouts: str,
    contexts: str,
    grades: str,
    previous: str | None,
) -> str:
    inputs = {"rollouts": rollouts, "contexts": contexts, "grades": grades, "previous": previous}
    return run_stage("teacher", cfg, run_dir, inputs, _teacher, round=round_index)
