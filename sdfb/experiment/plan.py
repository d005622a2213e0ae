"""What an experiment will do before it does it: the stages each seed computes once and shares
between arms (the paired design), the checks that arms claiming to share rollouts really can and
that both splits are large enough to report, the work it implies and the smallest difference it can
detect. Reads only an existing experiment folder."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from sdfb.config import RunConfig, config_hash
from sdfb.datafiles import DataError
from sdfb.experiment.analysis import split_of
from sdfb.experiment.config import ExperimentConfig, ExperimentError
from sdfb.experiment.power import (
    Power,
    Splits,
    expected_splits,
    minimum_detectable_difference,
    per_problem_base_rates,
    problems_needed,
)
from sdfb.problems import sample_eval
from sdfb.stages import BASE, absent_inputs, config_part, output_path, scored_rounds, stage, stage_on
from sdfb.store import verified_manifest

# The first round's stages, in order; later rounds depend on each arm's own adapter and are never shared.
FIRST_ROUND = (
    "eval_problems",
    "filter",
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
    skipped = {*_ADAPTERS, *absent_inputs(cfg)}
    upstream = {k: fingerprint(cfg, k) for k in stage(name).inputs if k not in skipped}
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
    left = _reads(a, name)
    right = _reads(b, name)
    return sorted(k for k in left.keys() | right.keys() if left.get(k) != right.get(k))


@dataclass
class SeedPlan:
    seed: int
    # first-round stage -> groups of arms that share it (none: no arm runs it)
    groups: dict[str, list[list[str]]]

    def shared(self, name: str) -> bool:
        return len(self.groups[name]) < sum(len(g) for g in self.groups[name])


@dataclass
class Plan:
    seeds: list[SeedPlan]
    configs: dict[tuple[str, int], RunConfig]
    work: dict[str, int] = field(default_factory=dict)
    splits: Splits | None = None  # the reference arm's eval problems
    power: Power | None = None


def plan_experiment(
    exp: ExperimentConfig, configs: dict[tuple[str, int], RunConfig], root: Path | str | None = None
) -> Plan:
    """Group each seed's arms by first-round stage; refuse arms that claim shared rollouts
    they cannot have and splits too small to report. `root`, the experiment folder, lends
    measured base rates when it has them."""
    seeds = [_seed_plan(exp, configs, seed) for seed in exp.seeds]
    root = Path(root) if root is not None else None
    splits = {}
    for group in seeds[0].groups["eval_problems"]:  # arms that share eval problems share their splits
        cfg = configs[(group[0], exp.seeds[0])]
        splits |= dict.fromkeys(group, _checked_splits(exp, cfg, group, root))
    found = splits[exp.reference]
    power = plan_power(exp, configs[(exp.reference, exp.seeds[0])], found, root)
    return Plan(seeds, configs, _work(exp, configs, seeds), found, power)


def _seed_plan(exp: ExperimentConfig, configs: dict[tuple[str, int], RunConfig], seed: int) -> SeedPlan:
    arms = {arm.name: configs[(arm.name, seed)] for arm in exp.arms}
    groups = {}
    for name in FIRST_ROUND:
        by_print: dict[str, list[str]] = {}
        for arm, cfg in arms.items():
            if stage_on(cfg, name):  # a stage switched off is neither computed nor shared
                by_print.setdefault(fingerprint(cfg, name), []).append(arm)
        groups[name] = list(by_print.values())
    if exp.shared_rollouts and len(groups["rollouts"]) > 1:
        first = groups["rollouts"][0][0]
        other = groups["rollouts"][1][0]
        keys = differing_keys(arms[first], arms[other], "rollouts")
        raise ExperimentError(
            f"arms {first!r} and {other!r} cannot share first-round rollouts (shared_rollouts: true): they "
            f"differ in {', '.join(keys)}. Move those keys to the experiment's `set`, or set "
            "shared_rollouts: false"
        )
    return SeedPlan(seed, groups)


# --- splits and power
# -----------------------------------------------------------------------------------------------


def _arm_folder(root: Path, arm: str, seed: int) -> Path:
    # the layout of sdfb.experiment.arm_dir, which this module cannot import (the package imports this module)
    return root / f"seed_{seed}" / arm


def eval_problem_ids(cfg: RunConfig, folder: Path | None) -> tuple[list[str], str] | None:
    """The eval problem ids, where they are known before any work: generated (the arithmetic source; pure
    and cheap, the same call the eval_problems stage makes) or read from a finished eval/problems.parquet
    in `folder`. None for a data file no run has read yet: this never reads data files."""
    if cfg.data.source == "arithmetic":
        try:
            frame, _ = sample_eval(cfg.data)
        except DataError as exc:  # the eval_problems stage would fail the same way, after paying for nothing
            raise ExperimentError(f"eval problems: {exc}") from None
        return frame["problem_id"].tolist(), "counted from the generated eval problems"
    path = output_path(folder, "eval_problems") if folder is not None else None
    if path is not None and verified_manifest(path) is not None:
        return pd.read_parquet(path, columns=["problem_id"])["problem_id"].tolist(), f"counted from {path}"
    return None


def split_sizes(cfg: RunConfig, validation_share: float, folder: Path | None) -> Splits:
    """Exact split sizes where the eval problem ids are known, else the expected ones."""
    known = eval_problem_ids(cfg, folder)
    if known is None:
        return expected_splits(cfg.data.eval_problems, validation_share)
    ids, how = known
    validation = sum(split_of(pid, validation_share) == "validation" for pid in ids)
    return Splits(total=len(ids), validation=validation, test=len(ids) - validation, exact=True, how=how)


def _checked_splits(exp: ExperimentConfig, cfg: RunConfig, group: list[str], root: Path | None) -> Splits:
    """The split sizes of the eval problems `group`'s arms share; ExperimentError when either is too small."""
    folder = _arm_folder(root, group[0], exp.seeds[0]) if root is not None else None
    splits = split_sizes(cfg, exp.validation_share, folder)
    whose = "" if len(group) == len(exp.arms) else f"arms {', '.join(group)}: "
    for name, size in (("validation", splits.validation), ("test", splits.test)):
        if size < exp.min_split_problems:
            about = "" if splits.exact else "about "
            raise ExperimentError(
                f"{whose}the {name} split would hold {about}{size} of {splits.total} eval problems "
                f"({splits.how}); at least {exp.min_split_problems} are needed to choose a checkpoint and "
                f"report on it: raise data.eval_problems to {_suggested_total(exp, cfg, splits)} or change "
                f"validation_share ({exp.validation_share}); min_split_problems sets the minimum"
            )
    return splits


