"""The stage table: paths and keys derived from it, a stage's compute sees only the config
keys it declares, and changing one config key redoes exactly the stages that read it (and
those whose inputs changed as a result)."""

import json
import shutil
from pathlib import Path

import pytest
import yaml

from sdfb import stages
from sdfb.config import build_config

ROOT = Path(__file__).resolve().parents[1]
ALL = {s.name for s in stages.TABLE}

# One change per config section (and the keys inside `rollout` that only some stages read), with the stages
# that read it: the specification the table must meet. `name` and `rounds` shape the flow, not any stage's
# output.
CHANGES = {
    # the run seed never moves the eval problems: every seed of an experiment is scored on the same ones
    "seed=1": {"problems", "rollouts", "critiques", "teacher", "distill", "eval_samples"},
    "data.problems_per_round=5": {"eval_problems", "filter", "problems"},
    "data.seed=1": {"eval_problems", "filter", "problems"},
    "data.training_problems=per_seed": {"eval_problems", "filter", "problems"},
    "data.filter.candidates=8": {"eval_problems", "filter", "problems"},
    "model.dtype=bfloat16": {"filter", "rollouts", "teacher", "distill", "eval_samples"},
    "model.name_or_path=other-model": {
        "filter",
        "rollouts",
        "contexts",
        "teacher",
        "distill",
        "eval_samples",
    },
    "prompt.template=v2": {"filter", "rollouts", "contexts", "eval_samples"},
    "prompt.enable_thinking=false": {"filter", "rollouts", "contexts", "eval_samples"},
    "rollout.engine=vllm": {"filter", "rollouts", "teacher", "eval_samples"},
    "rollout.vllm.max_model_len=256": {"filter", "rollouts", "teacher", "eval_samples"},
    "rollout.batch_size=2": {"filter", "rollouts", "teacher"},
    "rollout.sampling.temperature=0.5": {"filter", "rollouts"},
    "grading.timeout_seconds=7": {"filter", "grades", "critiques", "eval_samples"},
    "critic.max_failed_share=0.5": {"critiques"},
    "context.condition=reference": {"contexts", "teacher", "distill"},
    "distill.learning_rate=0.002": {"distill"},
    "distill.teacher_source=engine": {"teacher", "distill"},
    "eval.sampling.temperature=0.5": {"eval_samples"},
    "eval.k=1": {"eval_samples", "scores"},
    # each eval set's stages are keyed on the set (tests/test_eval_sets.py): adding one redoes nothing here
    'eval.sets=[{"name": "aime", "preset": "aime"}]': set(),
    # where a run is reported and published: no stage's key (stages.UNHASHED), so a finished run stays
    # finished
    "distill.report_to=[tensorboard]": set(),
    "distill.tracker_project=other": set(),
    "distill.push_to_hub=me/sdfb-round{round}": set(),
    "distill.hub_token_secret=other-token": set(),
    # how training is judged (distill.health), not what it computes: also outside every key
    "distill.health.max_kl_to_start=5": set(),
    "distill.health.stop=true": set(),
    "name=other": set(),
    "rounds=3": set(),
}


def _smoke_tree() -> dict:
    return yaml.safe_load((ROOT / "configs" / "smoke.yaml").read_text())


# One round, and a context length the tiny model (2048 positions) allows when the engine is switched to vLLM.
RUN = ["rounds=1", "rollout.vllm.max_model_len=512"]


def _keys(cfg) -> dict[str, str]:
    """Each stage's key with every input absent, so only the config and parameters can differ."""
    keys = {}
    for spec in stages.TABLE:
        params = {"round": 1} if "round" in spec.params else {}
        params |= {"checkpoint": "base"} if "checkpoint" in spec.params else {}
        keys[spec.name] = stages.stage_key(cfg, spec.name, dict.fromkeys(spec.inputs), **params).config_hash
    return keys


@pytest.mark.parametrize("change", list(CHANGES))
def test_a_config_change_changes_the_key_of_exactly_the_stages_that_read_it(change):
    before = _keys(build_config(_smoke_tree()))
    after = _keys(build_config(_smoke_tree(), [change]))
    assert {name for name in ALL if before[name] != after[name]} == CHANGES[change]


def test_every_config_section_is_covered_by_the_changes_above():
    from sdfb.config import RunConfig

    changed = {change.split("=")[0].split(".")[0] for change in CHANGES}
    assert changed == set(RunConfig.model_fields)


def test_a_stage_sees_only_the_config_keys_it_declares():
    cfg = build_config(_smoke_tree())
    view = stages.config_view(cfg, "eval_samples")
    assert view.rollout.engine == "hf" and view.rollout.vllm == cfg.rollout.vllm and view.eval == cfg.eval
    with pytest.raises(AttributeError, match="stage 'eval_samples' reads config key 'rollout.sampling'"):
        _ = view.rollout.sampling
    with pytest.raises(AttributeError, match="does not declare it: add it to the stage's `reads`"):
        _ = stages.config_view(cfg, "grades").distill


def test_a_stage_key_needs_exactly_the_declared_inputs_and_parameters():
    cfg = build_config(_smoke_tree())
    with pytest.raises(ValueError, match="stage 'grades' declares inputs"):
        stages.stage_key(cfg, "grades", {"rollouts": None}, round=1)
    with pytest.raises(ValueError, match="declares inputs"):
        stages.stage_key(cfg, "grades", {"rollouts": None, "problems": None})  # no round


def test_every_input_is_another_stages_output_or_a_model_folder():
    outputs = {out for spec in stages.TABLE for out in spec.outputs}
    for spec in stages.TABLE:
        assert set(spec.inputs) <= outputs | {"adapter", "previous"}, spec.name
    paths = [out.path for spec in stages.TABLE for out in spec.outputs.values()]
    assert len(paths) == len(set(paths))


