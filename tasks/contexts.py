"""Teacher-context assembly for the configured feedback condition."""

from prefect import task
from prefect.cache_policies import NONE

from sdfb.config import RunConfig
from sdfb.contexts import assemble_contexts
from sdfb.models import load_tokenizer
from sdfb.prompts import load_template
from sdfb.stages import ConfigView
from sdfb.store import read_table
from tasks._failure import remember_failure
from tasks._stage import Inputs, run_stage


def _contexts(c: ConfigView, inputs: Inputs, round: int):
    return assemble_contexts(
        **{name: read_table(path) for name, path in inputs.items()},
        condition=c.context.condition,
        template=load_template(c.prompt.template),
        tokenizer=load_tokenizer(c.model.name_or_path, c.model.trust_remote_code),
        critique_statuses=c.context.critique_statuses,
    )


@task(
    name="assemble-contexts",
    task_run_name="assemble-contexts (round {round_index})",
    cache_policy=NONE,
    on_failure=[remember_failure],
)
def build_contexts(
    cfg: RunConfig, run_dir: str, round_index: int, problems: str, rollouts: str, grades: str, critiques: str
) -> str:
    inputs = {"problems": problems, "rollouts": rollouts, "grades": grades, "critiques": critiques}
    return run_stage("contexts", cfg, run_dir, inputs, _contexts, round=round_index)
