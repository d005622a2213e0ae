"""Dataset presets: what `data.preset` fills in for the datasets this field reports on
(their columns, splits and how the gold answer is read), from a hub id or a local path.
Keys the user sets win over the preset's."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Preset:
    hub_id: str | None  # None: no single public copy; data.path is required
    columns: dict[str, str | None]
    hf_split: str
    hf_eval_split: str | None = None
    hf_config: str | None = None
    answer_extract: bool = False
    notes: str = field(default="", compare=False)


PRESETS: dict[str, Preset] = {
    "gsm8k": Preset(
        hub_id="openai/gsm8k",
        hf_config="main",
        hf_split="train",
        hf_eval_split="test",
        columns={"question": "question", "solution": "answer", "answer": "answer"},
        answer_extract=True,
        notes="the answer ends in a `#### n` line",
    ),
    "math": Preset(
        hub_id=None,
        hf_split="train",
        hf_eval_split="test",
        columns={"question": "problem", "solution": "solution", "answer": "solution"},
        answer_extract=True,
        notes="the answer is the solution's last \\boxed{}",
    ),
    "math500": Preset(
        hub_id="HuggingFaceH4/MATH-500",
        hf_split="test",
        columns={"question": "problem", "solution": "solution", "answer": "answer"},
    ),
    "aime": Preset(
        hub_id="HuggingFaceH4/aime_2024",
        hf_split="train",
        columns={"question": "problem", "solution": None, "answer": "answer"},
    ),
    "openmathreasoning": Preset(
        hub_id="nvidia/OpenMathReasoning",
        hf_split="cot",
        columns={"question": "problem", "solution": "generated_solution", "answer": "expected_answer"},
    ),
}


def source_for(path: str) -> str:
    """A file's format from its name; anything else is a hub id or a
    dataset folder (`datasets` reads both)."""
    if path.endswith((".jsonl", ".json")):
        return "jsonl"
    if path.endswith(".parquet"):
        return "parquet"
    return "hf"


def apply_preset(data: dict[str, Any]) -> dict[str, Any]:
    """`data` (the section as given) with the preset's values under every key it leaves unset."""
    name = data.get("preset")
    if name is None:
        return data
    if name not in PRESETS:
        raise ValueError(f"data.preset {name!r} is not one of {sorted(PRESETS)}")
    preset = PRESETS[name]
    path = data.get("path") or preset.hub_id
    if path is None:
        raise ValueError(
            f"data.preset {name!r} has no public hub copy: set data.path to a local file or folder"
        )
    filled = {
        "path": path,
        "source": source_for(path),
        "columns": preset.columns,
        "answer_extract": preset.answer_extract,
        "hf_config": preset.hf_config if path == preset.hub_id else None,
        "hf_split": preset.hf_split,
    }
    if not data.get("eval_path") and source_for(path) == "hf":
        filled["hf_eval_split"] = preset.hf_eval_split
    if data.get("source") == "arithmetic":
        raise ValueError(f"data.preset {name!r} names a dataset: drop data.source=arithmetic or the preset")
    given = {k: v for k, v in data.items() if v is not None or k not in filled}
    if isinstance(given.get("columns"), dict):  # a partial mapping changes only the columns it names
        given["columns"] = preset.columns | given["columns"]
    return filled | given