def _suggested_total(exp: ExperimentConfig, cfg: RunConfig, splits: Splits) -> int:
    """The fewest eval problems that pass: exactly for generated problems (a longer draw starts with the same
    problems), else from the expected split sizes."""
    expected = problems_needed(exp.validation_share, exp.min_split_problems)
    if cfg.data.source != "arithmetic":
        return max(expected, splits.total + 1)
    try:
        longer, _ = sample_eval(cfg.data.model_copy(update={"eval_problems": 4 * expected}))
    except DataError:  # the generator's settings allow fewer distinct problems: the expected count will do
        return expected
    validation = test = 0
    for total, pid in enumerate(longer["problem_id"], start=1):
        validation += split_of(pid, exp.validation_share) == "validation"
        test = total - validation
        if min(validation, test) >= exp.min_split_problems:
            return total
    return 4 * expected


def measured_base_rates(root: Path, arm: str, seeds: tuple[int, ...]) -> tuple[pd.Series, list[Path]] | None:
    """Per-problem base rates from every finished base scoring of `arm` under the experiment folder (pooled
    over seeds: more samples per problem), with their paths; None when there is none yet."""
    paths = [output_path(_arm_folder(root, arm, seed), "eval_samples", checkpoint=BASE) for seed in seeds]
    paths = [p for p in paths if verified_manifest(p) is not None]
    if not paths:
        return None
    samples = pd.concat([pd.read_parquet(p, columns=["problem_id", "correct"]) for p in paths])
    return per_problem_base_rates(samples), paths


def plan_power(exp: ExperimentConfig, cfg: RunConfig, splits: Splits, root: Path | None) -> Power:
    """The minimum detectable Avg@k difference on the test split over every seed at the
    reference's eval.k: from the reference's measured base rates on the test problems when the
    folder has them, else the configured rate."""
    rates = [exp.base_success_rate]
    assumption = f"base rate {exp.base_success_rate:.2f} configured"
    found = measured_base_rates(root, exp.reference, exp.seeds) if root is not None else None
    if found is not None:
        measured, paths = found
        test = measured[[split_of(pid, exp.validation_share) == "test" for pid in measured.index]]
        if len(test):
            more = f" and {len(paths) - 1} more seeds" if len(paths) > 1 else ""
            rates, assumption = (
                test.to_numpy(),
                f"base rates measured from {paths[0]}{more} ({len(test)} problems)",
            )
    n_seeds = len(exp.seeds)
    k = cfg.eval.k
    difference = minimum_detectable_difference(splits.test, n_seeds, k, rates)
    return Power(difference, splits.test, n_seeds, k, float(sum(rates) / len(rates)), assumption)


def _scored_checkpoints(cfg: RunConfig) -> int:
    return len(scored_rounds(cfg.rounds, cfg.eval.every))


def _work(
    exp: ExperimentConfig, configs: dict[tuple[str, int], RunConfig], seeds: list[SeedPlan]
) -> dict[str, int]:
    """Generations and an upper bound on trained tokens, counting shared first-round work once. Eval sets
    count at most their `problems` (a smaller set scores all it has); the difficulty filter once per seed."""
    work = {"runs": len(configs), "eval_generations": 0, "rollout_generations": 0, "max_trained_tokens": 0}
    work["filter_generations"] = 0
    for plan in seeds:
        for group in plan.groups["filter"]:
            f = configs[(group[0], plan.seed)].data.filter
            work["filter_generations"] += f.candidates * f.samples
        for group in plan.groups["eval_samples"]:  # the base model, on the eval split and each eval set
            cfg = configs[(group[0], plan.seed)]
            work["eval_generations"] += (
                cfg.data.eval_problems + sum(s.problems for s in cfg.eval.sets)
            ) * cfg.eval.k
        for group in plan.groups["rollouts"]:
            cfg = configs[(group[0], plan.seed)]
            work["rollout_generations"] += cfg.data.problems_per_round * cfg.rollout.sampling.n
        for arm in exp.arms:
            cfg = configs[(arm.name, plan.seed)]
            per_round = cfg.data.problems_per_round * cfg.rollout.sampling.n
            per_checkpoint = cfg.data.eval_problems + sum(s.problems for s in cfg.eval.sets)
            work["eval_generations"] += _scored_checkpoints(cfg) * per_checkpoint * cfg.eval.k
            work["rollout_generations"] += per_round * (cfg.rounds - 1)
            work["max_trained_tokens"] += per_round * cfg.rounds * cfg.rollout.sampling.max_new_tokens
    return work
