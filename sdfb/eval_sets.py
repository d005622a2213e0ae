"""Several eval sets in one run (`eval.sets`): each set is scored by the same stages as the eval split, in
its own folder under the run, with a config whose data section is the set's. So a set's keys hold exactly
its own data (the run's `eval.sets` is in no stage key: adding a set redoes nothing already scored)."""

from __future__ import annotations

from pathlib import Path

from sdfb import shared
from sdfb.config import RunConfig

SETS_DIR = "eval_sets"


def set_names(cfg: RunConfig) -> list[str]:
    return [s.name for s in cfg.eval.sets]


def set_config(cfg: RunConfig, name: str) -> RunConfig:
    """The run's config with set `name` as its data (drawn from the run's data.seed) and the set in its
    name (its Prefect artifacts and trackers' metrics stay apart from the eval split's)."""
    chosen = {s.name: s for s in cfg.eval.sets}
    if name not in chosen:
        raise KeyError(f"no eval set {name!r}; eval.sets has {', '.join(chosen) or 'none'}")
    return cfg.model_copy(update={"data": chosen[name].as_data(cfg.data.seed), "name": f"{cfg.name}-{name}"})


def set_dir(run_dir: Path | str, name: str) -> Path:
    """The folder set `name`'s stages write to:
    eval_sets/<name>/eval/problems.parquet, .../<checkpoint>.parquet."""
    return Path(run_dir) / SETS_DIR / name


def prepare_set_dir(run_dir: Path | str, name: str) -> Path:
    """Set `name`'s folder, linked to the run's shared folder when the run has one (an
    experiment's arms then score the base model on the set once, as they do on the eval
    split: the keys decide what is shared)."""
    folder = set_dir(run_dir, name)
    root = shared.shared_root(run_dir)
    if root is not None:
        shared.link_run(folder, root)
    else:
        folder.mkdir(parents=True, exist_ok=True)
    return folder
