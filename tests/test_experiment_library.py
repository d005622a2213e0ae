"""Experiment library: config errors before any work, the shared-stage plan and its work count,
the validation/test analysis on hand-built run folders, and adopting shared stage outputs
between run folders. No Prefect, no models."""

import json
import os
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
import yaml

from sdfb.experiment import (
    ExperimentError,
    arm_config,
    fingerprint,
    load_experiment,
    plan_experiment,
    resolve_arms,
    split_of,
)
from sdfb.experiment.analysis import (
    checkpoints,
    choose_checkpoints,
    comparison_rows,
    per_problem_table,
    score_rows,
)
from sdfb.shared import adopt, link_run, publish, shared_root, shared_uses
from sdfb.store import StageKey, manifest_path, write_table

SMOKE = Path(__file__).resolve().parents[1] / "configs" / "smoke.yaml"


# --- config
# -------------------------------------------------------------------------------------------------------


def _experiment(tmp_path: Path, arms: list[dict], **fields) -> Path:
    """An experiment file beside a copy of the smoke recipe; `fields` replace the top-level defaults."""
    (tmp_path / "recipe.yaml").write_text(SMOKE.read_text())
    body = {"name": "exp", "recipe": "recipe.yaml", "seeds": [0], "reference": arms[0]["name"], "arms": arms}
    # The smoke recipe's 4 eval problems split 1/3, below any real minimum; the split tests set their own.
    body["min_split_problems"] = 1
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump({**body, **fields}, sort_keys=False))
    return path


def _resolve(path: Path) -> dict:
    exp, recipe = load_experiment(path)
    return resolve_arms(exp, recipe)


TWO_ARMS = [
    {"name": "aligned", "set": {"context.condition": "step_aligned"}},
    {"name": "control", "set": {"context.condition": "none"}},
]


def test_an_arm_overriding_a_misspelt_key_is_an_error_naming_the_arm_the_dotted_key_and_a_suggestion(
    tmp_path,
):
    arms = [*TWO_ARMS, {"name": "typo", "set": {"distill.learnign_rate": 1.0e-4}}]
    with pytest.raises(ExperimentError) as caught:
        _resolve(_experiment(tmp_path, arms))
    message = str(caught.value)
    assert "'typo'" in message
    assert "distill.learnign_rate" in message
    assert "did you mean 'learning_rate'" in message


def test_an_arm_with_an_invalid_value_is_an_error_naming_the_arm_and_the_key(tmp_path):
    arms = [*TWO_ARMS, {"name": "bad_n", "set": {"rollout.sampling.n": 0}}]
    with pytest.raises(ExperimentError, match=r"(?s)'bad_n'.*rollout\.sampling\.n"):
        _resolve(_experiment(tmp_path, arms))


def test_two_arms_with_the_same_name_are_refused_naming_the_name(tmp_path):
    arms = [*TWO_ARMS, {"name": "control", "set": {"context.condition": "binary"}}]
    with pytest.raises(ExperimentError, match=r"arm names must be unique; repeated: control"):
        load_experiment(_experiment(tmp_path, arms))


def test_a_reference_that_is_not_an_arm_is_refused_listing_the_arms(tmp_path):
    with pytest.raises(ExperimentError) as caught:
        load_experiment(_experiment(tmp_path, TWO_ARMS, reference="baseline"))
    message = str(caught.value)
    assert "'baseline'" in message
    assert "arms: aligned, control" in message


def test_an_experiment_with_a_single_arm_is_refused(tmp_path):
    with pytest.raises(ExperimentError, match="at least two arms"):
        load_experiment(_experiment(tmp_path, TWO_ARMS[:1]))


def test_repeated_seeds_are_refused_showing_the_seeds(tmp_path):
    with pytest.raises(ExperimentError, match=r"seeds.*distinct.*\[0, 1, 0\]"):
        load_experiment(_experiment(tmp_path, TWO_ARMS, seeds=[0, 1, 0]))


def test_an_unknown_top_level_experiment_key_is_refused_naming_it(tmp_path):
    with pytest.raises(ExperimentError, match="shared_rollout"):
        load_experiment(_experiment(tmp_path, TWO_ARMS, shared_rollout=False))


