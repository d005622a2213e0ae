"""Problem sampling tasks: the fixed eval split and each round's fresh training batch."""

from prefect import task
from prefect.cache_policies import NONE

from sdfb import problems
from sdfb.config import RunConfig
from sdfb.stages import ConfigView
from sdfb.store import read_table
from tasks._failure import remember_failure
from tasks._stage import Inputs, run_stage


def _eval_problems(c: ConfigView, inputs: Inputs):
    frame, dropped = problems.sample_eval(c.data, c.seed)
    return frame, {"dropped": dropped}


def _round_problems(c: ConfigView, inputs: Inputs, round: int):
    eval_ids = set(read_table(inputs["eval_problems"])["problem_id"])
    frame, dropped = problems.sample_round(c.data, c.seed, round, eval_ids)
    return problems.check_disjoint(frame, eval_ids), {"dropped": dropped}


@task(
    name="sample-eval-problems",
    task_run_name="sample-eval-problems",
    cache_policy=NONE,
    on_failure=[remember_failure],
)
def sample_eval_problems(cfg: RunConfig, run_dir: str) -> str:
    return run_stage("eval_problems", cfg, run_dir, {}, _eval_problems)


@task(
    name="sample-problems",
    task_run_name="sample-problems (round {round_index})",
    cache_policy=NONE,
    on_failure=[remember_failure],
)
def sample_problems(cfg: RunConfig, run_dir: str, round_index: int, eval_problems: str) -> str:
    return run_stage(
        "problems", cfg, run_dir, {"eval_problems": eval_problems}, _round_problems, round=round_index
    )
