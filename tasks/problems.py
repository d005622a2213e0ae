"""Problem sampling tasks: the fixed eval split and each round's fresh training batch."""

from pathlib import Path

from prefect import task
from prefect.cache_policies import NONE

from sdfb import problems, schemas
from sdfb.config import RunConfig
from sdfb.runs import RunLayout, stage_key
from sdfb.store import read_table
from tasks._stage import run_stage


@task(name="sample-eval-problems", cache_policy=NONE)
def sample_eval_problems(cfg: RunConfig, run_dir: str) -> str:
    path = RunLayout(Path(run_dir)).eval_problems
    key = stage_key(cfg, "eval_problems", {})

    def compute():
        frame, dropped = problems.sample_eval(cfg.data, cfg.seed)
        return frame, {"dropped": dropped}

    return run_stage("eval_problems", path, key, schemas.PROBLEMS, compute)


@task(name="sample-problems", cache_policy=NONE)
def sample_problems(cfg: RunConfig, run_dir: str, round_index: int, eval_problems: str) -> str:
    path = RunLayout(Path(run_dir)).stage(round_index, "problems")
    key = stage_key(cfg, "problems", {"eval_problems": eval_problems}, round=round_index)

    def compute():
        eval_ids = set(read_table(eval_problems)["problem_id"])
        frame, dropped = problems.sample_round(cfg.data, cfg.seed, round_index, eval_ids)
        assert not set(frame["problem_id"]) & eval_ids, "train and eval problems overlap"
        return frame, {"dropped": dropped}

    return run_stage("problems", path, key, schemas.PROBLEMS, compute)
