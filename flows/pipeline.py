"""The sdfb pipeline flow: score the base model (and keep the problems it finds hard, with `data.filter`),
then R rounds of problems -> rollouts -> grades -> critiques -> contexts -> teacher -> distillation,
scoring after the last round (and every `eval.every` rounds); with `until` it stops after that stage of one
round (`sdfb.stages.stop_after`), everything so far written for a rerun to resume.

Run it with `sdfb run --config configs/demo.yaml [--until teacher]`; for a local debug run without the CLI:
    python -m flows.pipeline configs/smoke.yaml /tmp/sdfb-smoke
"""

from __future__ import annotations

import sys
import time

from prefect import flow, get_run_logger

from sdfb.config import RunConfig, load_config
from sdfb.eval_sets import set_names
from sdfb.generation import release_engines
from sdfb.runlock import run_lock
from sdfb.stages import (
    BASE,
    StopAfter,
    StopReached,
    round_name,
    scored_rounds,
    stage_on,
    stop_after,
    switched_off,
)
from tasks._failure import stage_failure
from tasks._gpu import gpu_slot
from tasks.contexts import build_contexts
from tasks.critique import critique
from tasks.distill import distill_round
from tasks.grading import grade_rollouts
from tasks.problems import filter_problems, sample_eval_problems, sample_problems, sample_set_eval_problems
from tasks.rollouts import generate_rollouts
from tasks.scoring import draw_eval_samples, draw_set_eval_samples, write_scores, write_set_scores
from tasks.summary import write_summary
from tasks.teacher import score_teacher_task


@flow(name="sdfb-pipeline", log_prints=False)
def pipeline(
    config: RunConfig,
    run_dir: str,
    started_at: float | None = None,
    keep_engines: bool = False,
    until: str | None = None,
    until_round: int | None = None,
) -> str:
    """Returns the summary's path, or with `until` (a stage name; `until_round`: which round's, see
    `sdfb.stages.stop_after`) the path of that stage's output once it is finished. `keep_engines`: leave
    the vLLM engines running at the end (an experiment's next arm reuses them and the experiment releases
    them); by default they live as long as this flow run."""
    started_at = started_at or time.time()
    stop = stop_after(until, until_round, config.rounds, config.eval.every, switched_off(config))
    # one run per folder (a second stops at once, naming the first's pid); one GPU slot while it runs on a GPU
    with run_lock(run_dir), gpu_slot(get_run_logger()):
        try:
            return _rounds(config, run_dir, started_at, keep_engines, stop)
        except StopReached as reached:
            get_run_logger().info("stopped after %s as asked: %s", reached.stop, reached.path)
            return reached.path
        except Exception as exc:  # the final state names the stage and the reason; the caller still gets exc
            return stage_failure(exc)


_SCORING = ("eval_samples", "scores")  # a checkpoint is scored as one step: the stop comes after its scores


def _rounds(config: RunConfig, run_dir: str, started_at: float, keep_engines: bool, stop: StopAfter) -> str:
    after = stop.check  # raises StopReached once the stop's stage of its round is finished
    try:  # the generation engines live as long as this flow run
        eval_problems = sample_eval_problems(config, run_dir)
        after("eval_problems", 0, eval_problems)
        filtered = None
        if stage_on(config, "filter"):
            filtered = filter_problems(config, run_dir, eval_problems)
            after("filter", 0, filtered)
        set_problems = {name: sample_set_eval_problems(config, run_dir, name) for name in set_names(config)}
        scores = [_score(config, run_dir, BASE, None, eval_problems)]
        set_scores = _score_sets(config, run_dir, BASE, None, set_problems, {})
        after(_SCORING, 0, scores[-1])
        adapter = None
        for r in range(1, config.rounds + 1):
            problems = sample_problems(config, run_dir, r, eval_problems, filtered)
            after("problems", r, problems)
            rollouts = generate_rollouts(config, run_dir, r, problems, adapter)
            after("rollouts", r, rollouts)
            grades = grade_rollouts(config, run_dir, r, rollouts, problems)
            after("grades", r, grades)
            critiques = critique(config, run_dir, r, rollouts, problems, grades)
            after("critiques", r, critiques)
            contexts = build_contexts(config, run_dir, r, problems, rollouts, grades, critiques)
            after("contexts", r, contexts)
            teacher = score_teacher_task(config, run_dir, r, rollouts, contexts, grades, adapter)
            after("teacher", r, teacher)
            adapter = distill_round(config, run_dir, r, rollouts, contexts, grades, teacher, adapter)
            after("distill", r, adapter)
            if r in scored_rounds(config.rounds, config.eval.every):
                scores.append(_score(config, run_dir, round_name(r), adapter, eval_problems))
                _score_sets(config, run_dir, round_name(r), adapter, set_problems, set_scores)
                after(_SCORING, r, scores[-1])
        return write_summary(config, run_dir, scores, started_at, set_scores)
    finally:
        if not keep_engines:
            release_engines()


def _score(config: RunConfig, run_dir: str, checkpoint: str, adapter: str | None, eval_problems: str) -> str:
    """Scores `checkpoint` on the eval split: its eval samples, then their scores."""
    samples = draw_eval_samples(config, run_dir, checkpoint, adapter, eval_problems)
    return write_scores(config, run_dir, checkpoint, samples)


def _score_sets(
    config: RunConfig,
    run_dir: str,
    checkpoint: str,
    adapter: str | None,
    set_problems: dict[str, str],
    set_scores: dict[str, list[str]],
) -> dict[str, list[str]]:
    """Scores `checkpoint` on every eval set (`eval.sets`), adding each scores path to `set_scores`."""
    for name, problems in set_problems.items():
        samples = draw_set_eval_samples(config, run_dir, checkpoint, adapter, problems, eval_set=name)
        path = write_set_scores(config, run_dir, checkpoint, samples, eval_set=name)
        set_scores.setdefault(name, []).append(path)
    return set_scores


def main(cfg: RunConfig, run_dir: str) -> str:
    return pipeline(cfg, run_dir)


if __name__ == "__main__":
    main(load_config(sys.argv[1]), sys.argv[2])
