"""The stage table: every output a run writes, where it lives, its schema, the config
keys and inputs it depends on. Paths, stage keys and the config a stage's compute may
read are all derived from this one table.

Pure bookkeeping: no reading or writing of tables here (the tasks do that through `sdfb.store`).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from sdfb import schemas
from sdfb.config import RunConfig, config_hash
from sdfb.datafiles import data_file_hashes
from sdfb.store import StageKey, output_hash

BASE = "base"  # the checkpoint name of the untrained model

# Settings that say where a stage's results are reported (trackers) or published (the Hub), or how training is
# watched (health thresholds), not what it computes: left out of every stage key, so turning tracking or
# pushing on, or moving a threshold, in a finished run folder redoes nothing. Also the list of extra eval
# sets: each set's stages are keyed on the set itself (`sdfb.eval_sets`), so adding a set redoes nothing
# already scored.
UNHASHED = (
    "distill.report_to",
    "distill.tracker_project",
    "distill.push_to_hub",
    "distill.hub_token_secret",
    "distill.health",
    "eval.sets",
)


@dataclass(frozen=True)
class Output:
    path: str  # relative to the run folder; {round} and {checkpoint} are filled in
    schema: pa.Schema | None  # None: a folder (model weights)


@dataclass(frozen=True)
class Stage:
    """One stage: its outputs (the first is the main one), the config keys it reads
    (dotted: a section or a key inside one) and the inputs it reads (other stages' outputs,
    `adapter`, `previous`), and its parameters. A stage with a `switch` (a dotted config key) runs only
    while that key is set; when it is not, the stages that read its outputs are passed none."""

    name: str
    outputs: dict[str, Output]
    reads: tuple[str, ...]
    inputs: tuple[str, ...] = ()
    params: tuple[str, ...] = ()
    switch: str | None = None


_ROUND = ("round",)
_GENERATION = ("seed", "model", "prompt")  # what every stage that samples from the policy reads
# The student's engine without its sampling (the filter and the teacher's forward passes run on it), and what
# the teacher stage reads of training: which objective, which weights, how long a sequence.
_ENGINE = ("rollout.engine", "rollout.vllm", "rollout.batch_size")
_TEACHER = ("distill.objective", "distill.teacher", "distill.teacher_source", "distill.max_length")

TABLE: tuple[Stage, ...] = (
    Stage(
        name="eval_problems",
        outputs={"eval_problems": Output("eval/problems.parquet", schemas.PROBLEMS)},
        reads=("data",),
    ),
    Stage(
        name="filter",
        outputs={"filter": Output("filter/problems.parquet", schemas.FILTERED)},
        reads=("data", "model", "prompt", *_ENGINE, "rollout.sampling", "grading"),
        inputs=("eval_problems",),
        switch="data.filter",
    ),
    Stage(
        name="problems",
        outputs={"problems": Output("{round}/problems.parquet", schemas.PROBLEMS)},
        reads=("seed", "data"),
        inputs=("eval_problems", "filter"),
        params=_ROUND,
    ),
    Stage(
        name="rollouts",
        outputs={"rollouts": Output("{round}/rollouts.parquet", schemas.ROLLOUTS)},
        reads=(*_GENERATION, "rollout"),
        inputs=("problems", "adapter"),
        params=_ROUND,
    ),
    Stage(
        name="grades",
        outputs={"grades": Output("{round}/grades.parquet", schemas.GRADES)},
        reads=("grading",),
        inputs=("rollouts", "problems"),
        params=_ROUND,
    ),
    Stage(
        name="critiques",
        outputs={"critiques": Output("{round}/critiques.parquet", schemas.CRITIQUES)},
        reads=("seed", "critic", "grading"),
        inputs=("rollouts", "problems", "grades"),
        params=_ROUND,
    ),
    Stage(
        name="contexts",
        outputs={"contexts": Output("{round}/contexts.parquet", schemas.CONTEXTS)},
        reads=("model.name_or_path", "model.trust_remote_code", "prompt", "context"),
        inputs=("problems", "rollouts", "grades", "critiques"),
        params=_ROUND,
    ),
    Stage(
        name="teacher",
        outputs={"teacher": Output("{round}/teacher.parquet", schemas.TEACHER)},
        reads=("seed", "model", *_ENGINE, "context.condition", *_TEACHER),
        inputs=("rollouts", "contexts", "grades", "previous"),
        params=_ROUND,
    ),
    Stage(
        name="distill",
        outputs={
            "checkpoint": Output("checkpoints/{round}", None),
            "distill": Output("{round}/distill.parquet", schemas.DISTILL),
            "tokens": Output("{round}/tokens.parquet", schemas.TOKENS),
        },
        reads=("seed", "model", "context", "distill"),
        inputs=("rollouts", "contexts", "grades", "teacher", "previous"),
        params=_ROUND,
    ),
    Stage(
        name="eval_samples",
        outputs={"eval_samples": Output("eval/{checkpoint}.parquet", schemas.EVAL_SAMPLES)},
        reads=(*_GENERATION, "rollout.engine", "rollout.vllm", "grading", "eval"),
        inputs=("eval_problems", "adapter"),
        params=("checkpoint",),
    ),
    Stage(
        name="scores",
        outputs={"scores": Output("eval/{checkpoint}.scores.parquet", schemas.SCORES)},
        reads=("eval.k",),
        inputs=("eval_samples",),
        params=("checkpoint",),
    ),
)

STAGES: dict[str, Stage] = {stage.name: stage for stage in TABLE}


def stage_on(cfg: RunConfig, name: str) -> bool:
    """Whether a run with `cfg` runs stage `name`: always, unless the stage has a switch that is unset."""
    switch = stage(name).switch
    return switch is None or bool(_lookup(cfg, switch))


def switched_off(cfg: RunConfig) -> set[str]:
    """The stages a run with `cfg` leaves out: those whose switch is unset (the difficulty filter, when
    data.filter is unset)."""
    return {s.name for s in TABLE if not stage_on(cfg, s.name)}


def absent_inputs(cfg: RunConfig) -> set[str]:
    """The inputs a run with `cfg` passes as none (hashed as none): the outputs of the stages switched off."""
    off = switched_off(cfg)
    return {out for s in TABLE if s.name in off for out in s.outputs}


def round_name(index: int) -> str:
    return f"round_{index:04d}"


def scored_rounds(rounds: int, every: int) -> list[int]:
    """The rounds whose checkpoint is scored: every `every`-th (0: none of them) and always the last."""
    return [r for r in range(1, rounds + 1) if r == rounds or (every and r % every == 0)]


def scored_checkpoints(rounds: int, every: int) -> list[str]:
    """The checkpoints a run of `rounds` rounds scores, base first, in the order they are trained."""
    return [BASE, *(round_name(r) for r in scored_rounds(rounds, every))]


def stage(name: str) -> Stage:
    if name not in STAGES:
        raise KeyError(f"unknown stage {name!r}; the stages are {', '.join(STAGES)}")
    return STAGES[name]


def output_path(root: Path | str, name: str, output: str | None = None, **params: Any) -> Path:
    """Where stage `name` writes `output` (default: its main output) for
    these parameters (round, checkpoint)."""
    spec = stage(name)
    out = spec.outputs[output or next(iter(spec.outputs))]
    fill = {"round": round_name(params["round"])} if "round" in params else {}
    fill |= {"checkpoint": params["checkpoint"]} if "checkpoint" in params else {}
    return Path(root) / out.path.format(**fill)


def summary_path(root: Path | str) -> Path:
    return Path(root) / "summary.json"


def _lookup(cfg: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        cfg = getattr(cfg, part)
    return cfg


def _dump(value: Any) -> Any:
    return value.model_dump(mode="json") if hasattr(value, "model_dump") else value


def config_part(cfg: RunConfig, name: str) -> dict[str, Any]:
    """Exactly the config values stage `name` declares, keyed by their
    dotted names, less the `UNHASHED` ones."""
    part = {key: _dump(_lookup(cfg, key)) for key in stage(name).reads}
    for dotted in UNHASHED:
        part.pop(dotted, None)  # declared on its own
        for declared, value in part.items():  # or inside a declared section
            if dotted.startswith(declared + "."):
                *parents, leaf = dotted.removeprefix(declared + ".").split(".")
                for key in parents:
                    value = value[key]
                value.pop(leaf, None)
    return part


def stage_key(cfg: RunConfig, name: str, inputs: dict[str, Path | str | None], **params: Any) -> StageKey:
    """What a finished output must match: the schema version, the declared config keys, the
    stage's parameters and the content hashes of its declared inputs (missing inputs such
    as a base model's adapter hash as none)."""
    spec = stage(name)
    if set(inputs) != set(spec.inputs) or set(params) != set(spec.params):
        raise ValueError(
            f"stage {name!r} declares inputs {spec.inputs} and parameters {spec.params}, "
            f"got {tuple(inputs)} and {tuple(params)}: update sdfb/stages.py or the caller"
        )
    part = config_part(cfg, name) | {f"param.{k}": str(v) for k, v in sorted(params.items())}
    if "data" in spec.reads and (files := data_file_hashes(cfg.data)):
        part["data.files"] = files
    hashes = {k: (output_hash(Path(p)) if p is not None else "none") for k, p in sorted(inputs.items())}
    return StageKey(schemas.SCHEMA_VERSION, config_hash(part), hashes)


