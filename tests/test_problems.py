"""Problems: the seeded arithmetic generator, file loaders with a column mapping, and the train/eval split."""

import random

import pandas as pd
import pytest

from sdfb.config import ArithmeticConfig, DataConfig
from sdfb.problems import (
    DataError,
    generate_problem,
    generate_problems,
    load_pools,
    problem_id,
    sample_eval,
    sample_round,
)
from sdfb.prompts import parse_equation

COLUMNS = {"question": "q", "solution": "sol", "answer": "ans"}


def test_generator_is_deterministic_for_a_seed_and_differs_across_seeds():
    cfg = ArithmeticConfig()
    first = generate_problems(10, seed=7, cfg=cfg)
    again = generate_problems(10, seed=7, cfg=cfg)
    other = generate_problems(10, seed=8, cfg=cfg)
    pd.testing.assert_frame_equal(first, again)
    assert len(first) == 10 and first["problem_id"].is_unique
    assert set(first["problem_id"]).isdisjoint(other["problem_id"])


def test_each_problems_steps_chain_from_the_question_to_the_answer():
    cfg = ArithmeticConfig(min_steps=1, max_steps=6, max_value=50)
    rng = random.Random(123)
    for _ in range(200):
        row = generate_problem(rng, cfg)
        equations = [parse_equation(s) for s in row["steps"]]
        assert all(eq is not None and eq.holds() for eq in equations), row["steps"]
        assert 1 <= len(equations) <= 6
        assert f"has {int(equations[0].left)} " in row["question"], row
        for before, after in zip(equations, equations[1:], strict=False):
            assert after.left == before.result, row["steps"]
        assert str(int(equations[-1].result)) == row["answer"], row
        assert row["problem_id"] == problem_id(row["question"])


def test_generated_values_never_go_negative_even_with_subtraction_only():
    cfg = ArithmeticConfig(min_steps=6, max_steps=6, max_value=5, operations=("-",))
    rng = random.Random(0)
    for _ in range(200):
        row = generate_problem(rng, cfg)
        for step in row["steps"]:
            eq = parse_equation(step)
            assert eq.left >= 0 and eq.right >= 0 and eq.result >= 0, row["steps"]
        assert int(row["answer"]) >= 0


def test_problem_id_ignores_whitespace_and_case_but_not_wording():
    base = problem_id("Tom has 5 apples. How many?")
    assert problem_id("  tom HAS 5   apples.\nHow many? ") == base
    assert problem_id("Tom has 6 apples. How many?") != base
    assert len(base) == 16


def test_sample_round_never_returns_an_eval_problem():
    # One step, start 2, add 1 or 2: only 10 names x 10 items x 2 amounts x 3 phrasings = 600 distinct
    # problems, so 200 problems drawn without exclusion almost surely repeat some of the 40 eval problems.
    tiny = ArithmeticConfig(min_steps=1, max_steps=1, max_value=2, operations=("+",))
    cfg = DataConfig(problems_per_round=200, eval_problems=40, arithmetic=tiny)
    evals, _ = sample_eval(cfg)
    eval_ids = set(evals["problem_id"])
    assert len(eval_ids) == 40
    assert eval_ids & set(generate_problems(200, seed=1, cfg=tiny)["problem_id"])
    for round_index in (1, 2, 3):
        train, _ = sample_round(cfg, seed=0, round_index=round_index, eval_ids=eval_ids)
        assert len(train) == 200
        assert eval_ids.isdisjoint(train["problem_id"])
        assert set(train["split"]) == {"train"}


def _write(frame: pd.DataFrame, path):
    if path.suffix == ".parquet":
        frame.to_parquet(path)
    else:
        frame.to_json(path, orient="records", lines=True)
    return path


@pytest.mark.parametrize("suffix, source", [(".parquet", "parquet"), (".jsonl", "jsonl")])
def test_loader_maps_columns_drops_unusable_rows_and_counts_them(tmp_path, suffix, source):
    rows = [
        {"q": f"What is {i} plus {i}?", "sol": f"{i} + {i} = {2 * i}", "ans": str(2 * i), "extra": i}
        for i in range(1, 6)
    ]
    rows += [
        {"q": "   ", "sol": "blank question", "ans": "1", "extra": 0},
        {"q": "Which fruit?", "sol": "a fruit", "ans": "banana", "extra": 0},
        {"q": "WHAT is 1 plus  1?", "sol": "a repeat", "ans": "2", "extra": 0},
    ]
    path = _write(pd.DataFrame(rows), tmp_path / f"train{suffix}")
    cfg = DataConfig(source=source, path=str(path), eval_problems=2, columns=COLUMNS)
    train, evals, dropped = load_pools(cfg, seed=0)
    assert dropped["empty_question"] == 1
    assert dropped["unparseable_answer"] == 1
    assert dropped["duplicate_question"] == 1
    assert len(train) + len(evals) == 5
    assert len(evals) == 2
    loaded = pd.concat([train, evals])
    assert set(loaded.columns) >= {"question", "solution", "answer", "problem_id", "steps"}
    by_question = loaded.set_index("question")
    assert by_question.loc["What is 3 plus 3?", "answer"] == "6"
    assert by_question.loc["What is 3 plus 3?", "solution"] == "3 + 3 = 6"
    assert "Which fruit?" not in by_question.index


