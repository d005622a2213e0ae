"""Experiment recipes: one base recipe, named arms (each a set of overrides), seeds and a reference arm,
resolved into one validated RunConfig per arm and seed. Every problem is found before any work starts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sdfb.bootstrap import BOOTSTRAP_RESAMPLES
from sdfb.config import ConfigError, RunConfig, build_config, load_tree
from sdfb.config.loading import merged_tree
from sdfb.experiment.power import MIN_SPLIT_PROBLEMS


class ExperimentError(ValueError):
    """An experiment that cannot run as written; the message names the arm or key and what to change."""


class Arm(BaseModel):
    """One arm: a name and the overrides that make it differ from the others."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="also a folder name")
    set: dict[str, Any] = Field({}, description="dotted key -> value, applied over the experiment's recipe")
    description: str = Field("", description="A note on the arm, for the reader of the file.")


class ExperimentConfig(BaseModel):
    """An experiment file: a base recipe, arms, seeds and the reference arm (docs/experiments.md)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(
        pattern=r"^[A-Za-z0-9_.-]+$", description="The experiment's name: its folder, tracker project."
    )
    recipe: str = Field(description="the base recipe, relative to the experiment file")
    set: dict[str, Any] = Field({}, description="overrides for every arm")
    seeds: tuple[int, ...] = Field((0,), description="Run seeds; every arm runs under each.")
    reference: str = Field(description="the arm every other arm is compared with")
    arms: tuple[Arm, ...] = Field(description="The arms, at least two.")
    shared_rollouts: bool = Field(
        True,
        description="Arms claim to train on the same first-round rollouts (a paired "
        "design): checked before any work starts.",
    )
    validation_share: float = Field(
        0.5,
        gt=0.0,
        lt=1.0,
        description="Share of the eval problems held out to choose each arm's "
        "checkpoint; results are reported on the rest.",
    )
    min_split_problems: int = Field(
        MIN_SPLIT_PROBLEMS,
        ge=1,
        description="Fewer eval problems than this in either split and the plan is "
        "refused (docs/power.md says why 10).",
    )
    base_success_rate: float = Field(
        0.5,
        gt=0.0,
        lt=1.0,
        description="The base model's success rate assumed by the plan's power figure until a base "
        "scoring of the reference arm exists in the experiment folder; then the measured "
        "per-problem rates are used (docs/power.md).",
    )
    bootstrap_resamples: int = Field(
        BOOTSTRAP_RESAMPLES, ge=100, description="Bootstrap resamples behind every interval."
    )

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, seeds: tuple[int, ...]) -> tuple[int, ...]:
        if not seeds or len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds must be a non-empty list of distinct seeds, got {list(seeds)}")
        return seeds

    @model_validator(mode="after")
    def _arms(self) -> ExperimentConfig:
        names = [a.name for a in self.arms]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"arm names must be unique; repeated: {', '.join(repeated)}")
        if len(names) < 2:
            raise ValueError("an experiment needs at least two arms to compare")
        if self.reference not in names:
            raise ValueError(f"reference arm {self.reference!r} is not an arm; arms: {', '.join(names)}")
        return self


def load_experiment(
    path: str | Path, overrides: dict[str, Any] | None = None
) -> tuple[ExperimentConfig, Path]:
    """The experiment in `path` and the path of its base recipe; ExperimentError on anything malformed."""
    path = Path(path)
    try:
        tree = load_tree(path)
    except ConfigError as exc:
        raise ExperimentError(str(exc)) from None
    tree = {**tree, **(overrides or {})}
    try:
        exp = ExperimentConfig.model_validate(tree)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '<root>'}: {e['msg']}" for e in exc.errors())
        raise ExperimentError(f"experiment {path}: {problems}") from None
    recipe = (path.parent / exp.recipe).resolve()
    if not recipe.is_file():
        raise ExperimentError(f"experiment {path}: recipe {exp.recipe!r} not found (looked for {recipe})")
    return exp, recipe


def arm_config(exp: ExperimentConfig, recipe: Path, arm: Arm, seed: int) -> RunConfig:
    """The run config of one arm and seed: the recipe, the experiment's overrides, the arm's, then the
    seed; the trackers' project is the experiment's name unless the recipe or an override names one."""
    try:
        tree = merged_tree(
            merged_tree(load_tree(recipe), exp.set), arm.set
        )  # each level merges into the last
        updates = {"seed": seed, "name": f"{exp.name}-{arm.name}-s{seed}"}
        distill = tree.get("distill")
        if not isinstance(distill, dict) or distill.get("tracker_project") is None:  # arms share one project
            updates["distill.tracker_project"] = exp.name
        return build_config(tree, updates=updates)
    except ConfigError as exc:
        raise ExperimentError(f"arm {arm.name!r} (seed {seed}): {exc}") from None


def resolve_arms(exp: ExperimentConfig, recipe: Path) -> dict[tuple[str, int], RunConfig]:
    """Every arm x seed's config, validated; the first invalid arm stops everything with its name."""
    return {(arm.name, seed): arm_config(exp, recipe, arm, seed) for seed in exp.seeds for arm in exp.arms}


def by_arm(configs: dict[tuple[str, int], RunConfig]) -> dict[str, dict[int, RunConfig]]:
    """`resolve_arms`'s configs nested by arm, then seed: the shape the experiment flow takes, since a Prefect
    parameter must be JSON (no tuple keys)."""
    nested: dict[str, dict[int, RunConfig]] = {}
    for (arm, seed), cfg in configs.items():
        nested.setdefault(arm, {})[seed] = cfg
    return nested


def by_run(configs: dict[str, dict[int, RunConfig]]) -> dict[tuple[str, int], RunConfig]:
    """The inverse of `by_arm`: configs keyed by (arm, seed)."""
    return {(arm, seed): cfg for arm, seeds in configs.items() for seed, cfg in seeds.items()}
