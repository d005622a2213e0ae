"""Which outputs of a run folder are finished under a config: a stage's outputs, and the stages upstream of
one that a flow run would compute (again). Reads manifests only; computes and writes nothing.

Used by the task layer (skip or compute) and by the CLI (`sdfb train-round` refuses a round whose inputs
are not finished), so both answer from the same stage table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sdfb.config import RunConfig
from sdfb.stages import absent_inputs, output_path, stage, stage_key
from sdfb.store import is_finished

Inputs = dict[str, str | None]


def finished(name: str, cfg: RunConfig, run_dir: str, inputs: Inputs, **params: Any) -> bool:
    """True when every output of stage `name` is finished under the current key (multi-output stages)."""
    key = stage_key(cfg, name, inputs, **params)
    return all(is_finished(output_path(run_dir, name, out, **params), key) for out in stage(name).outputs)


def stage_paths(name: str, run_dir: str, **params: Any) -> dict[str, Path]:
    """Every output of stage `name`, by output name."""
    return {out: output_path(run_dir, name, out, **params) for out in stage(name).outputs}


def flow_inputs(cfg: RunConfig, name: str, round_index: int) -> dict[str, tuple[str, int] | None]:
    """Which stage, of which round, produces each input the flow passes stage `name` of round
    `round_index`: the previous round's checkpoint for `adapter` and `previous` (none in round 1), the
    difficulty filter only when `data.filter` is on, else the stage of that name."""
    producers: dict[str, tuple[str, int] | None] = {}
    absent = absent_inputs(cfg)
    for inp in stage(name).inputs:
        if inp in ("adapter", "previous"):
            producers[inp] = ("distill", round_index - 1) if round_index > 1 else None
        elif inp in absent:
            producers[inp] = None
        else:  # a stage without rounds (eval_problems) is the same output for every round
            producers[inp] = (inp, round_index if "round" in stage(inp).params else 0)
    return producers


def _round_params(name: str, round_index: int) -> dict[str, int]:
    return {"round": round_index} if "round" in stage(name).params else {}


def unfinished_inputs(cfg: RunConfig, run_dir: str, name: str, round_index: int) -> list[str]:
    """The stages upstream of stage `name` of round `round_index` that a flow run with `cfg` would compute
    (again): outputs missing, or finished under another config or other inputs. Labelled 'stage (round N)'."""
    ready: dict[tuple[str, int], bool] = {}

    def check(producer: str, r: int) -> bool:
        if (producer, r) not in ready:
            inputs = {}
            ok = True
            for inp, source in flow_inputs(cfg, producer, r).items():
                ok = (source is None or check(*source)) and ok
                inputs[inp] = (
                    None if source is None else str(output_path(run_dir, source[0], **_round_params(*source)))
                )
            ready[producer, r] = ok and finished(producer, cfg, run_dir, inputs, **_round_params(producer, r))
        return ready[producer, r]

    for source in flow_inputs(cfg, name, round_index).values():
        if source is not None:
            check(*source)
    return [f"{s} (round {r})" if _round_params(s, r) else s for (s, r), ok in ready.items() if not ok]