def test_a_missing_recipe_file_is_refused_naming_the_recipe(tmp_path):
    path = _experiment(tmp_path, TWO_ARMS, recipe="nowhere.yaml")
    with pytest.raises(ExperimentError, match=r"recipe 'nowhere.yaml' not found"):
        load_experiment(path)


def test_a_missing_experiment_file_is_an_experiment_error(tmp_path):
    with pytest.raises(ExperimentError, match="does not exist"):
        load_experiment(tmp_path / "absent.yaml")


def test_a_malformed_experiment_yaml_is_an_experiment_error_naming_the_file(tmp_path):
    path = tmp_path / "experiment.yaml"
    path.write_text("name: exp\narms: [\n  - {name: a\n")
    with pytest.raises(ExperimentError, match=r"(?s)experiment\.yaml.*not valid YAML"):
        load_experiment(path)


def test_a_malformed_recipe_is_an_experiment_error_naming_the_arm(tmp_path):
    path = _experiment(tmp_path, TWO_ARMS)
    (tmp_path / "recipe.yaml").write_text("rounds: [1\n")
    with pytest.raises(ExperimentError, match=r"(?s)arm 'aligned'.*not valid YAML"):
        _resolve(path)


def test_resolve_arms_gives_one_config_per_arm_and_seed_named_after_both(tmp_path):
    configs = _resolve(_experiment(tmp_path, TWO_ARMS, seeds=[3, 5]))
    assert sorted(configs) == [("aligned", 3), ("aligned", 5), ("control", 3), ("control", 5)]
    assert configs[("control", 5)].seed == 5
    assert configs[("control", 5)].name == "exp-control-s5"
    assert configs[("control", 5)].context.condition == "none"


def test_arm_config_applies_recipe_then_experiment_set_then_arm_set_then_seed(tmp_path):
    arms = [
        {"name": "plain", "set": {}},
        {"name": "own", "set": {"distill.batch_size": 2, "seed": 99}},
    ]
    path = _experiment(tmp_path, arms, set={"distill.batch_size": 3, "data.eval_problems": 5}, seeds=[7])
    exp, recipe = load_experiment(path)
    plain, own = (arm_config(exp, recipe, arm, 7) for arm in exp.arms)
    assert plain.distill.learning_rate == 1.0e-3  # the recipe's, not the default 5e-6
    assert plain.distill.batch_size == 3  # the experiment's set over the recipe's 4
    assert own.distill.batch_size == 2  # the arm's set over the experiment's
    assert own.data.eval_problems == 5  # the experiment's set still reaches every arm
    assert own.seed == 7 and plain.seed == 7  # the seed last, over the arm's own `seed`


def test_a_nested_mapping_in_set_merges_into_the_recipe_section_instead_of_replacing_it(tmp_path):
    arms = [{"name": "plain", "set": {}}, {"name": "nested", "set": {"distill": {"lora": {"r": 4}}}}]
    path = _experiment(tmp_path, arms, set={"rollout": {"sampling": {"n": 2}}})
    configs = _resolve(path)
    for cfg in configs.values():
        assert cfg.rollout.sampling.n == 2
        assert cfg.rollout.engine == "hf"  # from smoke.yaml, not the default "auto"
        assert cfg.rollout.batch_size == 8
        assert cfg.rollout.sampling.max_new_tokens == 24
    nested = configs[("nested", 0)].distill
    assert (nested.lora.r, nested.lora.alpha, nested.learning_rate) == (4, 16, 1.0e-3)


def test_an_arm_mapping_merges_with_the_experiment_mapping_for_the_same_section(tmp_path):
    arms = [{"name": "plain", "set": {}}, {"name": "bigger", "set": {"rollout": {"batch_size": 4}}}]
    path = _experiment(tmp_path, arms, set={"rollout": {"sampling": {"n": 2}}})
    bigger = _resolve(path)[("bigger", 0)]
    assert bigger.rollout.batch_size == 4
    assert bigger.rollout.sampling.n == 2  # the experiment's, kept


# --- plan
# ---------------------------------------------------------------------------------------------------------


def _plan(tmp_path: Path, arms: list[dict], **fields):
    exp, recipe = load_experiment(_experiment(tmp_path, arms, **fields))
    return plan_experiment(exp, resolve_arms(exp, recipe))


