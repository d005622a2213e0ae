"""What an experiment will do before it does it: the stages each seed computes once and shares between arms (the
paired design), the checks that arms claiming to share rollouts really can, and the work it implies."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sdfb.config import RunConfig, config_hash
from sdfb.experiment.config import ExperimentConfig, ExperimentError
from sdfb.stages import config_part, scored_rounds, stage

# The first round's stages, in order; later rounds depend on each arm's own adapter and are never shared.
FIRST_ROUND = (
    "eval_problems",
    "eval_samples",
    "scores",
    "problems",
    "rollouts",
    "grades",
    "critiques",
    "contexts",
)
_ADAPTERS = ("adapter", "previous")  # none for the base checkpoint and the first round


def fingerprint(cfg: RunConfig, name: str) -> str:
    """The config half of stage `name`'s key in the first round (or for the base checkpoint), with the
    fingerprints of the stages it reads: equal fingerprints mean equal outputs to share."""
    upstream = {k: fingerprint(cfg, k) for k in stage(name).inputs if k not in _ADAPTERS}
    return config_hash({"config": config_part(cfg, name), "inputs": upstream})


def _flat(part: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for key, value in part.items():
        if isinstance(value, dict):
            out |= _flat(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = value
    return out


def _reads(cfg: RunConfig, name: str) -> dict[str, Any]:
    """Every config value stage `name` and the stages before it read, flattened to dotted keys."""
    values = _flat(config_part(cfg, name))
    for upstream in stage(name).inputs:
        if upstream not in _ADAPTERS:
            values |= _reads(cfg, upstream)
    return values


def differing_keys(a: RunConfig, b: RunConfig, name: str) -> list[str]:
    left, right = _reads(a, name), _reads(b, name)
    return sorted(k for k in left.keys() | right.keys() if left.get(k) != right.get(k))


@dataclass
class SeedPlan:
    seed: int
    groups: dict[str, list[list[str]]]  # first-round stage -> groups of arms that share it

    def shared(self, name: str) -> bool:
        return len(self.groups[name]) < sum(len(g) for g in self.groups[name])


@dataclass
class Plan:
    seeds: list[SeedPlan]
    configs: dict[tuple[str, int], RunConfig]
    work: dict[str, int] = field(default_factory=dict)


def plan_experiment(exp: ExperimentConfig, configs: dict[tuple[str, int], RunConfig]) -> Plan:
    """Group each seed's arms by first-round stage; refuse arms that claim shared rollouts they cannot have."""
    seeds = []
    for seed in exp.seeds:
        arms = {arm.name: configs[(arm.name, seed)] for arm in exp.arms}
        groups = {}
        for name in FIRST_ROUND:
            by_print: dict[str, list[str]] = {}
            for arm, cfg in arms.items():
                by_print.setdefault(fingerprint(cfg, name), []).append(arm)
            groups[name] = list(by_print.values())
        if exp.shared_rollouts and len(groups["rollouts"]) > 1:
            first, other = groups["rollouts"][0][0], groups["rollouts"][1][0]
            keys = differing_keys(arms[first], arms[other], "rollouts")
            raise ExperimentError(
                f"arms {first!r} and {other!r} cannot share first-round rollouts (shared_rollouts: true): they "
                f"differ in {', '.join(keys)}. Move those keys to the experiment's `set`, or set "
                "shared_rollouts: false"
            )
        seeds.append(SeedPlan(seed, groups))
    return Plan(seeds, configs, _work(exp, configs, seeds))


def _scored_checkpoints(cfg: RunConfig) -> int:
    return len(scored_rounds(cfg.rounds, cfg.eval.every))


def _work(
    exp: ExperimentConfig, configs: dict[tuple[str, int], RunConfig], seeds: list[SeedPlan]
) -> dict[str, int]:
    """Generations and an upper bound on trained tokens, counting shared first-round work once."""
    work = {"runs": len(configs), "eval_generations": 0, "rollout_generations": 0, "max_trained_tokens": 0}
    for plan in seeds:
        for group in plan.groups["eval_samples"]:
            cfg = configs[(group[0], plan.seed)]
            work["eval_generations"] += cfg.data.eval_problems * cfg.eval.k
        for group in plan.groups["rollouts"]:
            cfg = configs[(group[0], plan.seed)]
            work["rollout_generations"] += cfg.data.problems_per_round * cfg.rollout.sampling.n
        for arm in exp.arms:
            cfg = configs[(arm.name, plan.seed)]
            per_round = cfg.data.problems_per_round * cfg.rollout.sampling.n
            work["eval_generations"] += _scored_checkpoints(cfg) * cfg.data.eval_problems * cfg.eval.k
            work["rollout_generations"] += per_round * (cfg.rounds - 1)
            work["max_trained_tokens"] += per_round * cfg.rounds * cfg.rollout.sampling.max_new_tokens
    return work
