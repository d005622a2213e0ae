"""Student rollouts with the current policy (base model plus the latest adapter)."""

from pathlib import Path

from sdfb.config import RunConfig
from sdfb.generation import make_generator
from sdfb.prompts import load_template
from sdfb.rollouts import round_rollouts
from sdfb.stages import BASE, ConfigView
from sdfb.store import read_table
from tasks._progress import stage_progress
from tasks._stage import Inputs, run_stage, stage_task


def _rollouts(c: ConfigView, inputs: Inputs, round: int):
    adapter = inputs["adapter"]
    r = c.rollout
    generator = make_generator(c.model, r.engine, r.vllm, c.seed, adapter, r.batch_size)
    policy = Path(adapter).name if adapter else BASE
    template = load_template(c.prompt.template, c.prompt.enable_thinking)
    problems = read_table(inputs["problems"])
    progress = stage_progress(f"round {round} rollouts: {len(problems)} prompts x {r.sampling.n}")
    return round_rollouts(problems, generator, template, r.sampling, c.seed, round, policy, progress)


@stage_task("rollouts", "rollouts (round {round_index})")
def generate_rollouts(
    cfg: RunConfig, run_dir: str, round_index: int, problems: str, adapter: str | None
) -> str:
    inputs = {"problems": problems, "adapter": adapter}
    return run_stage("rollouts", cfg, run_dir, inputs, _rollouts, round=round_index)