SHARED_UP_TO_CRITIQUES = (
    "eval_problems",
    "eval_samples",
    "scores",
    "problems",
    "rollouts",
    "grades",
    "critiques",
)


def test_arms_differing_only_in_condition_share_every_first_round_stage_but_contexts(tmp_path):
    arms = [*TWO_ARMS, {"name": "ref", "set": {"context.condition": "reference"}}]
    (seed,) = _plan(tmp_path, arms).seeds
    for name in SHARED_UP_TO_CRITIQUES:
        assert seed.groups[name] == [["aligned", "control", "ref"]], name
        assert seed.shared(name)
    assert seed.groups["contexts"] == [["aligned"], ["control"], ["ref"]]
    assert not seed.shared("contexts")


@pytest.mark.parametrize(
    "critic_set",
    [{"critic.prompt": "critic_v2"}, {"critic.decoding.temperature": 0.5}],
    ids=["prompt", "decoding"],
)
def test_an_arm_with_another_critic_setting_shares_rollouts_but_not_critiques(tmp_path, critic_set):
    arms = [
        {"name": "a", "set": {"context.condition": "step_aligned"}},
        {"name": "b", "set": {"context.condition": "none"}},
        {"name": "critic2", "set": {"context.condition": "step_aligned", **critic_set}},
    ]
    (seed,) = _plan(tmp_path, arms).seeds
    for name in ("eval_samples", "problems", "rollouts", "grades"):
        assert seed.groups[name] == [["a", "b", "critic2"]], name
    assert seed.groups["critiques"] == [["a", "b"], ["critic2"]]
    assert seed.groups["contexts"] == [["a"], ["b"], ["critic2"]]


@pytest.mark.parametrize(
    ("other", "keys"),
    [
        ({"rollout.sampling.n": 4}, ["rollout.sampling.n"]),
        ({"model.name_or_path": "other-tiny"}, ["model.name_or_path"]),
        (
            {"rollout.sampling.n": 4, "rollout.sampling.temperature": 0.5},
            ["rollout.sampling.n", "rollout.sampling.temperature"],
        ),
    ],
    ids=["n", "model", "two-keys"],
)
def test_arms_that_cannot_share_claimed_rollouts_are_refused_naming_the_differing_keys(tmp_path, other, keys):
    arms = [{"name": "a", "set": {}}, {"name": "b", "set": other}]
    with pytest.raises(ExperimentError) as caught:
        _plan(tmp_path, arms)
    message = str(caught.value)
    assert "'a'" in message and "'b'" in message
    assert f"differ in {', '.join(keys)}." in message
    assert "shared_rollouts: false" in message


def test_arms_with_different_rollouts_are_accepted_unshared_when_rollouts_are_not_claimed_shared(tmp_path):
    arms = [{"name": "a", "set": {}}, {"name": "b", "set": {"rollout.sampling.n": 4}}]
    (seed,) = _plan(tmp_path, arms, shared_rollouts=False).seeds
    assert seed.groups["problems"] == [["a", "b"]]
    assert seed.groups["eval_samples"] == [["a", "b"]]  # eval has its own sampling
    assert seed.groups["rollouts"] == [["a"], ["b"]]
    assert seed.groups["grades"] == [["a"], ["b"]]
    assert not seed.shared("rollouts")


def test_seeds_never_share_stages_with_each_other(tmp_path):
    plan = _plan(tmp_path, TWO_ARMS, seeds=[0, 1])
    assert [s.seed for s in plan.seeds] == [0, 1]
    assert all(s.groups["rollouts"] == [["aligned", "control"]] for s in plan.seeds)
    assert fingerprint(plan.configs[("aligned", 0)], "rollouts") != fingerprint(
        plan.configs[("aligned", 1)], "rollouts"
    )


