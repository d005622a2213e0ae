"""The deployments in `prefect.yaml`, read and checked before anything is registered:
every deployment's recipe (or experiment) must exist and validate, so a bad one fails
at deploy time with the config's own message.

Prefect's own `prefect deploy --all` reads the same file; `sdfb deploy` adds the checks and the derived
tags. No Prefect here: `cli/deploy.py` turns these specs into Prefect deployments.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sdfb.config import ConfigError, RunConfig, load_config

# The flows a deployment may run (prefect.yaml's `entrypoint`), and what their `config` parameter names.
ENTRYPOINTS = {
    "flows/deployments.py:run_recipe": "recipe",
    "flows/deployments.py:run_experiment": "experiment",
}


def project_root() -> Path:
    """Where a deployed run resolves relative config paths: SDFB_HOME (the images set
    /opt/sdfb), else the checkout this package runs from. A worker's flow runs start in a
    temporary folder, so the working directory will not do."""
    return Path(os.environ.get("SDFB_HOME") or Path(__file__).resolve().parent.parent)


def runs_root() -> Path:
    """Where a deployed run writes when its run_dir parameter is empty: SDFB_RUNS (the images: /runs), else
    <project root>/runs."""
    return Path(os.environ.get("SDFB_RUNS") or project_root() / "runs")


class DeploymentError(ValueError):
    """A deployment in prefect.yaml that cannot run as written; the message names it and what to change."""


@dataclass(frozen=True)
class Schedule:
    cron: str | None = None
    interval: float | None = None  # seconds
    timezone: str = "UTC"
    active: bool = False


@dataclass(frozen=True)
class DeploymentSpec:
    name: str
    entrypoint: str
    parameters: dict[str, Any]
    tags: tuple[str, ...]
    schedules: tuple[Schedule, ...] = ()
    description: str = ""
    work_pool: str | None = None
    job_variables: dict[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return ENTRYPOINTS[self.entrypoint]


def load_deployments(path: Path, root: Path, only: list[str] | None = None) -> list[DeploymentSpec]:
    """The deployments in `path` (all, or those named in `only`), each checked: its
    entrypoint is one of sdfb's flows and its config exists and validates (config paths are
    relative to `root`, where the flows run)."""
    try:
        tree = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise DeploymentError(f"cannot read {path}: {exc}") from None
    entries = (tree or {}).get("deployments") or []
    names = [entry.get("name") for entry in entries]
    unknown = sorted(set(only or []) - set(names))
    if unknown:
        raise DeploymentError(
            f"{path} has no deployment named {', '.join(unknown)}; it has {', '.join(names)}"
        )
    return [_spec(entry, path, root) for entry in entries if not only or entry.get("name") in only]


def _spec(entry: dict[str, Any], path: Path, root: Path) -> DeploymentSpec:
    name = entry.get("name") or "?"
    where = f"deployment {name!r} in {path}"
    entrypoint = entry.get("entrypoint")
    if entrypoint not in ENTRYPOINTS:
        raise DeploymentError(f"{where}: entrypoint {entrypoint!r} is not one of {', '.join(ENTRYPOINTS)}")
    parameters = dict(entry.get("parameters") or {})
    if "config" not in parameters:
        raise DeploymentError(f"{where}: parameters.config is missing; name a recipe, e.g. configs/demo.yaml")
    configs = check_config(
        ENTRYPOINTS[entrypoint], root / parameters["config"], parameters.get("overrides") or [], where
    )
    tags = tuple(dict.fromkeys([*(entry.get("tags") or []), *(t for c in configs for t in derived_tags(c))]))
    return DeploymentSpec(
        name=name,
        entrypoint=entrypoint,
        parameters=parameters,
        tags=tags,
        schedules=tuple(_schedule(s, where) for s in entry.get("schedules") or []),
        description=entry.get("description", ""),
        work_pool=(entry.get("work_pool") or {}).get("name"),
        job_variables=dict((entry.get("work_pool") or {}).get("job_variables") or {}),
    )


def check_config(kind: str, path: Path, overrides: list[str], where: str) -> list[RunConfig]:
    """The recipe (or every arm of the experiment) a deployment runs, validated; DeploymentError
    with the config's own message otherwise."""
    if not path.exists():
        raise DeploymentError(f"{where}: config {path} does not exist; fix parameters.config")
    try:
        if kind == "recipe":
            return [load_config(path, overrides)]
        from sdfb.experiment import ExperimentError, load_experiment, resolve_arms

        try:
            exp, recipe = load_experiment(path)
            return list(resolve_arms(exp, recipe).values())
        except ExperimentError as exc:
            raise ConfigError(str(exc)) from None
    except ConfigError as exc:
        raise DeploymentError(f"{where}: {exc}") from None


def derived_tags(cfg: RunConfig) -> list[str]:
    """Tags that say what runs: the model and the feedback condition."""
    return [f"model:{cfg.model.name_or_path}", f"condition:{cfg.context.condition}"]


def run_name(cfg: RunConfig, date: str) -> str:
    """A flow run's name: recipe, condition and date, e.g. `demo-step_aligned-2026-11-29`."""
    return f"{cfg.name}-{cfg.context.condition}-{date}"


def _schedule(entry: dict[str, Any], where: str) -> Schedule:
    if not isinstance(entry, dict) or ("cron" in entry) == ("interval" in entry):
        raise DeploymentError(f"{where}: each schedule needs exactly one of cron or interval, got {entry!r}")
    return Schedule(
        cron=entry.get("cron"),
        interval=float(entry["interval"]) if "interval" in entry else None,
        timezone=entry.get("timezone", "UTC"),
        active=bool(entry.get("active", False)),  # off unless the file turns it on
    )
