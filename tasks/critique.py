"""Critic step-alignment: one critique per rollout."""

from pathlib import Path

from prefect import task
from prefect.cache_policies import NONE

from sdfb import schemas
from sdfb.config import RunConfig
from sdfb.critic import critique_rollouts, make_critic
from sdfb.runs import RunLayout, stage_key
from sdfb.store import read_table
from tasks._stage import run_stage


@task(name="critique-rollouts", cache_policy=NONE)
def critique(cfg: RunConfig, run_dir: str, round_index: int, rollouts: str, problems: str) -> str:
    path = RunLayout(Path(run_dir)).stage(round_index, "critiques")
    key = stage_key(cfg, "critiques", {"rollouts": rollouts, "problems": problems})

    def compute():
        frame = critique_rollouts(read_table(rollouts), read_table(problems), make_critic(cfg.critic.kind))
        return frame, {"case_counts": frame["case"].value_counts().to_dict()}

    return run_stage("critiques", path, key, schemas.CRITIQUES, compute)
