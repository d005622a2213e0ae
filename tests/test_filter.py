"""The difficulty filter (`data.filter`): solve counts worked out by hand, its refusals,
and the stage on a real flow run of the tiny model (its own table and manifest, rounds
drawn from what it kept, skipped on a rerun)."""

import json
from pathlib import Path

import pandas as pd
import pytest

from sdfb import stages
from sdfb.config import build_config, load_config
from sdfb.datafiles import DataError
from sdfb.difficulty import kept_problems, solve_counts
from sdfb.store import manifest_path, read_table

ROOT = Path(__file__).resolve().parents[1]


def _candidates(ids):
    return pd.DataFrame({"problem_id": ids, "question": [f"q {i}" for i in ids], "answer": ["1"] * len(ids)})


def _graded(correct_by_id):
    rows = [(pid, bool(c)) for pid, marks in correct_by_id.items() for c in marks]
    return pd.DataFrame(rows, columns=["problem_id", "correct"])


def test_a_problem_is_kept_when_solved_in_fewer_than_below_samples():
    # a: 1 of 4 right, b: 0 of 4, c: 2 of 4, d: 4 of 4; below = 2 keeps a and b (1 < 2, 0 < 2), not c (2) or d
    graded = _graded({"a": [1, 0, 0, 0], "b": [0, 0, 0, 0], "c": [1, 0, 1, 0], "d": [1, 1, 1, 1]})
    out = solve_counts(_candidates(["a", "b", "c", "d"]), graded, below=2)
    assert out["n_correct"].tolist() == [1, 0, 2, 4] and out["n_samples"].tolist() == [4, 4, 4, 4]
    assert out["kept"].tolist() == [True, True, False, False]
    kept = kept_problems(out, below=2, samples=4)
    assert kept["problem_id"].tolist() == ["a", "b"] and "kept" not in kept


def test_a_candidate_without_samples_is_an_error_not_a_zero():
    with pytest.raises(ValueError, match="1 candidate problems have no graded sample"):
        solve_counts(_candidates(["a", "b"]), _graded({"a": [0, 0]}), below=1)


def test_a_filter_that_keeps_nothing_names_what_to_change():
    out = solve_counts(_candidates(["a"]), _graded({"a": [1, 1]}), below=1)
    with pytest.raises(DataError, match="kept none of its 1 candidates.*data.filter.below"):
        kept_problems(out, below=1, samples=2)


def test_a_filter_that_keeps_everything_is_refused_at_load_time():
    with pytest.raises(Exception, match="keeps every problem"):
        build_config({"data": {"filter": {"samples": 4, "below": 5}}})


def test_until_filter_needs_the_filter():
    with pytest.raises(ValueError, match="leaves that stage out.*set data.filter"):
        stages.stop_after("filter", None, 2, 0, off={"filter"})
    assert stages.stop_after("filter", None, 2, 0) == stages.StopAfter("filter", 0)


@pytest.mark.flow
def test_the_filter_stage_runs_once_and_the_rounds_draw_from_what_it_kept(
    prefect_server, tiny_model_path, tmp_path
):
    from flows.pipeline import pipeline

    base = load_config(ROOT / "configs" / "smoke.yaml")
    filtering = {"candidates": 5, "samples": 2, "below": 1}
    cfg = build_config(base.model_dump(mode="json"), [f"data.filter={json.dumps(filtering)}", "rounds=2"])
    run_dir = str(tmp_path / "run")
    pipeline(cfg, run_dir, until="problems", until_round=2)
    filtered_path = stages.output_path(run_dir, "filter")
    filtered = read_table(filtered_path)
    manifest = json.loads(manifest_path(filtered_path).read_text())
    assert manifest["candidates"] == len(filtered) == 5 and manifest["kept"] == int(filtered["kept"].sum())
    assert (filtered["n_samples"] == 2).all()
    eval_ids = set(read_table(stages.output_path(run_dir, "eval_problems"))["problem_id"])
    assert not eval_ids & set(filtered["problem_id"])
    kept = set(filtered.loc[filtered["kept"], "problem_id"])
    for r in (1, 2):  # the tiny random model solves nothing, so all 5 are kept; a round holds 6: all of them
        drawn = read_table(stages.output_path(run_dir, "problems", round=r))
        assert set(drawn["problem_id"]) == kept
    finished_at = manifest["finished_at"]
    pipeline(cfg, run_dir, until="problems", until_round=2)
    assert json.loads(manifest_path(filtered_path).read_text())["finished_at"] == finished_at
