"""Problem sampling tasks: the fixed eval split and each round's fresh training batch."""

from sdfb import problems, seeds
from sdfb.config import RunConfig
from sdfb.stages import ConfigView
from sdfb.store import read_table
from tasks._stage import Inputs, run_stage, stage_task


def _eval_problems(c: ConfigView, inputs: Inputs):
    frame, dropped = problems.sample_eval(c.data)
    return frame, {"dropped": dropped}


def _round_problems(c: ConfigView, inputs: Inputs, round: int):
    eval_ids = set(read_table(inputs["eval_problems"])["problem_id"])
    seed = seeds.problem_seed(c.data.seed, c.seed, c.data.training_problems == "per_seed")
    frame, dropped = problems.sample_round(c.data, seed, round, eval_ids)
    return problems.check_disjoint(frame, eval_ids), {"dropped": dropped}


@stage_task("sample-eval-problems")
def sample_eval_problems(cfg: RunConfig, run_dir: str) -> str:
    return run_stage("eval_problems", cfg, run_dir, {}, _eval_problems)


@stage_task("sample-problems", "sample-problems (round {round_index})")
def sample_problems(cfg: RunConfig, run_dir: str, round_index: int, eval_problems: str) -> str:
    return run_stage(
        "problems", cfg, run_dir, {"eval_problems": eval_problems}, _round_problems, round=round_index
    )