def test_paths_come_from_the_table(tmp_path):
    assert stages.output_path(tmp_path, "rollouts", round=3) == tmp_path / "round_0003" / "rollouts.parquet"
    assert (
        stages.output_path(tmp_path, "distill", "checkpoint", round=1)
        == tmp_path / "checkpoints" / "round_0001"
    )
    assert (
        stages.output_path(tmp_path, "scores", checkpoint="base") == tmp_path / "eval" / "base.scores.parquet"
    )
    with pytest.raises(KeyError, match="unknown stage 'rollout'"):
        stages.output_path(tmp_path, "rollout", round=1)


def test_a_stop_defaults_to_the_first_round_that_has_the_stage():
    assert stages.stop_after("teacher", None, 3, 0) == stages.StopAfter("teacher", 1)
    assert stages.stop_after("eval_problems", None, 3, 0) == stages.StopAfter("eval_problems", 0)
    assert stages.stop_after("scores", None, 3, 0) == stages.StopAfter("scores", 0)  # the base model's
    assert stages.stop_after("scores", 3, 3, 0) == stages.StopAfter("scores", 3)
    assert stages.stop_after(None, None, 3, 0) == stages.StopAfter()


@pytest.mark.parametrize(
    ("name", "round_index", "message"),
    [
        (
            "distillation",
            None,
            "unknown stage 'distillation' for --until; the stages are: eval_problems, filter, problems",
        ),
        ("teacher", 4, "runs in round.s. 1, 2, 3 of this run"),
        ("teacher", 0, "runs in round.s. 1, 2, 3 of this run"),
        ("scores", 2, "runs in round.s. 0, 3 of this run"),  # round 2 is not scored with eval.every=0
        ("eval_problems", 1, "runs in round.s. 0 of this run"),
        (None, 2, "--until-round needs --until"),
    ],
)
def test_a_stop_the_run_never_reaches_is_refused_with_the_valid_choices(name, round_index, message):
    with pytest.raises(ValueError, match=message):
        stages.stop_after(name, round_index, 3, 0)


def test_a_run_stops_only_after_the_stage_and_round_it_was_asked_for():
    stop = stages.StopAfter("contexts", 2)
    stop.check("contexts", 1, "round_0001/contexts.parquet")
    stop.check(("eval_samples", "scores"), 2, "eval/round_0002.scores.parquet")
    with pytest.raises(stages.StopReached) as reached:
        stop.check("contexts", 2, "round_0002/contexts.parquet")
    assert (
        reached.value.path == "round_0002/contexts.parquet"
        and str(reached.value.stop) == "contexts of round 2"
    )


# ------------------------------------------------------------------------------------------- on a real run
def _manifests(run_dir: Path) -> dict[str, dict]:
    return {str(p.relative_to(run_dir)): json.loads(p.read_text()) for p in run_dir.rglob("*.manifest.json")}


@pytest.fixture(scope="module")
def finished_run(prefect_server, tiny_model_path, tmp_path_factory):
    from flows.pipeline import pipeline

    run_dir = tmp_path_factory.mktemp("stages") / "run"
    pipeline(build_config(_smoke_tree(), RUN), str(run_dir))
    return run_dir


REAL_CHANGES = [
    "seed=1",
    "rollout.sampling.temperature=0.5",
    "rollout.vllm.max_model_len=256",
    "grading.timeout_seconds=7",
    "critic.max_failed_share=0.5",
    "context.condition=reference",
    "distill.learning_rate=0.002",
    "eval.k=1",
    "name=other",
    "distill.report_to=[tensorboard]",
    pytest.param("rollout.engine=vllm", marks=pytest.mark.vllm),
]


@pytest.mark.flow
@pytest.mark.parametrize("change", REAL_CHANGES)
def test_a_rerun_after_a_config_change_redoes_the_readers_and_only_stages_whose_inputs_changed(
    finished_run, tmp_path, change
):
    """Every stage that reads the changed key is redone; every other stage is redone only when one of its
    inputs now has different content (a stage redone with the same content, such as grades under a new
    timeout, does not redo what follows it)."""
    from flows.pipeline import pipeline
    from sdfb.generation import release_engines

    run_dir = tmp_path / "run"
    shutil.copytree(finished_run, run_dir)
    before = _manifests(run_dir)
    try:
        pipeline(build_config(_smoke_tree(), [*RUN, change]), str(run_dir))
    finally:
        release_engines()
    after = _manifests(run_dir)
    assert set(after) == set(before)
    readers = CHANGES[change]
    for rel, manifest in after.items():
        redone = manifest["finished_at"] != before[rel]["finished_at"]
        name = "distill" if manifest["stage"] in ("tokens", "checkpoint") else manifest["stage"]
        if name in readers:
            assert redone, f"{rel} reads {change} but was reused"
        else:
            inputs_changed = manifest["input_hashes"] != before[rel]["input_hashes"]
            assert redone == inputs_changed, f"{rel}: redone={redone}, inputs changed={inputs_changed}"


def test_a_switched_stage_runs_only_while_its_key_is_set_and_its_readers_get_none_otherwise():
    tree = _smoke_tree()
    tree.setdefault("data", {}).pop("filter", None)
    off = build_config(tree)  # no data.filter: the default, off
    on = build_config(tree, ["data.filter.candidates=8"])
    assert [s.name for s in stages.TABLE if s.switch] == ["filter"]
    assert not stages.stage_on(off, "filter") and stages.stage_on(on, "filter")
    assert stages.absent_inputs(off) == {"filter"} and stages.absent_inputs(on) == set()
    assert all(stages.stage_on(off, s.name) for s in stages.TABLE if s.name != "filter")
