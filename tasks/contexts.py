"""Teacher-context assembly for the configured feedback condition."""

from pathlib import Path

from prefect import task
from prefect.cache_policies import NONE

from sdfb import schemas
from sdfb.config import RunConfig
from sdfb.contexts import assemble_contexts
from sdfb.models import load_tokenizer
from sdfb.prompts import load_template
from sdfb.runs import RunLayout, stage_key
from sdfb.store import read_table
from tasks._stage import run_stage


@task(name="assemble-contexts", cache_policy=NONE)
def build_contexts(
    cfg: RunConfig, run_dir: str, round_index: int, problems: str, rollouts: str, grades: str, critiques: str
) -> str:
    path = RunLayout(Path(run_dir)).stage(round_index, "contexts")
    inputs = {"problems": problems, "rollouts": rollouts, "grades": grades, "critiques": critiques}
    key = stage_key(cfg, "contexts", inputs)

    def compute():
        tables = {name: read_table(p) for name, p in inputs.items()}
        template = load_template(cfg.prompt.template)
        tokenizer = load_tokenizer(cfg.model.name_or_path)
        return assemble_contexts(
            **tables,
            condition=cfg.context.condition,
            template=template,
            tokenizer=tokenizer,
            critique_statuses=cfg.context.critique_statuses,
        )

    return run_stage("contexts", path, key, schemas.CONTEXTS, compute)