class ConfigView:
    """Read-only access to the config keys one stage declares and nothing else, so a stage's key (built
    from the same declaration) covers everything its compute reads. Reading an undeclared key is an error."""

    def __init__(self, source: Any, allowed: dict[str, Any], stage_name: str, prefix: str = ""):
        self._source = source
        self._allowed = allowed
        self._stage = stage_name
        self._prefix = prefix

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if name not in self._allowed:
            raise AttributeError(
                f"stage {self._stage!r} reads config key {self._prefix + name!r} but does not declare it: "
                "add it to the stage's `reads` in sdfb/stages.py, so a change to it redoes the stage"
            )
        value = getattr(self._source, name)
        sub = self._allowed[name]
        return value if sub is None else ConfigView(value, sub, self._stage, f"{self._prefix}{name}.")

    def __repr__(self) -> str:
        return f"ConfigView({self._stage}: {', '.join(self._allowed)})"


def config_view(cfg: RunConfig, name: str) -> ConfigView:
    """The config as stage `name`'s compute sees it: only its declared sections and keys."""
    tree: dict[str, Any] = {}
    for dotted in stage(name).reads:
        *parents, leaf = dotted.split(".")
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = None  # None: the whole value is readable
    return ConfigView(cfg, tree, name)


class StopReached(Exception):  # noqa: N818 - not an error: the run reached the stage it was asked to stop after
    """Raised by `StopAfter.check` once the run has finished the stage it was asked to stop after."""

    def __init__(self, stop: StopAfter, path: str):
        super().__init__(f"stopped after {stop}")
        self.stop = stop
        self.path = path