def test_plan_work_counts_shared_first_round_work_once(tmp_path):
    # smoke: rounds 2, 6 problems a round, 4 eval problems, eval.k 2, 24 new tokens; here n 2, two seeds, 2
    # arms.
    plan = _plan(tmp_path, TWO_ARMS, seeds=[0, 1], set={"rollout.sampling.n": 2})
    per_seed_eval = 4 * 2 + 2 * (1 * 4 * 2)  # shared base scoring once + each arm's final checkpoint
    per_seed_rollouts = 6 * 2 + 2 * (6 * 2 * (2 - 1))  # shared first round once + each arm's later rounds
    per_seed_tokens = 2 * (6 * 2 * 2 * 24)  # each arm: every round's rollouts at their longest
    assert plan.work == {
        "runs": 4,
        "eval_generations": 2 * per_seed_eval,
        "rollout_generations": 2 * per_seed_rollouts,
        "max_trained_tokens": 2 * per_seed_tokens,
        "filter_generations": 0,
    }


def test_plan_work_counts_the_filter_once_per_seed_and_each_eval_set_in_every_arm(tmp_path):
    eval_set = {"name": "m", "preset": "math500", "path": "m.parquet", "problems": 5}
    changes = {"data.filter": {"candidates": 7, "samples": 3, "below": 1}, "eval.sets": [eval_set]}
    plan = _plan(tmp_path, TWO_ARMS, seeds=[0, 1], set=changes)
    assert plan.work["filter_generations"] == 2 * 7 * 3  # shared by the arms of a seed
    # per seed: shared base scoring on the eval split and the set ((4 + 5) x 2), each arm's final checkpoint
    # on both ((4 + 5) x 2)
    assert plan.work["eval_generations"] == 2 * ((4 + 5) * 2 + 2 * ((4 + 5) * 2))


def test_plan_work_counts_unshared_rollouts_and_intermediate_evals_per_arm(tmp_path):
    arms = [{"name": "a", "set": {}}, {"name": "b", "set": {"rollout.sampling.n": 3}}]
    plan = _plan(tmp_path, arms, shared_rollouts=False, set={"rounds": 3, "eval.every": 2})
    # scored checkpoints: round 2 (every 2) and round 3 (the last) -> 2 per arm, plus the shared base.
    assert plan.work["eval_generations"] == 4 * 2 + 2 * (2 * 4 * 2)
    # first round: two groups (6*1 and 6*3), then rounds 2 and 3 per arm.
    assert plan.work["rollout_generations"] == (6 * 1 + 6 * 3) + (6 * 1 * 2 + 6 * 3 * 2)
    assert plan.work["max_trained_tokens"] == 6 * 1 * 3 * 24 + 6 * 3 * 3 * 24


# --- analysis
# -----------------------------------------------------------------------------------------------------


def test_split_of_is_deterministic_and_roughly_honours_the_share():
    ids = [f"problem-{i}" for i in range(1000)]
    splits = [split_of(pid, 0.5) for pid in ids]
    assert splits == [split_of(pid, 0.5) for pid in ids]
    assert set(splits) == {"validation", "test"}
    assert 430 <= splits.count("validation") <= 570
    small = [split_of(pid, 0.1) for pid in ids]
    assert 60 <= small.count("validation") <= 140
    # a larger share only moves problems from test to validation, never back
    assert all(s == "validation" for s, t in zip(splits, small, strict=True) if t == "validation")


def _ids(share: float, n_validation: int, n_test: int) -> tuple[list[str], list[str]]:
    validation, test = [], []
    for i in range(1000):
        pid = f"q{i}"
        (validation if split_of(pid, share) == "validation" else test).append(pid)
    return validation[:n_validation], test[:n_test]


VALIDATION, TEST = _ids(0.5, 2, 3)


def _samples(avg: dict[str, float]) -> pd.DataFrame:
    """Two samples a problem: both right (1.0), one right (0.5) or both wrong (0.0)."""
    rows = []
    for pid, score in avg.items():
        right = round(score * 2)
        for index in range(2):
            correct = index < right
            answer = "7" if correct else str(10 + index)
            rows.append((pid, index, answer, correct, True))
    columns = ["problem_id", "sample_index", "extracted_answer", "correct", "format_ok"]
    return pd.DataFrame(rows, columns=columns)


