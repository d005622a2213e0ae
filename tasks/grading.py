"""Grading of student rollouts against the gold answers."""

from sdfb.config import RunConfig
from sdfb.grading import grade_completions
from sdfb.stages import ConfigView
from sdfb.store import read_table
from tasks._stage import Inputs, run_stage, stage_task


def _grades(c: ConfigView, inputs: Inputs, round: int):
    rollouts = read_table(inputs["rollouts"])
    problems = read_table(inputs["problems"])
    g = c.grading
    grades = grade_completions(rollouts, problems, g.timeout_seconds, g.workers, g.memory_mb)
    return grades, {
        "status_counts": grades["status"].value_counts().to_dict(),
        "checks_disagree": int(grades["checks_disagree"].sum()),
    }


@stage_task("grades", "grades (round {round_index})")
def grade_rollouts(cfg: RunConfig, run_dir: str, round_index: int, rollouts: str, problems: str) -> str:
    return run_stage(
        "grades", cfg, run_dir, {"rollouts": rollouts, "problems": problems}, _grades, round=round_index
    )
