"""The data section: where problems come from (the arithmetic generator, local files, a dataset), how many,
and which seed draws them. Loading and sampling live in `sdfb.problems`."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from sdfb.config.base import _Frozen
from sdfb.config.presets import apply_preset


class ColumnMap(_Frozen):
    """Which columns of a data file hold the question, the reference solution and the answer."""

    question: str = Field("question", description="The column holding the problem statement.")
    solution: str | None = Field(
        "solution",
        description="The column holding a worked reference solution; None: the data has none (AIME).",
    )
    answer: str = Field(
        "answer",
        description="The column holding the gold answer, or text it is "
        "read out of (see data.answer_extract).",
    )


class ArithmeticConfig(_Frozen):
    """The built-in generator's difficulty: multi-step arithmetic word problems with exact step equations."""

    min_steps: int = Field(2, ge=1, le=6, description="Fewest steps in a problem.")
    max_steps: int = Field(3, ge=1, le=6, description="Most steps in a problem.")
    max_value: int = Field(20, ge=2, le=10_000, description="Largest operand.")
    operations: tuple[Literal["+", "-", "*"], ...] = Field(
        ("+", "-", "*"), description="The operations a step may use."
    )

    @model_validator(mode="after")
    def _steps_ordered(self) -> ArithmeticConfig:
        if self.min_steps > self.max_steps:
            raise ValueError(f"min_steps ({self.min_steps}) must not exceed max_steps ({self.max_steps})")
        return self


class FilterConfig(_Frozen):
    """The paper's difficulty filter: the base model samples each candidate training problem `samples` times
    (with rollout.sampling) and only problems it solves fewer than `below` times are trained on."""

    candidates: int = Field(
        256,
        ge=1,
        description="How many training problems are tried, drawn from the pool in "
        "data.seed's order; the rounds then draw from those kept. Raise it when too few "
        "are kept for data.problems_per_round x rounds.",
    )
    samples: int = Field(16, ge=1, description="Samples of the base model per candidate problem.")
    below: int = Field(
        5,
        ge=1,
        description="Keep a problem the base model solves in fewer than this many of its samples.",
    )

    @model_validator(mode="after")
    def _can_keep_something(self) -> FilterConfig:
        if self.below > self.samples:
            raise ValueError(
                f"data.filter.below ({self.below}) above data.filter.samples ({self.samples}) keeps every "
                "problem: lower below or raise samples, or drop data.filter"
            )
        return self


class DataConfig(_Frozen):
    """Where problems come from, how many, and which seed draws them (docs/datasets.md)."""

    preset: Literal["gsm8k", "math", "math500", "aime", "openmathreasoning"] | None = Field(
        None,
        description="Fill source, columns, splits and answer_extract for a known dataset (see "
        "docs/datasets.md); data.path then takes its hub id or a local file or folder "
        "(default: the hub id). Keys set here win.",
    )
    source: Literal["arithmetic", "parquet", "jsonl", "hf"] = Field(
        "arithmetic",
        description="arithmetic: the built-in generator; parquet, jsonl: a local file; hf: a dataset.",
    )
    seed: int = Field(
        0,
        description="Draws the eval problems (and so their validation/test split) whatever the run seed "
        "is, so every seed of an experiment is scored on the same problems.",
    )
    training_problems: Literal["fixed", "per_seed"] = Field(
        "fixed",
        description="fixed: every run seed trains on the problems drawn from data.seed (seeds then "
        "measure sampling and training variance on one curriculum); per_seed: training problems are "
        "drawn from data.seed and the run seed.",
    )
    path: str | None = Field(
        None,
        description="File path (parquet/jsonl) or dataset id (hf) of the "
        "training pool; unused for `arithmetic`.",
    )
    eval_path: str | None = Field(
        None,
        description="Optional separate eval file/dataset; without it the eval split is carved from `path` by "
        "text hash.",
    )
    hf_config: str | None = Field(None, description="hf: the dataset's configuration (subset) name.")
    hf_split: str = Field("train", description="hf: the split the training pool is read from.")
    hf_eval_split: str | None = Field(None, description="hf: the split the eval problems are read from.")
    columns: ColumnMap = ColumnMap()
    answer_extract: bool = Field(
        False,
        description="Read the gold answer out of the answer column's text as the grader reads "
        "a completion's final answer (GSM8K's `#### 72` line, MATH's last `\\boxed{}`); off: "
        "the column holds the answer itself.",
    )
    problems_per_round: int = Field(32, ge=1, description="Fresh training problems per round.")
    eval_problems: int = Field(20, ge=1, description="Held-out problems every checkpoint is scored on.")
    max_question_chars: int = Field(
        8000,
        ge=1,
        description="Questions longer than this (characters) are dropped and counted: a prompt must fit the "
        "model's context.",
    )
    arithmetic: ArithmeticConfig = ArithmeticConfig()
    filter: FilterConfig | None = Field(
        None,
        description="Train only on problems the base model finds hard (the `filter` stage, before the first "
        "round); None: every problem of the pool is a candidate.",
    )

    @model_validator(mode="before")
    @classmethod
    def _fill_from_preset(cls, data: Any) -> Any:
        return apply_preset(dict(data)) if isinstance(data, dict) else data

    @model_validator(mode="after")
    def _path_for_files(self) -> DataConfig:
        if self.source != "arithmetic" and not self.path:
            raise ValueError(f"data.path is required when data.source is {self.source!r}")
        return self


class EvalSetConfig(_Frozen):
    """One more benchmark scored at every scored checkpoint besides the eval split (`eval.sets`), reported
    on its own. Its problems are drawn from data.seed, the same for every run seed."""

    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="Names its folder (eval_sets/<name>/) and its rows in the summary and report.",
    )
    preset: Literal["gsm8k", "math", "math500", "aime", "openmathreasoning"] | None = Field(
        None, description="As data.preset: columns, split and answer reading of a known dataset."
    )
    path: str | None = Field(
        None, description="A hub id, or a local file or dataset folder (default: the preset's)."
    )
    source: Literal["parquet", "jsonl", "hf"] | None = Field(
        None, description="As data.source (default: from path)."
    )
    hf_config: str | None = Field(None, description="As data.hf_config.")
    hf_split: str | None = Field(None, description="The split scored (default: the preset's, else train).")
    columns: ColumnMap | None = Field(None, description="As data.columns (default: the preset's).")
    answer_extract: bool | None = Field(None, description="As data.answer_extract (default: the preset's).")
    problems: int = Field(
        500, ge=1, description="How many of its problems are scored (all, when it has fewer)."
    )

    @model_validator(mode="after")
    def _names_its_data(self) -> EvalSetConfig:
        if self.preset is None and self.path is None:
            raise ValueError(f"eval set {self.name!r} needs a preset or a path")
        self.as_data(0)  # refused now, at load time, rather than when the set is first scored
        return self

    def as_data(self, seed: int) -> DataConfig:
        """The set as a data section whose eval split is the whole of the set's scored split."""
        given = self.model_dump(exclude={"name", "problems"}, exclude_none=True)
        tree = apply_preset(given)
        # the split given, else the preset's test split (GSM8K's test, not its train), else its only one
        split = self.hf_split or tree.get("hf_eval_split") or tree.get("hf_split", "train")
        tree |= {"preset": None, "eval_problems": self.problems, "seed": seed}
        tree |= {"hf_split": split, "hf_eval_split": split}
        if tree.get("source", "hf") != "hf":
            tree["eval_path"] = tree["path"]
        return DataConfig.model_validate(tree)
