"""The flows that deployments run (prefect.yaml): each takes a config path plus overrides,
so a deployment's parameters are plain values a user can edit in the UI, and runs the
pipeline (or an experiment) as a subflow tagged with its model and condition. Run names say
what runs: recipe, condition and date.

    sdfb deploy --pool sdfb-cpu      # register them with a work pool (a worker runs them)
    sdfb serve                       # or serve them from this process, without a worker
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from prefect import flow, tags
from prefect.runtime import flow_run

from flows.experiment import experiment
from flows.pipeline import pipeline
from sdfb.config import load_config
from sdfb.deployments import derived_tags, project_root, run_name, runs_root


def _today() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")


def _recipe_run_name() -> str:
    params = flow_run.parameters
    return run_name(load_config(project_root() / params["config"], params.get("overrides") or []), _today())


def _experiment_run_name() -> str:
    return f"{Path(flow_run.parameters['config']).stem}-{_today()}"


@flow(name="sdfb-run", flow_run_name=_recipe_run_name, log_prints=False)
def run_recipe(config: str, overrides: list[str] | None = None, run_dir: str | None = None) -> str:
    """One recipe (`configs/*.yaml`, relative to the repository or SDFB_HOME) in `run_dir`
    (default `$SDFB_RUNS/<name>`, else runs/<name> in the repository); a rerun after a
    crash resumes from the finished stages."""
    cfg = load_config(project_root() / config, overrides or [])
    target = Path(run_dir or runs_root() / cfg.name).resolve()
    with tags(*derived_tags(cfg)):
        return pipeline.with_options(flow_run_name=run_name(cfg, _today()))(cfg, str(target))


@flow(name="sdfb-experiment-run", flow_run_name=_experiment_run_name, log_prints=False)
def run_experiment(config: str, run_dir: str | None = None) -> str:
    """One experiment YAML (`configs/experiment-*.yaml`) in `run_dir` (default `$SDFB_RUNS/<name>`)."""
    from sdfb.experiment import by_arm, load_experiment, resolve_arms

    exp, recipe = load_experiment(project_root() / config)
    configs = by_arm(resolve_arms(exp, recipe))
    root = Path(run_dir or runs_root() / exp.name).resolve()
    return experiment(exp, configs, str(root))