@dataclass(frozen=True)
class StopAfter:
    """Where `sdfb run --until STAGE [--until-round N]` stops: right after `stage` of round
    `round`, with every output so far written and its manifest in place, so a rerun without
    `--until` resumes from there. Round 0 is what comes before the first round: the eval problems
    and the base model's scores. `stage=None`: never stops."""

    stage: str | None = None
    round: int = 0

    def check(self, names: str | tuple[str, ...], round_index: int, path: str) -> None:
        """Called as stage(s) `names` of round `round_index` finish with output `path`: raises
        StopReached when that is where the run stops."""
        names = (names,) if isinstance(names, str) else names
        if self.stage in names and round_index == self.round:
            raise StopReached(self, path)

    def __str__(self) -> str:
        return f"{self.stage}" + (f" of round {self.round}" if self.round else "")


def stop_after(
    name: str | None, round_index: int | None, rounds: int, every: int, off: Collection[str] = ()
) -> StopAfter:
    """The validated stop point of a run of `rounds` rounds scored every `every` rounds that leaves out the
    stages `off` (see `switched_off`). `round_index=None`: the first round that has the stage (0 for
    `eval_problems`, `filter` and the base model's `eval_samples`/`scores`, else 1). Raises ValueError
    naming the valid stages, the switch of a stage left out, or the rounds in which the stage runs."""
    if name is None:
        if round_index is not None:
            raise ValueError("--until-round needs --until STAGE")
        return StopAfter()
    if name not in STAGES:
        raise ValueError(f"unknown stage {name!r} for --until; the stages are: {', '.join(STAGES)}")
    if name in off:
        raise ValueError(
            f"--until {name}: this run leaves that stage out (set {STAGES[name].switch} to run it)"
        )
    params = STAGES[name].params
    if "checkpoint" in params:  # scored checkpoints: the base model (round 0) and the scored rounds
        valid = [0, *scored_rounds(rounds, every)]
    elif "round" in params:
        valid = list(range(1, rounds + 1))
    else:
        valid = [0]
    chosen = valid[0] if round_index is None else round_index
    if chosen not in valid:
        raise ValueError(
            f"stage {name!r} runs in round(s) {', '.join(map(str, valid))} of this run (0: before the first "
            f"round), not in round {chosen}: pick one of those with --until-round"
        )
    return StopAfter(name, chosen)
