"""Benchmark scoring of a checkpoint on the held-out problems, with a Prefect table artifact;
new scores are also logged to the configured trackers, in the run of the checkpoint's round
(step: the round, 0 for the base model)."""

from prefect.artifacts import create_table_artifact

from sdfb.config import RunConfig
from sdfb.eval_sets import set_config, set_dir
from sdfb.generation import make_generator
from sdfb.prompts import load_template
from sdfb.scoring import sample_and_grade, score_samples
from sdfb.seeds import eval_seed
from sdfb.stages import ConfigView
from sdfb.store import read_table
from sdfb.tracking import checkpoint_round, log_metrics, score_metrics, tracker_run
from tasks._artifacts import artifact_key
from tasks._progress import stage_progress
from tasks._stage import Inputs, compute_stage, run_stage, stage_task


def _eval_samples(c: ConfigView, inputs: Inputs, checkpoint: str):
    generator = make_generator(
        c.model, c.rollout.engine, c.rollout.vllm, c.seed, inputs["adapter"], c.eval.batch_size
    )
    template = load_template(c.prompt.template, c.prompt.enable_thinking)
    problems = read_table(inputs["eval_problems"])
    progress = stage_progress(f"scoring {checkpoint}: {len(problems)} problems x {c.eval.k} samples")
    seed = eval_seed(c.seed, c.eval.sampling.seed)
    return sample_and_grade(problems, generator, template, c.eval, c.grading, checkpoint, progress, seed)


def _scores(c: ConfigView, inputs: Inputs, checkpoint: str):
    return score_samples(read_table(inputs["eval_samples"]), c.eval.k, checkpoint)


def _stage_place(cfg: RunConfig, run_dir: str, eval_set: str | None) -> tuple[RunConfig, str]:
    """The config and folder of the eval split's stages, or of eval set `eval_set`'s."""
    if eval_set is None:
        return cfg, run_dir
    return set_config(cfg, eval_set), str(set_dir(run_dir, eval_set))


@stage_task("eval_samples", "eval_samples ({checkpoint})")
def draw_eval_samples(
    cfg: RunConfig,
    run_dir: str,
    checkpoint: str,
    adapter: str | None,
    eval_problems: str,
    eval_set: str | None = None,
) -> str:
    """`checkpoint`'s graded samples on the eval split, or on eval set `eval_set` (`eval_problems`: the set's
    problems, from `tasks.problems.sample_set_eval_problems`)."""
    stage_cfg, stage_dir = _stage_place(cfg, run_dir, eval_set)
    inputs = {"eval_problems": eval_problems, "adapter": adapter}
    return run_stage("eval_samples", stage_cfg, stage_dir, inputs, _eval_samples, checkpoint=checkpoint)


@stage_task("scores", "scores ({checkpoint})")
def write_scores(
    cfg: RunConfig, run_dir: str, checkpoint: str, eval_samples: str, eval_set: str | None = None
) -> str:
    """Avg@k, Pass@k and Maj@k of `checkpoint` from its eval samples, as a table artifact; scores computed now
    (not reused) also go to the trackers."""
    stage_cfg, stage_dir = _stage_place(cfg, run_dir, eval_set)
    inputs = {"eval_samples": eval_samples}
    scored = compute_stage("scores", stage_cfg, stage_dir, inputs, _scores, checkpoint=checkpoint)
    row = read_table(scored.path).iloc[0].to_dict()
    if scored.computed:  # logged once
        step = checkpoint_round(checkpoint)
        log_metrics(tracker_run(cfg, run_dir, step), score_metrics(row, eval_set), step)
    create_table_artifact(
        key=artifact_key(stage_cfg.name, cfg.context.condition, "scores", checkpoint),
        table=[{k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}],
        description=f"{stage_cfg.name}: Avg@{cfg.eval.k}, "
        f"Pass@{cfg.eval.k}, Maj@{cfg.eval.k} of {checkpoint}",
    )
    return str(scored.path)


# The same tasks, their runs named for the eval set in the UI.
draw_set_eval_samples = draw_eval_samples.with_options(
    task_run_name="eval_samples ({eval_set}, {checkpoint})"
)
write_set_scores = write_scores.with_options(task_run_name="scores ({eval_set}, {checkpoint})")