def _run(root: Path, checkpoints: dict[str, tuple[float, float]], every: int = 1) -> Path:
    """A finished run folder whose checkpoints score (validation avg, test avg) on every problem of each
    split; its summary records a config of as many rounds as it has round checkpoints."""
    from sdfb.config import RunConfig

    (root / "eval").mkdir(parents=True)
    for name, (on_validation, on_test) in checkpoints.items():
        avg = {pid: on_validation for pid in VALIDATION} | {pid: on_test for pid in TEST}
        _samples(avg).to_parquet(root / "eval" / f"{name}.parquet")
        scores = pd.DataFrame({"anything": [1]})
        schema = pa.Schema.from_pandas(scores, preserve_index=False)
        write_table(scores, root / "eval" / f"{name}.scores.parquet", schema, StageKey(1, "c", {}))
    rounds = len(checkpoints) - 1
    config = RunConfig(rounds=rounds, eval={"every": every}).model_dump(mode="json")
    (root / "summary.json").write_text(json.dumps({"config": config}))
    return root


@pytest.fixture
def runs(tmp_path) -> dict[tuple[str, int], Path]:
    """ref: flat at 0.5. treat: round 1 best on validation, round 2 best on test (which must not decide)."""
    ref = _run(tmp_path / "ref", {"base": (0.5, 0.5), "round_0001": (0.5, 0.5)})
    treat = _run(tmp_path / "treat", {"base": (0.5, 0.5), "round_0001": (1.0, 0.0), "round_0002": (0.0, 1.0)})
    (treat / "eval" / "round_0003.parquet").write_bytes(b"")  # samples without scores: not a checkpoint
    return {("ref", 0): ref, ("treat", 0): treat}


def test_checkpoints_come_from_the_runs_current_config_not_from_files_an_earlier_config_left(tmp_path):
    run = _run(tmp_path / "run", {"base": (0.5, 0.5), "round_0001": (0.5, 0.5), "round_0002": (1.0, 1.0)})
    config = json.loads((run / "summary.json").read_text())["config"]
    config["rounds"] = 1  # rerun with one round: round_0002's files stay from the earlier config
    (run / "summary.json").write_text(json.dumps({"config": config}))
    assert checkpoints(run) == ["base", "round_0001"]


def test_a_checkpoint_the_config_scores_without_finished_scores_is_an_error_naming_it(tmp_path):
    run = _run(tmp_path / "run", {"base": (0.5, 0.5), "round_0001": (0.5, 0.5)})
    (run / "eval" / "round_0001.scores.parquet.manifest.json").unlink()
    with pytest.raises(ValueError, match="round_0001 has no finished scoring"):
        checkpoints(run)


def test_only_the_checkpoints_the_config_scores_are_candidates_with_eval_every(tmp_path):
    run = _run(tmp_path / "run", {"base": (0.5, 0.5), "round_0001": (0.5, 0.5), "round_0002": (1.0, 1.0)})
    assert checkpoints(run) == ["base", "round_0001", "round_0002"]
    config = json.loads((run / "summary.json").read_text())["config"]
    config["eval"]["every"] = 0  # only the last round scored
    (run / "summary.json").write_text(json.dumps({"config": config}))
    assert checkpoints(run) == ["base", "round_0002"]


def test_per_problem_table_has_a_row_per_arm_checkpoint_and_problem_with_its_split(runs):
    table = per_problem_table(runs, k=2, validation_share=0.5)
    assert list(table.columns) == [
        "arm",
        "seed",
        "checkpoint",
        "problem_id",
        "split",
        "n_samples",
        "avg",
        "pass_k",
        "maj",
    ]
    assert len(table) == (2 + 3) * 5  # ref 2 checkpoints + treat 3, five problems each
    treat = table[table["arm"] == "treat"]
    assert list(dict.fromkeys(treat["checkpoint"])) == ["base", "round_0001", "round_0002"]
    assert set(table.loc[table["problem_id"].isin(VALIDATION), "split"]) == {"validation"}
    assert set(table.loc[table["problem_id"].isin(TEST), "split"]) == {"test"}
    row = treat[(treat["checkpoint"] == "round_0001") & (treat["problem_id"] == TEST[0])].iloc[0]
    assert (row["n_samples"], row["avg"], row["pass_k"], row["maj"]) == (2, 0.0, 0.0, 0.0)
    row = treat[(treat["checkpoint"] == "base") & (treat["problem_id"] == TEST[0])].iloc[0]
    assert (row["avg"], row["pass_k"]) == (0.5, 1.0)


