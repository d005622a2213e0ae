"""Teacher-context assembly for the configured feedback condition."""

from sdfb.config import RunConfig
from sdfb.contexts import assemble_contexts
from sdfb.models import load_tokenizer
from sdfb.prompts import load_template
from sdfb.stages import ConfigView
from sdfb.store import read_table
from tasks._stage import Inputs, run_stage, stage_task


def _contexts(c: ConfigView, inputs: Inputs, round: int):
    return assemble_contexts(
        **{name: read_table(path) for name, path in inputs.items()},
        condition=c.context.condition,
        template=load_template(c.prompt.template, c.prompt.enable_thinking),
        tokenizer=load_tokenizer(c.model.name_or_path, c.model.trust_remote_code),
        critique_statuses=c.context.critique_statuses,
    )


@stage_task("contexts", "contexts (round {round_index})")
def build_contexts(
    cfg: RunConfig, run_dir: str, round_index: int, problems: str, rollouts: str, grades: str, critiques: str
) -> str:
    inputs = {"problems": problems, "rollouts": rollouts, "grades": grades, "critiques": critiques}
    return run_stage("contexts", cfg, run_dir, inputs, _contexts, round=round_index)
