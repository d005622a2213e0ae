"""The run folder's layout and what each stage's output depends on (its config sections and inputs).

Pure path arithmetic and hashing; the tasks do the reading and writing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sdfb.config import RunConfig, config_hash
from sdfb.schemas import SCHEMA_VERSION
from sdfb.store import StageKey, output_hash

BASE = "base"
STAGES = ("problems", "rollouts", "grades", "critiques", "contexts")


def round_name(index: int) -> str:
    return f"round_{index:04d}"


@dataclass(frozen=True)
class RunLayout:
    root: Path

    def stage(self, round_index: int, stage: str) -> Path:
        assert stage in STAGES, f"unknown stage {stage!r}"
        return self.root / round_name(round_index) / f"{stage}.parquet"

    def distill_records(self, round_index: int) -> Path:
        return self.root / round_name(round_index) / "distill.parquet"

    def token_records(self, round_index: int) -> Path:
        return self.root / round_name(round_index) / "tokens.parquet"

    def checkpoint(self, round_index: int) -> Path:
        return self.root / "checkpoints" / round_name(round_index)

    @property
    def eval_problems(self) -> Path:
        return self.root / "eval" / "problems.parquet"

    def eval_samples(self, checkpoint: str) -> Path:
        return self.root / "eval" / f"{checkpoint}.parquet"

    def eval_scores(self, checkpoint: str) -> Path:
        return self.root / "eval" / f"{checkpoint}.scores.parquet"

    @property
    def summary(self) -> Path:
        return self.root / "summary.json"


# The config sections each stage reads: changing any other section leaves the stage's output valid.
_SECTIONS = {
    "eval_problems": ("seed", "data"),
    "problems": ("seed", "data"),
    "rollouts": ("seed", "model", "prompt", "rollout"),
    "grades": ("grading",),
    "critiques": ("critic", "grading"),
    "contexts": ("model", "prompt", "context"),
    "distill": ("seed", "model", "distill", "context"),
    "scores": ("seed", "model", "prompt", "grading", "eval"),
}


def stage_key(cfg: RunConfig, stage: str, inputs: dict[str, Path | None], **extra: object) -> StageKey:
    """The key a finished output must match: schema version, relevant config, and the inputs' content hashes."""
    dumped = cfg.model_dump(mode="json")
    section = {name: dumped[name] for name in _SECTIONS[stage]} | {k: str(v) for k, v in extra.items()}
    hashes = {name: (output_hash(Path(p)) if p is not None else "none") for name, p in inputs.items()}
    return StageKey(SCHEMA_VERSION, config_hash(section), hashes)
