"""Bad input, tried systematically: data files a user might really have (invalid UTF-8, broken
JSON, duplicates, missing answers, huge questions, nothing usable, columns of the wrong type, a
file that is not Parquet) each get a message naming the file, the row or column and what to do;
through `sdfb run` the message is one line without a library traceback, and what the run had
already finished is kept byte for byte."""

import json
import math
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from sdfb_process import sdfb_run

from sdfb.config import DataConfig
from sdfb.problems import DataError, load_pools

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = {"question": "q", "solution": "sol", "answer": "ans"}


def _rows(n: int, start: int = 1) -> list[dict]:
    return [
        {"q": f"What is {i} plus {i}?", "sol": f"{i} + {i} = {2 * i}", "ans": str(2 * i)}
        for i in range(start, start + n)
    ]


def _jsonl(path: Path, rows: list[dict], tail: bytes = b"") -> Path:
    path.write_bytes(b"".join(json.dumps(r).encode() + b"\n" for r in rows) + tail)
    return path


def _load(path: Path, source: str = "jsonl", **data):
    return load_pools(
        DataConfig(source=source, path=str(path), eval_problems=2, columns=COLUMNS, **data), seed=0
    )


def test_invalid_utf8_names_the_line_and_byte_and_says_to_resave(tmp_path):
    path = _jsonl(tmp_path / "d.jsonl", _rows(3), tail=b'{"q": "caf\xe9?", "sol": "", "ans": "1"}\n')
    with pytest.raises(
        DataError, match=r"d\.jsonl line 4 is not valid UTF-8 \(byte 0xe9 at column 11\); re-save"
    ):
        _load(path)


def test_a_broken_json_line_is_named_by_its_number(tmp_path):
    path = _jsonl(tmp_path / "d.jsonl", _rows(3), tail=b'{"q": "unterminated\n')
    with pytest.raises(DataError, match=r"line 4 is not valid JSON"):
        _load(path)
    path = _jsonl(tmp_path / "e.jsonl", _rows(2), tail=b"[1, 2]\n")
    with pytest.raises(DataError, match=r"line 3 is a JSON list, not an object of columns"):
        _load(path)


def test_duplicate_questions_are_kept_once_and_counted(tmp_path):
    rows = _rows(5) + [dict(r, sol="another wording of the solution") for r in _rows(2)]
    train, evals, dropped = _load(_jsonl(tmp_path / "d.jsonl", rows))
    assert dropped["duplicate_question"] == 2
    assert len(train) + len(evals) == 5
    assert not pd.concat([train, evals])["problem_id"].duplicated().any()


@pytest.mark.parametrize("source", ["jsonl", "parquet"])
def test_missing_and_nan_answers_are_dropped_and_counted_not_graded_as_empty(tmp_path, source):
    rows = _rows(5) + [
        {"q": "No answer?", "sol": "", "ans": None},
        {"q": "NaN answer?", "sol": "", "ans": math.nan},
    ]
    frame = pd.DataFrame(rows)
    path = tmp_path / f"d.{source}"
    frame.to_parquet(path) if source == "parquet" else _jsonl(path, rows)
    train, evals, dropped = _load(path, source)
    assert dropped["missing_answer"] == 2
    assert set(pd.concat([train, evals])["answer"]) == {str(2 * i) for i in range(1, 6)}


def test_questions_longer_than_the_limit_are_dropped_and_counted(tmp_path):
    rows = _rows(5) + [{"q": "How many? " + "word " * 5000, "sol": "", "ans": "1"}]
    train, evals, dropped = _load(_jsonl(tmp_path / "d.jsonl", rows), max_question_chars=8000)
    assert dropped["question_too_long"] == 1
    assert len(train) + len(evals) == 5


def test_a_file_with_nothing_usable_left_says_why_each_row_went(tmp_path):
    rows = [
        {"q": "", "sol": "", "ans": "1"},
        {"q": "Fruit?", "sol": "", "ans": "banana"},
        {"q": "None?", "sol": "", "ans": None},
    ]
    with pytest.raises(
        DataError,
        match=r"none of its 3 rows is usable \(empty_question 1, missing_answer 1, unparseable_answer 1\)",
    ):
        _load(_jsonl(tmp_path / "d.jsonl", rows))
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(DataError, match=r"empty\.jsonl has no rows"):
        _load(tmp_path / "empty.jsonl")


