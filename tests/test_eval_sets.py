"""Several eval sets in one run (`eval.sets`): a set's data section, its refusals, and a real
flow run on the tiny model scoring the eval split plus a GSM8K folder and a MATH-500 Parquet
file (fixtures in their own formats, saved with `datasets`), each reported on its own; a set
added later redoes nothing already scored."""

import json
from pathlib import Path

import datasets
import pandas as pd
import pytest

from sdfb import stages
from sdfb.config import build_config, load_config
from sdfb.eval_sets import set_config, set_dir
from sdfb.store import manifest_path, read_table

ROOT = Path(__file__).resolve().parents[1]
GSM8K = [
    {"question": f"Ann has {i} pens and buys 3 more. How many?", "answer": f"{i}+3={i + 3}\n#### {i + 3}"}
    for i in range(12)
]
MATH500 = [
    {"problem": f"Compute ${i}+{i}$.", "solution": f"$\\boxed{{{2 * i}}}$", "answer": str(2 * i), "level": 1}
    for i in range(1, 9)
]


def _sets(tmp_path: Path) -> list[dict]:
    folder = tmp_path / "gsm8k"
    splits = {"train": datasets.Dataset.from_list(GSM8K[:8]), "test": datasets.Dataset.from_list(GSM8K[8:])}
    datasets.DatasetDict(splits).save_to_disk(str(folder))
    datasets.Dataset.from_list(MATH500).to_parquet(str(tmp_path / "math500.parquet"))
    return [
        {"name": "gsm8k", "preset": "gsm8k", "path": str(folder), "problems": 3},
        {"name": "math500", "preset": "math500", "path": str(tmp_path / "math500.parquet"), "problems": 50},
    ]


def test_a_set_scores_the_test_split_of_its_preset_and_all_of_a_small_file(tmp_path):
    cfg = build_config({"eval": {"sets": _sets(tmp_path)}, "data": {"seed": 7}})
    gsm = set_config(cfg, "gsm8k")
    assert (gsm.data.hf_split, gsm.data.hf_eval_split, gsm.data.answer_extract) == ("test", "test", True)
    assert gsm.data.eval_problems == 3 and gsm.data.seed == 7 and gsm.name == "sdfb-gsm8k"
    math = set_config(cfg, "math500").data
    assert (math.source, math.eval_path, math.columns.question) == ("parquet", math.path, "problem")
    with pytest.raises(KeyError, match="no eval set 'aime'; eval.sets has gsm8k, math500"):
        set_config(cfg, "aime")


def test_sets_are_refused_at_load_time_without_data_or_with_one_name_twice(tmp_path):
    with pytest.raises(Exception, match="needs a preset or a path"):
        build_config({"eval": {"sets": [{"name": "x"}]}})
    twice = [{"name": "a", "preset": "math500"}, {"name": "a", "preset": "aime"}]
    with pytest.raises(Exception, match="names must differ"):
        build_config({"eval": {"sets": twice}})


def test_an_edited_dataset_folder_changes_the_keys_of_the_stages_that_read_it(tmp_path):
    sets = _sets(tmp_path)
    cfg = set_config(build_config({"eval": {"sets": sets}}), "gsm8k")
    before = stages.stage_key(cfg, "eval_problems", {})
    rows = [{**GSM8K[0], "question": "Bo has 1 pen. How many?"}, *GSM8K[9:]]
    datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)}).save_to_disk(str(tmp_path / "gsm8k"))
    assert stages.stage_key(cfg, "eval_problems", {}) != before


@pytest.mark.flow
def test_a_run_scores_every_set_at_every_scored_checkpoint_and_reports_each(
    prefect_server, tiny_model_path, tmp_path
):
    from flows.pipeline import pipeline

    tree = load_config(ROOT / "configs" / "smoke.yaml").model_dump(mode="json")
    sets = _sets(tmp_path)
    cfg = build_config(tree, ["rounds=1", f"eval.sets={json.dumps(sets[:1])}"])
    run_dir = tmp_path / "run"
    summary = json.loads(Path(pipeline(cfg, str(run_dir))).read_text())
    problems = read_table(set_dir(run_dir, "gsm8k") / "eval" / "problems.parquet")
    assert len(problems) == 3 and set(problems["question"]) <= {r["question"] for r in GSM8K[8:]}
    gsm = summary["eval_sets"]["gsm8k"]
    assert [s["checkpoint"] for s in gsm] == ["base", "round_0001"] and {s["n_problems"] for s in gsm} == {3}
    assert [s["n_problems"] for s in summary["scores"]] == [
        cfg.data.eval_problems
    ] * 2  # the eval split's own
    main_scored = json.loads(
        manifest_path(stages.output_path(run_dir, "eval_samples", checkpoint="base")).read_text()
    )

    wider = build_config(tree, ["rounds=1", f"eval.sets={json.dumps(sets)}"])
    summary = json.loads(Path(pipeline(wider, str(run_dir))).read_text())
    again = json.loads(
        manifest_path(stages.output_path(run_dir, "eval_samples", checkpoint="base")).read_text()
    )
    assert again["finished_at"] == main_scored["finished_at"]  # a set added later redoes nothing scored
    assert [s["n_problems"] for s in summary["eval_sets"]["math500"]] == [len(MATH500)] * 2
    assert set(summary["eval_sets"]) == {"gsm8k", "math500"}


@pytest.mark.flow
def test_an_experiment_reports_each_set_per_arm_against_the_reference(
    prefect_server, tiny_model_path, tmp_path
):
    import yaml

    from flows.experiment import experiment
    from sdfb.experiment import by_arm, load_experiment, resolve_arms

    smoke = ROOT / "configs" / "experiment-smoke.yaml"
    spec = yaml.safe_load(smoke.read_text())
    spec["recipe"] = str(smoke.parent / spec["recipe"])
    arms = ("step_aligned", "none")
    spec["arms"] = [a for a in spec["arms"] if a["name"] in arms]
    spec["set"]["eval"] = {"sets": _sets(tmp_path)[1:]}
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    exp, recipe = load_experiment(path)
    configs = by_arm(resolve_arms(exp, recipe))
    root = tmp_path / "experiment"
    summary = json.loads(Path(experiment(exp, configs, str(root))).read_text())
    assert summary["eval_sets"] == ["math500"]
    scores = pd.read_parquet(root / "analysis" / "eval_set_scores.parquet")
    chosen = scores[scores["chosen"]]
    assert set(chosen["arm"]) == {"step_aligned", "none"} and set(chosen["n_problems"]) == {len(MATH500)}
    assert (chosen["low"] <= chosen["estimate"]).all() and (chosen["estimate"] <= chosen["high"]).all()
    compared = pd.read_parquet(root / "analysis" / "eval_set_comparisons.parquet")
    assert set(compared["arm"]) == {"step_aligned"} and set(compared["reference"]) == {"none"}
    assert "math500 (8 problems)" in (root / "report.html").read_text()
    base = [
        root / "seed_0" / arm / "eval_sets" / "math500" / "eval" / "base.parquet.manifest.json"
        for arm in arms
    ]
    assert base[0].read_bytes() == base[1].read_bytes()  # the base model scored on the set once, shared
