"""The sdfb experiment flow: every arm x seed runs the pipeline as a subflow (the UI shows
the tree), sharing the work that does not depend on the arm through each seed's shared
folder; then the analysis and the report.

Run it with `sdfb experiment --config configs/experiment-demo.yaml`.
"""

from __future__ import annotations

import time

from prefect import flow

from flows.pipeline import pipeline
from sdfb.config import RunConfig
from sdfb.experiment import ExperimentConfig, arm_dir, by_run, plan_experiment, shared_dir
from sdfb.generation import release_engines
from sdfb.names import ArmStatus
from sdfb.runlock import run_lock
from sdfb.shared import link_run
from tasks.experiment import analyse_experiment


@flow(name="sdfb-experiment", log_prints=False)
def experiment(exp: ExperimentConfig, configs: dict[str, dict[int, RunConfig]], root: str) -> str:
    """`configs`: each arm x seed's resolved config, by arm, then seed (`sdfb.experiment.by_arm`)."""
    started_at = time.time()
    resolved = by_run(configs)
    plan_experiment(
        exp, resolved
    )  # arms that claim shared rollouts they cannot have stop here, before any work
    outcomes: dict[str, dict] = {arm.name: {"status": ArmStatus.OK, "error": None} for arm in exp.arms}
    with run_lock(root):
        try:  # one engine serves every arm with the same settings (adapters are per request)
            for seed in exp.seeds:
                for arm in exp.arms:
                    error = _run_arm(resolved[(arm.name, seed)], root, arm.name, seed)
                    if error:  # a failed arm does not stop the others; the report says which and why
                        outcomes[arm.name] = {"status": ArmStatus.FAILED, "error": f"seed {seed}: {error}"}
        finally:
            release_engines()
        first = resolved[(exp.arms[0].name, exp.seeds[0])]
        return analyse_experiment(exp, root, outcomes, first.model.name_or_path, first.eval.k, started_at)


def _run_arm(cfg: RunConfig, root: str, arm: str, seed: int) -> str | None:
    folder = arm_dir(root, arm, seed)
    link_run(folder, shared_dir(root, seed))
    run = pipeline.with_options(flow_run_name=f"{arm}-seed{seed}")
    state = run(cfg, str(folder), keep_engines=True, return_state=True)
    return None if state.is_completed() else (state.message or state.name)