def test_per_problem_table_of_no_runs_is_empty_with_the_columns():
    table = per_problem_table({}, k=2, validation_share=0.5)
    assert table.empty and "split" in table.columns


def test_choose_checkpoints_uses_validation_problems_only(runs):
    chosen = choose_checkpoints(per_problem_table(runs, k=2, validation_share=0.5))
    assert chosen["treat"]["chosen_checkpoint"] == "round_0001"  # the test split favours round_0002
    assert chosen["treat"]["validation"] == {"base": 0.5, "round_0001": 1.0, "round_0002": 0.0}


def test_choose_checkpoints_breaks_ties_towards_the_earlier_checkpoint(runs):
    chosen = choose_checkpoints(per_problem_table(runs, k=2, validation_share=0.5))
    assert chosen["ref"]["chosen_checkpoint"] == "base"


def test_choose_checkpoints_tie_between_rounds_goes_to_the_earlier_round(tmp_path):
    run = _run(tmp_path / "r", {"base": (0.0, 1.0), "round_0001": (0.5, 0.0), "round_0002": (0.5, 1.0)})
    chosen = choose_checkpoints(per_problem_table({("r", 0): run}, k=2, validation_share=0.5))
    assert chosen["r"]["chosen_checkpoint"] == "round_0001"


def test_score_rows_report_test_problems_only_and_mark_the_chosen_checkpoint(runs):
    table = per_problem_table(runs, k=2, validation_share=0.5)
    scores = score_rows(table, choose_checkpoints(table), n_resamples=200)
    assert set(scores["n_problems"]) == {len(TEST)}
    avg = scores[scores["metric"] == "avg"].set_index(["arm", "checkpoint"])
    assert avg.loc[("treat", "round_0001"), "estimate"] == 0.0  # 0.5 if validation counted
    assert avg.loc[("treat", "round_0002"), "estimate"] == 1.0
    assert avg.loc[("treat", "round_0001"), "chosen"]
    assert not avg.loc[("treat", "round_0002"), "chosen"]
    assert avg.loc[("ref", "base"), "chosen"]
    assert len(scores) == 5 * 3  # five (arm, checkpoint) pairs x three metrics


def test_comparison_rows_compare_at_the_chosen_and_the_final_checkpoints_on_test_problems(runs):
    table = per_problem_table(runs, k=2, validation_share=0.5)
    rows = comparison_rows(table, choose_checkpoints(table), "ref", n_resamples=200)
    avg = rows[rows["metric"] == "avg"].set_index("at")
    assert sorted(avg.index) == ["chosen", "final"]
    assert set(avg["arm"]) == {"treat"} and set(avg["reference"]) == {"ref"}
    # chosen: treat round_0001 (0.0 on test) - ref base (0.5); final: treat round_0002 (1.0) - ref round_0001
    # (0.5)
    assert avg.loc["chosen", "difference"] == -0.5
    assert (avg.loc["chosen", "wins"], avg.loc["chosen", "losses"]) == (0, len(TEST))
    assert avg.loc["final", "difference"] == 0.5
    assert (avg.loc["final", "wins"], avg.loc["final", "losses"]) == (len(TEST), 0)
    assert set(rows["n_problems"]) == {len(TEST)}


def test_comparison_rows_without_the_reference_among_the_chosen_arms_are_empty(runs):
    table = per_problem_table(runs, k=2, validation_share=0.5)
    assert comparison_rows(table, choose_checkpoints(table), "missing").empty


# --- shared stage outputs
# -----------------------------------------------------------------------------------------

SCHEMA = pa.schema([("problem_id", pa.string()), ("value", pa.int32())])
KEY = StageKey(1, "cfg-a", {"problems": "h1"})
OTHER = StageKey(1, "cfg-b", {"problems": "h1"})
TABLE = Path("round_0001") / "rollouts.parquet"


@pytest.fixture
def linked(tmp_path) -> tuple[Path, Path, Path, Path]:
    shared = tmp_path / "seed_0" / "shared"
    run_dirs = [tmp_path / "seed_0" / arm for arm in ("a", "b", "c")]
    for run_dir in run_dirs:
        link_run(run_dir, shared)
    return shared, *run_dirs


