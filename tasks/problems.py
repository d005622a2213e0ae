"""Problem sampling tasks: the fixed eval split, the difficulty
filter's candidates, and each round's batch."""

from sdfb import difficulty, problems, seeds
from sdfb.config import EvalConfig, RunConfig
from sdfb.eval_sets import prepare_set_dir, set_config
from sdfb.generation import make_generator
from sdfb.prompts import load_template
from sdfb.scoring import sample_and_grade
from sdfb.stages import BASE, ConfigView
from sdfb.store import read_table
from tasks._progress import stage_progress
from tasks._stage import Inputs, run_stage, stage_task, task_logger


def _eval_problems(c: ConfigView, inputs: Inputs):
    frame, dropped = problems.sample_eval(c.data)
    return frame, {"dropped": dropped}


def _filter(c: ConfigView, inputs: Inputs):
    f = c.data.filter
    eval_ids = set(read_table(inputs["eval_problems"])["problem_id"])
    candidates, dropped = problems.sample_candidates(c.data, f.candidates, eval_ids)
    seed = seeds.filter_seed(c.data.seed, c.rollout.sampling.seed)
    generator = make_generator(c.model, c.rollout.engine, c.rollout.vllm, seed, None, c.rollout.batch_size)
    template = load_template(c.prompt.template, c.prompt.enable_thinking)
    sampling = EvalConfig(k=f.samples, sampling=c.rollout.sampling, batch_size=c.rollout.batch_size)
    progress = stage_progress(f"difficulty filter: {len(candidates)} problems x {f.samples} samples")
    graded = sample_and_grade(candidates, generator, template, sampling, c.grading, BASE, progress, seed)
    frame = difficulty.solve_counts(candidates, graded, f.below)
    return frame, {"dropped": dropped, "kept": int(frame["kept"].sum()), "candidates": len(frame)}


def _round_problems(c: ConfigView, inputs: Inputs, round: int):
    eval_ids = set(read_table(inputs["eval_problems"])["problem_id"])
    seed = seeds.problem_seed(c.data.seed, c.seed, c.data.training_problems == "per_seed")
    if inputs["filter"] is None:
        frame, dropped = problems.sample_round(c.data, seed, round, eval_ids)
    else:
        f = c.data.filter
        kept = difficulty.kept_problems(read_table(inputs["filter"]), f.below, f.samples)
        if len(kept) < c.data.problems_per_round:
            task_logger().warning(
                "the difficulty filter kept %d problems, fewer than data.problems_per_round=%d: every round "
                "trains on all of them (raise data.filter.candidates for fresh problems each round)",
                len(kept),
                c.data.problems_per_round,
            )
        frame = problems.sample_round_from(kept, c.data.problems_per_round, seed, round)
        dropped = {}
    return problems.check_disjoint(frame, eval_ids), {"dropped": dropped}


@stage_task("eval_problems")
def sample_eval_problems(cfg: RunConfig, run_dir: str) -> str:
    return run_stage("eval_problems", cfg, run_dir, {}, _eval_problems)


@stage_task("eval_problems", "eval_problems ({eval_set})")
def sample_set_eval_problems(cfg: RunConfig, run_dir: str, eval_set: str) -> str:
    """The problems of eval set `eval_set` (`eval.sets`), in the set's own folder."""
    set_cfg = set_config(cfg, eval_set)
    folder = str(prepare_set_dir(run_dir, eval_set))
    return run_stage("eval_problems", set_cfg, folder, {}, _eval_problems)


@stage_task("filter")
def filter_problems(cfg: RunConfig, run_dir: str, eval_problems: str) -> str:
    """The difficulty filter (`data.filter`): the base model's solve counts on the candidate problems."""
    return run_stage("filter", cfg, run_dir, {"eval_problems": eval_problems}, _filter)


@stage_task("problems", "problems (round {round_index})")
def sample_problems(
    cfg: RunConfig, run_dir: str, round_index: int, eval_problems: str, filtered: str | None = None
) -> str:
    inputs = {"eval_problems": eval_problems, "filter": filtered}
    return run_stage("problems", cfg, run_dir, inputs, _round_problems, round=round_index)
