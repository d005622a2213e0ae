"""Student rollouts with the current policy (base model plus the latest adapter)."""

from pathlib import Path

from prefect import task
from prefect.cache_policies import NONE

from sdfb import schemas
from sdfb.config import RunConfig
from sdfb.generation import make_generator
from sdfb.prompts import load_template
from sdfb.rollouts import sample_rollouts
from sdfb.runs import BASE, RunLayout, stage_key
from sdfb.store import read_table
from tasks._stage import run_stage


@task(name="student-rollouts", cache_policy=NONE)
def generate_rollouts(
    cfg: RunConfig, run_dir: str, round_index: int, problems: str, adapter: str | None
) -> str:
    path = RunLayout(Path(run_dir)).stage(round_index, "rollouts")
    key = stage_key(cfg, "rollouts", {"problems": problems, "adapter": adapter}, round=round_index)

    def compute():
        generator = make_generator(cfg, adapter, cfg.rollout.batch_size)
        sampling = cfg.rollout.sampling.model_copy(
            update={"seed": cfg.rollout.sampling.seed + 1000 * round_index}
        )
        policy = Path(adapter).name if adapter else BASE
        return sample_rollouts(
            read_table(problems), generator, load_template(cfg.prompt.template), sampling, policy
        )

    return run_stage("rollouts", path, key, schemas.ROLLOUTS, compute)