def test_gold_answers_are_kept_or_dropped_as_the_grader_would_read_them(tmp_path):
    """LaTeX golds without `$` (which math-verify alone cannot parse), separators and currency are kept;
    golds no grader can read are dropped and counted. The LaTeX ones go through the grading worker pool."""
    answers = ["\\frac{1}{2}", "\\dfrac{3}{4}", "\\sqrt{2}", "1,234", "$5", "x + y = 3", "-7"]
    answers += ["banana", "2**10", "\\boxed{"]
    rows = [{"q": f"Question {i}?", "sol": "", "ans": a} for i, a in enumerate(answers)]
    path = _write(pd.DataFrame(rows), tmp_path / "train.jsonl")
    cfg = DataConfig(source="jsonl", path=str(path), eval_problems=2, columns=COLUMNS)
    train, evals, dropped = load_pools(cfg, seed=0)
    assert dropped["unparseable_answer"] == 3
    assert dropped["answer_parse_timeout"] == 0
    assert sorted(pd.concat([train, evals])["answer"]) == sorted(answers[:7])


@pytest.mark.parametrize("suffix, source", [(".parquet", "parquet"), (".jsonl", "jsonl")])
def test_file_missing_a_mapped_column_names_it_and_lists_the_files_columns(tmp_path, suffix, source):
    path = _write(pd.DataFrame({"q": ["What is 1 plus 1?"], "ans": ["2"]}), tmp_path / f"train{suffix}")
    cfg = DataConfig(source=source, path=str(path), columns=COLUMNS)
    with pytest.raises(DataError) as info:
        load_pools(cfg, seed=0)
    message = str(info.value)
    assert "solution -> 'sol'" in message
    assert "['q', 'ans']" in message
    assert "data.columns" in message


def test_eval_file_questions_are_removed_from_train_and_counted(tmp_path):
    train_rows = [{"q": f"What is {i} plus {i}?", "sol": "", "ans": str(2 * i)} for i in range(1, 8)]
    eval_rows = [
        {"q": "what is 1 plus 1?", "sol": "", "ans": "2"},  # a train question, differently cased
        {"q": "What is 2 plus 2?", "sol": "", "ans": "4"},  # a train question verbatim
        {"q": "What is 100 plus 1?", "sol": "", "ans": "101"},
    ]
    train_path = _write(pd.DataFrame(train_rows), tmp_path / "train.jsonl")
    eval_path = _write(pd.DataFrame(eval_rows), tmp_path / "eval.jsonl")
    cfg = DataConfig(
        source="jsonl", path=str(train_path), eval_path=str(eval_path), eval_problems=3, columns=COLUMNS
    )
    train, evals, dropped = load_pools(cfg, seed=0)
    assert len(evals) == 3
    assert set(train["problem_id"]).isdisjoint(evals["problem_id"])
    assert dropped["train_overlapping_eval"] == 2
    assert len(train) == 5


def test_missing_data_file_raises_data_error_naming_it(tmp_path):
    missing = tmp_path / "absent.parquet"
    cfg = DataConfig(source="parquet", path=str(missing))
    with pytest.raises(DataError, match="does not exist") as info:
        load_pools(cfg, seed=0)
    assert str(missing) in str(info.value)


def test_file_with_too_few_problems_for_the_eval_split_says_what_to_lower(tmp_path):
    path = _write(
        pd.DataFrame({"q": ["What is 1 plus 1?", "What is 2 plus 2?"], "sol": ["", ""], "ans": ["2", "4"]}),
        tmp_path / "t.jsonl",
    )
    cfg = DataConfig(source="jsonl", path=str(path), eval_problems=2, columns=COLUMNS)
    with pytest.raises(DataError, match="data.eval_problems"):
        load_pools(cfg, seed=0)


def test_a_datasets_source_loads_through_datasets_with_the_column_mapping(tmp_path):
    """`source: hf` goes through `datasets.load_dataset`; a local dataset
    folder stands in for a hub id offline."""
    folder = tmp_path / "ds"
    folder.mkdir()
    rows = [
        {"problem": f"What is {i} + {i}?", "worked": f"{i} + {i} = {2 * i}", "final": str(2 * i)}
        for i in range(12)
    ]
    pd.DataFrame(rows).to_json(folder / "train.jsonl", orient="records", lines=True)
    cfg = DataConfig(
        source="hf",
        path=str(folder),
        eval_problems=3,
        columns={"question": "problem", "solution": "worked", "answer": "final"},
    )
    train, evals, _ = load_pools(cfg, seed=0)
    assert len(evals) == 3 and len(train) == 9
    assert not set(train["problem_id"]) & set(evals["problem_id"])
    assert set(evals.columns) >= {"question", "solution", "answer", "problem_id"}