def _write(run_dir: Path, key: StageKey, values: list[int]) -> Path:
    frame = pd.DataFrame({"problem_id": [f"p{v}" for v in values], "value": values})
    return write_table(frame, run_dir / TABLE, SCHEMA, key)


def test_link_run_points_the_run_folder_at_the_shared_folder(linked):
    shared, a, _, _ = linked
    assert shared_root(a) == shared.resolve()
    assert shared_root(shared.parent / "unlinked") is None


def test_a_published_table_is_adopted_by_another_run_under_the_same_key_as_a_hard_link(linked):
    _, a, b, _ = linked
    publish(_write(a, KEY, [1, 2]), a)
    assert adopt(b / TABLE, KEY, b)
    assert (b / TABLE).read_bytes() == (a / TABLE).read_bytes()
    assert os.stat(b / TABLE).st_ino == os.stat(a / TABLE).st_ino
    assert manifest_path(b / TABLE).read_bytes() == manifest_path(a / TABLE).read_bytes()


def test_a_published_table_is_not_adopted_under_a_different_key(linked):
    _, a, b, _ = linked
    publish(_write(a, KEY, [1, 2]), a)
    assert not adopt(b / TABLE, OTHER, b)
    assert not (b / TABLE).exists()
    assert not adopt(b / "round_0002" / "rollouts.parquet", KEY, b)  # another path is another output


def test_a_run_folder_without_a_link_neither_adopts_nor_publishes(tmp_path, linked):
    shared, a, _, _ = linked
    lone = tmp_path / "lone"
    publish(_write(lone, KEY, [1]), lone)
    assert list(shared.rglob("*.parquet")) == []
    publish(_write(a, KEY, [1]), a)
    assert not adopt(lone / TABLE, KEY, lone)


def test_two_keys_for_the_same_path_coexist_in_the_shared_folder(linked):
    shared, a, b, c = linked
    publish(_write(a, KEY, [1, 2]), a)
    publish(_write(c, OTHER, [3, 4, 5]), c)
    copies = sorted(shared.rglob("rollouts.parquet"))
    assert len(copies) == 2
    assert {p.relative_to(shared).parts[1:] for p in copies} == {TABLE.parts}
    assert adopt(b / TABLE, KEY, b)
    assert (b / TABLE).read_bytes() == (a / TABLE).read_bytes()
    assert adopt(b / TABLE, OTHER, b)
    assert (b / TABLE).read_bytes() == (c / TABLE).read_bytes()


def test_rewriting_a_published_table_does_not_change_the_shared_copy(linked):
    _, a, b, _ = linked
    published = _write(a, KEY, [1, 2])
    publish(published, a)
    before = published.read_bytes()
    _write(a, KEY, [9, 9, 9])  # same key, other content: a later rerun in run a
    assert adopt(b / TABLE, KEY, b)
    assert (b / TABLE).read_bytes() == before


def test_shared_uses_counts_the_run_folders_holding_each_shared_execution(linked):
    shared, a, b, c = linked
    publish(_write(a, KEY, [1, 2]), a)
    publish(_write(c, OTHER, [3]), c)
    assert adopt(b / TABLE, KEY, b)
    uses = shared_uses([a, b, c], shared)
    assert sorted(uses.values()) == [1, 2]
    assert all(name.endswith("/round_0001/rollouts.parquet") for name in uses)
    key_of = {name: name.split("/")[0] for name in uses}
    by_count = {count: key_of[name] for name, count in uses.items()}
    assert (shared / by_count[2] / TABLE).read_bytes() == (a / TABLE).read_bytes()
    assert (shared / by_count[1] / TABLE).read_bytes() == (c / TABLE).read_bytes()
    assert sorted(shared_uses([c], shared).values()) == [0, 1]  # run c holds only its own execution


# --- split sizes and power at plan time
# -----------------------------------------------------------------------------


def _eval_ids(tmp_path: Path, eval_problems: int) -> list[str]:
    from sdfb.problems import sample_eval

    cfg = _resolve(_experiment(tmp_path, TWO_ARMS, set={"data.eval_problems": eval_problems}))[("aligned", 0)]
    return sample_eval(cfg.data)[0]["problem_id"].tolist()