@pytest.mark.parametrize(
    "column, value, kind",
    [("q", ["a", "list"], "list"), ("q", {"a": 1}, "dict"), ("ans", True, "bool"), ("sol", 3, "int")],
)
def test_a_column_of_the_wrong_type_names_the_column_the_row_and_the_key_to_change(
    tmp_path, column, value, kind
):
    rows = _rows(4)
    rows[2] = dict(rows[2], **{column: value})
    key = {v: k for k, v in COLUMNS.items()}[column]
    with pytest.raises(
        DataError, match=rf"column '{column}' \(data\.columns\.{key}\) holds {kind} values, e\.g\. row 2"
    ):
        _load(_jsonl(tmp_path / "d.jsonl", rows))


def test_numeric_answers_are_text_to_the_grader(tmp_path):
    rows = [dict(r, ans=int(r["ans"])) for r in _rows(4)] + [{"q": "Half?", "sol": "", "ans": 0.5}]
    train, evals, _ = _load(_jsonl(tmp_path / "d.jsonl", rows))
    assert set(pd.concat([train, evals])["answer"]) == {"2", "4", "6", "8", "0.5"}


def test_bytes_in_a_parquet_text_column_and_a_file_that_is_not_parquet_are_refused(tmp_path):
    frame = pd.DataFrame(_rows(4)).assign(q=lambda f: f["q"].str.encode("utf-8"))
    frame.to_parquet(tmp_path / "bytes.parquet")
    with pytest.raises(DataError, match=r"column 'q' \(data\.columns\.question\) holds bytes values"):
        _load(tmp_path / "bytes.parquet", "parquet")
    _jsonl(tmp_path / "rows.parquet", _rows(4))
    with pytest.raises(
        DataError,
        match=r"could not read .*rows\.parquet as Parquet \(.*\); check the file or set data\.source",
    ):
        _load(tmp_path / "rows.parquet", "parquet")


# ---- through `sdfb run`: one line, no traceback, nothing finished lost
# ----------------------------------------


def _sdfb_run(run_dir: Path, data: Path, api_url: str, kill_at: str = "") -> subprocess.CompletedProcess:
    columns = [f"data.columns.{key}={column}" for key, column in COLUMNS.items()]
    return sdfb_run(
        run_dir, api_url, ["data.source=jsonl", f"data.path={data}", "rounds=1", *columns], kill_at
    )


def _snapshot(run_dir: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(run_dir)): p.read_bytes()
        for p in sorted(run_dir.rglob("*"))
        if p.is_file() and p.suffix != ".lock"
    }


@pytest.mark.flow
def test_a_data_file_broken_after_stages_finished_stops_the_rerun_in_one_line_and_keeps_them(
    api_url, tmp_path
):
    data = _jsonl(tmp_path / "data.jsonl", _rows(16))
    run_dir = tmp_path / "run"
    killed = _sdfb_run(run_dir, data, api_url, kill_at="done:problems")
    assert killed.returncode < 0, killed.stderr[-2000:]
    before = _snapshot(run_dir)
    assert any(name.endswith("problems.parquet") for name in before)

    _jsonl(data, _rows(16), tail=b'{"q": "caf\xe9?", "sol": "", "ans": "1"}\n')  # the user edits the file
    result = _sdfb_run(run_dir, data, api_url)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "line 17 is not valid UTF-8" in errors[0]
    assert "finished stages in" in result.stderr
    assert _snapshot(run_dir) == before  # nothing finished was touched, nothing half-written was left


@pytest.mark.flow
def test_a_column_of_the_wrong_type_stops_sdfb_run_before_any_stage_finishes_without_a_traceback(
    api_url, tmp_path
):
    rows = _rows(16)
    rows[5] = dict(rows[5], ans=["6"])
    result = _sdfb_run(tmp_path / "run", _jsonl(tmp_path / "data.jsonl", rows), api_url)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "column 'ans' (data.columns.answer) holds list values" in errors[0]
    assert not list((tmp_path / "run").rglob("*.parquet"))
