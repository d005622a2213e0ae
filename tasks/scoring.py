"""Benchmark scoring of a checkpoint on the held-out problems, with a Prefect table artifact."""

from pathlib import Path

from prefect import task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NONE

from sdfb import schemas
from sdfb.config import RunConfig
from sdfb.generation import make_generator
from sdfb.prompts import load_template
from sdfb.runs import RunLayout, stage_key
from sdfb.scoring import sample_and_grade, score_samples
from sdfb.store import read_table
from tasks._stage import run_stage


@task(name="score-checkpoint", cache_policy=NONE)
def score_checkpoint(
    cfg: RunConfig, run_dir: str, checkpoint: str, adapter: str | None, eval_problems: str
) -> str:
    layout = RunLayout(Path(run_dir))
    key = stage_key(
        cfg, "scores", {"eval_problems": eval_problems, "adapter": adapter}, checkpoint=checkpoint
    )
    samples_path, scores_path = layout.eval_samples(checkpoint), layout.eval_scores(checkpoint)

    def sample():
        generator = make_generator(cfg, adapter, cfg.eval.batch_size)
        template = load_template(cfg.prompt.template)
        return sample_and_grade(
            read_table(eval_problems), generator, template, cfg.eval, cfg.grading, checkpoint
        )

    run_stage("eval_samples", samples_path, key, schemas.EVAL_SAMPLES, sample)
    run_stage(
        "scores", scores_path, key, schemas.SCORES,
        lambda: score_samples(read_table(samples_path), cfg.eval.k, checkpoint),
    )  # fmt: skip
    row = read_table(scores_path).iloc[0].to_dict()
    create_table_artifact(
        key=f"{cfg.name}-{checkpoint}".lower().replace("_", "-"),
        table=[{k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}],
        description=f"{cfg.name}: Avg@{cfg.eval.k}, Pass@{cfg.eval.k}, Maj@{cfg.eval.k} of {checkpoint}",
    )
    return str(scores_path)
