"""Pools from files: only the rows a stage draws have their answers read and their gold answers parsed, so a
pool of any size loads in seconds; rows whose gold cannot be read are dropped from the draw and counted."""

import json

import pandas as pd
import pytest

from sdfb import pools
from sdfb.config import DataConfig
from sdfb.problems import problem_id, sample_eval, sample_round

GSM8K_COLUMNS = {"question": "question", "solution": "answer", "answer": "answer"}


def _gsm8k_jsonl(path, n: int, bad: set[int] = frozenset()):
    """`n` rows in GSM8K's own format (`question`, `answer` ending in
    `#### n`); rows in `bad` lack the marker."""
    with open(path, "w") as out:
        for i in range(n):
            tail = "no final line" if i in bad else f"#### {i + 7}"
            question = f"Ann has {i} pens and buys 7 more. How many?"
            row = {"question": question, "answer": f"{i} + 7 = <<{i}+7={i + 7}>>{i + 7}\n{tail}"}
            out.write(json.dumps(row) + "\n")
    return path


@pytest.fixture
def parsed(monkeypatch):
    """Every gold answer handed to the parser."""
    seen: list[str] = []
    real = pools._gold_statuses

    def counting(answers):
        seen.extend(answers)
        return real(answers)

    monkeypatch.setattr(pools, "_gold_statuses", counting)
    return seen


def test_a_100k_row_pool_parses_only_the_golds_of_the_problems_drawn(tmp_path, parsed):
    path = _gsm8k_jsonl(tmp_path / "train.jsonl", 100_000)
    cfg = DataConfig(
        source="jsonl",
        path=str(path),
        columns=GSM8K_COLUMNS,
        answer_extract=True,
        eval_problems=20,
        problems_per_round=32,
    )
    evals, _ = sample_eval(cfg)
    assert len(evals) == 20 and len(parsed) == 20
    eval_ids = set(evals["problem_id"])
    rounds = []
    for round_index in (1, 2):
        parsed.clear()
        train, dropped = sample_round(cfg, seed=0, round_index=round_index, eval_ids=eval_ids)
        assert len(train) == 32 and len(parsed) == 32
        assert sorted(parsed) == sorted(train["answer"])
        rounds.append(set(train["problem_id"]))
    assert not rounds[0] & rounds[1] and not (rounds[0] | rounds[1]) & eval_ids
    # the gold is the number after `####`, and the question's own: Ann's i pens plus 7
    for question, answer in zip(train["question"], train["answer"], strict=True):
        assert int(answer) == int(question.split()[2]) + 7
    assert dropped["train_overlapping_eval"] == 20


def test_the_eval_split_reads_past_unusable_rows_and_a_round_drops_and_counts_them(tmp_path, parsed):
    path = _gsm8k_jsonl(tmp_path / "train.jsonl", 300, bad=set(range(0, 300, 3)))
    cfg = DataConfig(
        source="jsonl",
        path=str(path),
        columns=GSM8K_COLUMNS,
        answer_extract=True,
        eval_problems=30,
        problems_per_round=60,
    )
    evals, dropped = sample_eval(cfg)
    assert len(evals) == 30
    assert len(parsed) == 30 and dropped["missing_answer"] > 0  # rows with no answer never reach the parser
    train, dropped = sample_round(cfg, seed=0, round_index=1, eval_ids=set(evals["problem_id"]))
    bad_ids = {problem_id(f"Ann has {i} pens and buys 7 more. How many?") for i in range(0, 300, 3)}
    assert dropped["missing_answer"] == 60 - len(train) > 0
    assert not set(train["problem_id"]) & bad_ids


def test_a_datasets_source_reads_solutions_only_for_the_rows_drawn(tmp_path, monkeypatch):
    import datasets

    rows = [
        {"problem": f"What is {i} + {i}?", "solution": f"{i} + {i} = {2 * i}", "answer": str(2 * i)}
        for i in range(200)
    ]
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "ds"))
    cfg = DataConfig(
        source="hf",
        path=str(tmp_path / "ds"),
        columns={"question": "problem"},
        eval_problems=5,
        problems_per_round=8,
    )
    taken: list[int] = []
    real = pools.SourceTable.take
    monkeypatch.setattr(pools.SourceTable, "take", lambda self, r, c: taken.extend(r) or real(self, r, c))
    evals, _ = sample_eval(cfg)
    train, _ = sample_round(cfg, seed=1, round_index=1, eval_ids=set(evals["problem_id"]))
    assert len(taken) == 13
    by_question = pd.concat([evals, train]).set_index("question")
    for question, solution in by_question["solution"].items():
        assert solution.startswith(question.removeprefix("What is ").removesuffix("?"))
