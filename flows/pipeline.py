"""The sdfb pipeline flow: score the base model, then R rounds of problems -> rollouts -> grades -> critiques ->
contexts -> distillation, scoring after the last round (and every `eval.every` rounds).

Run it with `sdfb run --config configs/demo.yaml`; for a local debug run without the CLI:
    python -m flows.pipeline configs/smoke.yaml /tmp/sdfb-smoke
"""

from __future__ import annotations

import sys
import time

from prefect import flow, get_run_logger

from sdfb.config import RunConfig, load_config
from sdfb.generation import release_engines
from sdfb.runlock import run_lock
from sdfb.stages import BASE, round_name, scored_rounds
from tasks._failure import stage_failure
from tasks._gpu import gpu_slot
from tasks.contexts import build_contexts
from tasks.critique import critique
from tasks.distill import distill_round
from tasks.grading import grade_rollouts
from tasks.problems import sample_eval_problems, sample_problems
from tasks.rollouts import generate_rollouts
from tasks.scoring import score_checkpoint
from tasks.summary import write_summary
from tasks.teacher import score_teacher_task


@flow(name="sdfb-pipeline", log_prints=False)
def pipeline(
    config: RunConfig, run_dir: str, started_at: float | None = None, keep_engines: bool = False
) -> str:
    """`keep_engines`: leave the vLLM engines running at the end (an experiment's next arm reuses them and the
    experiment releases them); by default they live as long as this flow run."""
    started_at = started_at or time.time()
    # one run per folder (a second stops at once, naming the first's pid); one GPU slot while it runs on a GPU
    with run_lock(run_dir), gpu_slot(get_run_logger()):
        try:
            return _rounds(config, run_dir, started_at, keep_engines)
        except Exception as exc:  # the final state names the stage and the reason; the caller still gets exc
            return stage_failure(exc)


def _rounds(config: RunConfig, run_dir: str, started_at: float, keep_engines: bool) -> str:
    try:  # the generation engines live as long as this flow run
        eval_problems = sample_eval_problems(config, run_dir)
        scores = [score_checkpoint(config, run_dir, BASE, None, eval_problems)]
        adapter = None
        for r in range(1, config.rounds + 1):
            problems = sample_problems(config, run_dir, r, eval_problems)
            rollouts = generate_rollouts(config, run_dir, r, problems, adapter)
            grades = grade_rollouts(config, run_dir, r, rollouts, problems)
            critiques = critique(config, run_dir, r, rollouts, problems, grades)
            contexts = build_contexts(config, run_dir, r, problems, rollouts, grades, critiques)
            teacher = score_teacher_task(config, run_dir, r, rollouts, contexts, grades, adapter)
            adapter = distill_round(config, run_dir, r, rollouts, contexts, grades, teacher, adapter)
            if r in scored_rounds(config.rounds, config.eval.every):
                scores.append(score_checkpoint(config, run_dir, round_name(r), adapter, eval_problems))
        return write_summary(config, run_dir, scores, started_at)
    finally:
        if not keep_engines:
            release_engines()


def main(cfg: RunConfig, run_dir: str) -> str:
    return pipeline(cfg, run_dir)


if __name__ == "__main__":
    main(load_config(sys.argv[1]), sys.argv[2])
