"""Grading of student rollouts against the gold answers."""

from pathlib import Path

from prefect import task
from prefect.cache_policies import NONE

from sdfb import schemas
from sdfb.config import RunConfig
from sdfb.grading import grade_completions
from sdfb.runs import RunLayout, stage_key
from sdfb.store import read_table
from tasks._stage import run_stage


@task(name="grade-rollouts", cache_policy=NONE)
def grade_rollouts(cfg: RunConfig, run_dir: str, round_index: int, rollouts: str, problems: str) -> str:
    path = RunLayout(Path(run_dir)).stage(round_index, "grades")
    key = stage_key(cfg, "grades", {"rollouts": rollouts, "problems": problems})

    def compute():
        grades = grade_completions(
            read_table(rollouts), read_table(problems), cfg.grading.timeout_seconds, cfg.grading.workers
        )
        return grades, {"status_counts": grades["status"].value_counts().to_dict()}

    return run_stage("grades", path, key, schemas.GRADES, compute)