def test_a_split_below_the_minimum_is_refused_naming_the_minimum_and_an_eval_size_that_passes(tmp_path):
    with pytest.raises(ExperimentError) as caught:
        _plan(tmp_path, TWO_ARMS, min_split_problems=10)  # the smoke recipe's 4 eval problems split 1/3
    message = str(caught.value)
    assert "the validation split would hold 1 of 4 eval problems" in message
    assert "at least 10 are needed" in message and "validation_share" in message
    suggested = int(message.split("raise data.eval_problems to ")[1].split()[0])
    ids = _eval_ids(tmp_path, suggested)
    counts = [sum(split_of(pid, 0.5) == s for pid in ids) for s in ("validation", "test")]
    assert min(counts) >= 10  # exact for generated problems, and the fewest that pass:
    assert min(sum(split_of(pid, 0.5) == s for pid in ids[:-1]) for s in ("validation", "test")) < 10
    plan = _plan(tmp_path, TWO_ARMS, min_split_problems=10, set={"data.eval_problems": suggested})
    assert (plan.splits.validation, plan.splits.test, plan.splits.exact) == (*counts, True)


def test_generated_eval_problems_are_split_exactly_and_the_power_assumes_the_configured_rate(tmp_path):
    from sdfb.experiment.power import minimum_detectable_difference

    plan = _plan(tmp_path, TWO_ARMS, seeds=[0, 1], base_success_rate=0.3, set={"data.eval_problems": 30})
    test = sum(split_of(pid, 0.5) == "test" for pid in _eval_ids(tmp_path, 30))
    assert (plan.splits.total, plan.splits.test) == (30, test)
    assert plan.power.assumption == "base rate 0.30 configured"
    assert (plan.power.n_problems, plan.power.n_seeds, plan.power.k) == (test, 2, 2)  # smoke: eval.k 2
    assert plan.power.difference == pytest.approx(minimum_detectable_difference(test, 2, 2, 0.3))


def test_the_power_uses_base_rates_measured_in_the_experiment_folder_on_its_test_problems(tmp_path):
    from sdfb.experiment.power import minimum_detectable_difference

    ids = _eval_ids(tmp_path, 30)
    rates = {pid: (i % 3) / 2 for i, pid in enumerate(ids)}  # 0, 0.5, 1 from two samples each
    samples = pd.DataFrame(
        [(pid, j < round(2 * r)) for pid, r in rates.items() for j in range(2)],
        columns=["problem_id", "correct"],
    )
    root = tmp_path / "runs" / "exp"
    base = root / "seed_0" / "aligned" / "eval" / "base.parquet"  # the reference arm's base scoring
    write_table(samples, base, pa.Schema.from_pandas(samples, preserve_index=False), StageKey(1, "c", {}))
    exp, recipe = load_experiment(_experiment(tmp_path, TWO_ARMS, set={"data.eval_problems": 30}))
    plan = plan_experiment(exp, resolve_arms(exp, recipe), root)
    test = [r for pid, r in rates.items() if split_of(pid, 0.5) == "test"]
    assert plan.power.assumption == f"base rates measured from {base} ({len(test)} problems)"
    assert plan.power.difference == pytest.approx(minimum_detectable_difference(len(test), 1, 2, test))
    unmeasured = plan_experiment(exp, resolve_arms(exp, recipe), tmp_path / "elsewhere")
    assert unmeasured.power.assumption == "base rate 0.50 configured"


@pytest.mark.parametrize("rate", [0.0, 1.0])
def test_a_base_success_rate_outside_zero_and_one_is_refused(tmp_path, rate):
    with pytest.raises(ExperimentError, match="base_success_rate"):
        load_experiment(_experiment(tmp_path, TWO_ARMS, base_success_rate=rate))


def test_the_filter_stage_is_planned_only_for_arms_that_turn_it_on(tmp_path):
    f = {"candidates": 7, "samples": 3, "below": 1}
    arms = [*TWO_ARMS, {"name": "filtered", "set": {"data.filter": f}}]
    (seed,) = _plan(tmp_path, arms, shared_rollouts=False).seeds  # it trains on other problems
    assert seed.groups["filter"] == [["filtered"]] and not seed.shared("filter")
    (seed,) = _plan(tmp_path, TWO_ARMS).seeds
    assert seed.groups["filter"] == []
