"""Reading the problem files a user points to (Parquet, JSONL, a Hugging Face dataset) into a frame, and refusing
what cannot be used with a message naming the file, line or column and what to do. No filtering: see problems."""

from __future__ import annotations

import json
import math
from decimal import Decimal
from pathlib import Path

import pandas as pd

from sdfb.config import DataConfig


class DataError(ValueError):
    """A dataset that cannot be used as configured; the message says which file/column and what to do."""


def read_source(path: str, source: str, cfg: DataConfig, split: str) -> pd.DataFrame:
    if source == "hf":
        try:
            import datasets
        except ImportError:
            raise DataError("data.source 'hf' needs the datasets package: pip install 'sdfb[hf]'") from None
        try:
            return datasets.load_dataset(path, cfg.hf_config, split=split).to_pandas()
        except Exception as exc:  # datasets raises many types; the boundary names the dataset and the fix
            raise DataError(
                f"could not load Hugging Face dataset {path!r} (split {split!r}): {exc}"
            ) from None
    file = Path(path)
    if not file.is_file():
        raise DataError(f"data file {file} does not exist; check data.path / data.eval_path")
    if source == "jsonl":
        return _read_jsonl(file)
    try:
        return pd.read_parquet(file)
    except Exception as exc:  # pyarrow raises several types; the boundary names the file and the format
        raise DataError(
            f"could not read {file} as Parquet ({type(exc).__name__}: {exc}); check the file or set data.source"
        ) from None


def _read_jsonl(file: Path) -> pd.DataFrame:
    """One JSON object per line, read line by line so an error names its line."""
    records = []
    for number, raw in enumerate(file.read_bytes().splitlines(), start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(
                f"{file} line {number} is not valid UTF-8 (byte {raw[exc.start]:#04x} at column {exc.start + 1}); "
                "re-save the file as UTF-8"
            ) from None
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(
                f"{file} line {number} is not valid JSON ({exc.msg}, column {exc.colno})"
            ) from None
        if not isinstance(record, dict):
            raise DataError(
                f"{file} line {number} is a JSON {type(record).__name__}, not an object of columns"
            )
        records.append(record)
    return pd.DataFrame.from_records(records)


# Values a text column may hold: text, and for answers also plain numbers (a gold answer of 42 is "42").
_TEXT = (str,)
_ANSWER = (str, int, float, Decimal)


def check_types(frame: pd.DataFrame, wanted: dict[str, str], origin: str) -> None:
    """Refuse columns whose values are not text (lists, dicts, bytes, booleans): naming the first bad value."""
    for key, column in wanted.items():
        allowed = _ANSWER if key == "answer" else _TEXT
        values = frame[column]
        bad = values.map(lambda v, allowed=allowed: not (_missing(v) or _is(v, allowed)))
        if bad.any():
            row = int(bad.to_numpy().nonzero()[0][0])
            value = values.iloc[row]
            raise DataError(
                f"{origin}: column {column!r} (data.columns.{key}) holds {type(value).__name__} values, e.g. row "
                f"{row}: {str(value)[:60]!r}; it must hold text. Convert the column, or map data.columns.{key} "
                "to a text column"
            )


def as_text(value) -> str:
    """A cell as text; numbers as written (a column mixing 6 and 0.5 is read as floats: 6.0 is "6")."""
    if _missing(value):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


def _is(value, allowed: tuple[type, ...]) -> bool:
    return isinstance(value, allowed) and not isinstance(value, bool)
