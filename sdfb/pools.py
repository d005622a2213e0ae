"""Problem pools from files and datasets: cheap checks on every row's question, answers and
solutions read and gold answers parsed only for the rows drawn, so a pool of millions of rows loads
in seconds. No generated problems here.

A round draws a window of the pool's candidates in an order fixed by its seed; rows
whose gold answer cannot be read are dropped from it and counted, so a round holds at
most `data.problems_per_round` problems.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from sdfb.config import DataConfig, GradingConfig
from sdfb.datafiles import DataError, SourceTable, as_text, check_types, open_source
from sdfb.names import GoldStatus

log = logging.getLogger(__name__)

# Gold answers are parsed as grading parses them, in its worker pool under its limits. The data config carries
# no grading settings, and the problem stages must not rerun when grading.* changes, so the defaults are used.
_GOLD_LIMITS = GradingConfig()


def problem_id(question: str) -> str:
    normalised = " ".join(question.lower().split())
    return hashlib.sha256(normalised.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Pool:
    """One split of a source: `candidates` (row, question, problem_id) are its rows with a usable question,
    each question once, in file order; their answers are not read yet."""

    candidates: pd.DataFrame
    table: SourceTable
    origin: str
    dropped: dict[str, int]


def open_pool(cfg: DataConfig, path: str, split: str) -> Pool:
    """Read the question column of `path` (every row), drop empty, overlong
    and repeated questions and count them."""
    table = open_source(path, cfg.source, cfg, split)
    if table.n_rows == 0:
        raise DataError(f"{path} has no rows; check data.path / data.eval_path")
    _check_columns(table, cfg, path)
    column = cfg.columns.question
    frame = table.read([column])
    check_types(frame, {"question": column}, path)
    question = frame[column].map(as_text).astype("string").str.strip()
    dropped = {"empty_question": int((question == "").sum())}
    too_long = question.str.len() > cfg.max_question_chars
    dropped["question_too_long"] = int((too_long & (question != "")).sum())
    keep = ((question != "") & ~too_long).to_numpy()
    out = pd.DataFrame({"row": np.arange(table.n_rows)[keep], "question": question[keep].to_numpy()})
    out = out.assign(problem_id=out["question"].map(problem_id))
    before = len(out)
    out = out.drop_duplicates("problem_id").reset_index(drop=True)
    dropped["duplicate_question"] = before - len(out)
    return Pool(out, table, path, dropped)


def _check_columns(table: SourceTable, cfg: DataConfig, origin: str) -> None:
    missing = [f"{k} -> {v!r}" for k, v in _wanted(cfg).items() if v not in table.columns]
    if missing:
        raise DataError(
            f"{origin} lacks the mapped column(s) {', '.join(missing)}; it has {table.columns}. "
            "Set data.columns.question/solution/answer to its column names (or data.preset)."
        )


def _wanted(cfg: DataConfig) -> dict[str, str]:
    cols = cfg.columns
    wanted = {"question": cols.question, "solution": cols.solution, "answer": cols.answer}
    return {k: v for k, v in wanted.items() if v is not None}


def draw(pool: Pool, rows: pd.DataFrame, cfg: DataConfig) -> tuple[pd.DataFrame, dict[str, int]]:
    """The usable problems among `rows` (rows of `pool.candidates`, in their order):
    their answers and solutions read, gold answers parsed; rows with no answer or one
    no grader can read are dropped and counted."""
    wanted = {k: v for k, v in _wanted(cfg).items() if k != "question"}
    taken = pool.table.take(rows["row"].tolist(), list(dict.fromkeys(wanted.values())))
    check_types(taken, wanted, pool.origin)
    answer = taken[cfg.columns.answer].map(as_text).str.strip()
    if cfg.answer_extract:
        from sdfb.grading import extract_answer

        answer = answer.map(lambda text: (extract_answer(text) or "").strip())
    solution = taken[cfg.columns.solution].map(as_text).str.strip() if cfg.columns.solution else ""
    out = pd.DataFrame(
        {
            "problem_id": rows["problem_id"].to_numpy(),
            "question": rows["question"].to_numpy(),
            "solution": solution if isinstance(solution, str) else solution.to_numpy(),
            "answer": answer.to_numpy(),
        }
    ).astype({"solution": "string", "answer": "string"})
    dropped = {"missing_answer": int((out["answer"] == "").sum())}
    out = out[out["answer"] != ""]
    gold = _gold_statuses(out["answer"])
    dropped["unparseable_answer"] = int((gold == GoldStatus.UNPARSEABLE).sum())
    dropped["answer_parse_timeout"] = int((gold == GoldStatus.TIMEOUT).sum())
    out = out[gold == GoldStatus.OK]
    out = out.assign(steps=[[] for _ in range(len(out))], source=pool.origin)
    return out.reset_index(drop=True), dropped


def _gold_statuses(answers: pd.Series) -> pd.Series:
    """A `GoldStatus` per gold answer (see `sdfb.grading.gold_statuses`)."""
    from sdfb.grading import gold_statuses

    limits = _GOLD_LIMITS
    statuses = gold_statuses(list(answers), limits.timeout_seconds, limits.workers, limits.memory_mb)
    return pd.Series(statuses, index=answers.index, dtype=object)


def first_usable(
    pool: Pool, ordered: pd.DataFrame, n: int, cfg: DataConfig
) -> tuple[pd.DataFrame, dict[str, int], int]:
    """The first `n` usable problems of `ordered` (candidates), how many rows were dropped
    on the way and how many candidates were read: golds are parsed a chunk at a time, each
    chunk as large as what is still missing."""
    parts = []
    dropped = {}
    start = 0
    have = 0
    while have < n and start < len(ordered):
        chunk = ordered.iloc[start : start + (n - have)]
        start += len(chunk)
        usable, chunk_dropped = draw(pool, chunk, cfg)
        parts.append(usable)
        have += len(usable)
        dropped = add_counts(dropped, chunk_dropped)
    frame = pd.concat(parts, ignore_index=True) if parts else ordered.iloc[:0]
    return frame, dropped, start


def add_counts(first: dict[str, int], second: dict[str, int]) -> dict[str, int]:
    return {k: first.get(k, 0) + second.get(k, 0) for k in dict.fromkeys([*first, *second])}


def hash_order(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    """`frame`'s rows in an order fixed by `seed` and each row's problem id (not by the file's order)."""
    keys = frame["problem_id"].map(lambda pid: hashlib.sha256(f"{seed}:{pid}".encode()).hexdigest())
    return frame.assign(_key=keys).sort_values("_key").drop(columns="_key").reset_index(drop=True)


def reasons(dropped: dict[str, int]) -> str:
    return ", ".join(f"{reason} {count}" for reason, count in dropped.items() if count) or "none dropped"


def report_dropped(origin: str, dropped: dict[str, int]) -> None:
    for reason, count in dropped.items():
        if count:
            log.warning("%s: dropped %d rows (%s)", origin, count, reason)


def none_usable(pool: Pool, dropped: dict[str, int]) -> DataError:
    return DataError(
        f"{pool.origin}: none of its {pool.table.n_rows} rows is usable "
        f"({reasons(dropped)}); check data.columns (or data.preset) and that the answer "
        "column holds final answers (or set data.answer_extract)"
    )
