"""Trackers: a real training round on the tiny model reports its loss per step to TensorBoard files under
the run folder, eval scores land in the same tracker run, names group rounds and conditions, a misspelt
tracker is a config error, and the whole pipeline with a tracker on writes both (and keys its artifacts by
condition). Offline: only local TensorBoard files are written."""

import json
import logging
import os
from pathlib import Path

import pytest
import yaml
from test_distill import round_tables

from sdfb import distill, tracking
from sdfb.config import ConfigError, ModelConfig, build_config

ROOT = Path(__file__).resolve().parents[1]
TRACKED = [
    "name=demo",
    "model.name_or_path=tiny",
    "model.dtype=float32",
    "context.condition=step_aligned",
    "distill.learning_rate=1e-3",
    "distill.batch_size=2",
    "distill.lora.r=8",
    "distill.lora.alpha=16",
    "distill.report_to=[tensorboard]",
]


def _scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar in the TensorBoard event files of `folder`, as (step, value) pairs per tag."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


@pytest.fixture(scope="module")
def tracked_round(tiny_model_path, tiny_tokenizer, tmp_path_factory):
    """Round 1 of run `demo` trained on four samples (two steps) with report_to=[tensorboard]."""
    assert "TENSORBOARD_LOGGING_DIR" not in os.environ
    cfg = build_config({}, TRACKED)
    run_dir = tmp_path_factory.mktemp("tracked") / "run"
    run = tracking.tracker_run(cfg, run_dir, 1)
    result = distill.run_round(
        ModelConfig(name_or_path="tiny", dtype="float32"),
        cfg.distill,
        "self_distillation",
        0,
        1,
        *round_tables(tiny_tokenizer),
        previous=None,
        checkpoint=run_dir / "checkpoints" / "round_0001",
        tracking=run,
    )
    return run_dir, run, result


@pytest.mark.train
def test_a_tracked_round_writes_its_train_loss_per_step_to_tensorboard_files_in_the_run_folder(tracked_round):
    run_dir, run, result = tracked_round
    folder = run_dir / "trackers" / "tensorboard" / "demo-step_aligned-seed0-round1"
    assert run.tensorboard_dir == folder
    assert any(p.name.startswith("events.out.tfevents") for p in folder.iterdir())
    logged = _scalars(folder)["train/loss"]
    assert [step for step, _ in logged] == [1, 2] == [h["step"] for h in result.metrics["history"]]
    assert [v for _, v in logged] == pytest.approx([h["loss"] for h in result.metrics["history"]], rel=1e-6)
    health = _scalars(folder)["train/health/kl_to_start"]  # the step's health metrics ride on its log
    assert [v for _, v in health] == pytest.approx(
        [h["kl_to_start"] for h in result.metrics["history"]], rel=1e-6
    )
    assert "TENSORBOARD_LOGGING_DIR" not in os.environ  # set only while the round trained


@pytest.mark.train
def test_eval_scores_are_logged_to_the_same_tracker_run_at_the_round(tracked_round):
    run_dir, run, _ = tracked_round
    row = {
        "checkpoint": "round_0001",
        "k": 4,
        "n_problems": 20,
        "avg_at_k": 0.25,
        "pass_at_k": 0.5,
        "maj_at_k": 0.3,
        "format_rate": 0.9,
    }
    assert tracking.log_metrics(run, tracking.score_metrics(row), step=1) == ["tensorboard"]
    logged = _scalars(run.tensorboard_dir)
    assert logged["eval/avg_at_4"] == [(1, pytest.approx(0.25))]
    assert logged["eval/pass_at_4"] == [(1, pytest.approx(0.5))]
    assert logged["eval/maj_at_4"] == [(1, pytest.approx(0.3))]
    assert logged["eval/format_rate"] == [(1, pytest.approx(0.9))]
    assert "train/loss" in logged  # the round's training curve, in the same run


def test_tracker_runs_group_the_rounds_of_a_run_and_tell_its_conditions_and_seeds_apart(tmp_path):
    cfg = build_config({}, TRACKED)
    names = {
        tracking.tracker_run(build_config({}, [*TRACKED, *change]), tmp_path, r).name
        for change in ([], ["context.condition=reference"], ["seed=1"])
        for r in (0, 1)
    }
    assert len(names) == 6 and "demo-reference-seed0-round1" in names
    run = tracking.tracker_run(cfg, tmp_path, 2)
    assert (run.project, run.group) == ("demo", "demo")
    assert (
        tracking.tracker_run(build_config({}, [*TRACKED, "distill.tracker_project=exp"]), tmp_path, 2).project
        == "exp"
    )
    assert tracking.tracker_run(build_config({}, ["name=demo"]), tmp_path, 1) is None  # no tracker named
    assert (tracking.checkpoint_round("base"), tracking.checkpoint_round("round_0012")) == (0, 12)
    with pytest.raises(ValueError, match="not a checkpoint name: 'final'"):  # an error, also under python -O
        tracking.checkpoint_round("final")


def test_training_arguments_name_the_run_and_project_the_integrations_read(tmp_path):
    run = tracking.tracker_run(
        build_config({}, [*TRACKED, "distill.report_to=[trackio, wandb]"]), tmp_path, 3
    )
    args = tracking.training_arguments(run)
    assert args["report_to"] == ["trackio", "wandb"] and args["run_name"] == "demo-step_aligned-seed0-round3"
    assert args["project"] == "demo" and tracking.training_arguments(None) == {"report_to": []}
    mlflow = tracking.tracker_run(build_config({}, [*TRACKED, "distill.report_to=[mlflow]"]), tmp_path, 3)
    assert tracking.variables(mlflow)["MLFLOW_EXPERIMENT_NAME"] == "demo"
    assert json.loads(tracking.variables(mlflow)["MLFLOW_TAGS"]) == {"sdfb.group": "demo"}
    assert run.run_id == tracking.tracker_run(build_config({}, TRACKED), tmp_path, 3).run_id  # wandb: one run


def test_an_unknown_tracker_is_a_config_error_naming_it_and_the_known_ones():
    with pytest.raises(
        ConfigError, match=r"distill.report_to.*unknown tracker 'tensorbord'.*tensorboard, trackio"
    ):
        build_config({}, ["distill.report_to=[tensorboard, tensorbord]"])
    assert build_config({}, ["distill.report_to=tensorboard"]).distill.report_to == ("tensorboard",)


def test_a_tracker_sdfb_cannot_write_scores_to_gets_a_warning_not_an_error(tmp_path, caplog):
    run = tracking.TrackerRun(("codecarbon",), "p", "g", "n", tmp_path)
    with caplog.at_level(logging.WARNING, logger="sdfb.tracking"):
        assert tracking.log_metrics(run, {"eval/avg_at_4": 0.5}, step=0) == []
    assert "codecarbon gets the training curves but not eval/avg_at_4" in caplog.text


def test_tracker_settings_are_in_no_stage_key_so_turning_them_on_redoes_nothing(tmp_path):
    from sdfb import stages

    plain = build_config({}, ["name=demo"])
    tracked = build_config(
        {},
        [
            *TRACKED[:1],
            "distill.report_to=[tensorboard, mlflow]",
            "distill.tracker_project=p",
            "distill.push_to_hub=me/r{round}",
            "distill.hub_token_secret=t",
        ],
    )
    for spec in stages.TABLE:
        assert stages.config_part(plain, spec.name) == stages.config_part(tracked, spec.name), spec.name
    assert "report_to" not in stages.config_part(tracked, "distill")["distill"]


# ------------------------------------------------------------------------------------------- the whole flow
@pytest.mark.flow
def test_the_pipeline_reports_training_and_eval_scores_of_each_round_to_its_tracker_run(
    prefect_server, tiny_model_path, tmp_path
):
    from prefect.artifacts import Artifact

    from flows.pipeline import pipeline

    tree = yaml.safe_load((ROOT / "configs" / "smoke.yaml").read_text())
    cfg = build_config(tree, ["rounds=1", "distill.report_to=[tensorboard]"])
    pipeline(cfg, str(tmp_path / "run"))
    runs = tmp_path / "run" / "trackers" / "tensorboard"
    base, first = (
        _scalars(runs / "smoke-step_aligned-seed0-round0"),
        _scalars(runs / "smoke-step_aligned-seed0-round1"),
    )
    assert set(base) == {"eval/avg_at_2", "eval/pass_at_2", "eval/maj_at_2", "eval/format_rate"}
    assert [step for step, _ in base["eval/avg_at_2"]] == [0]
    assert [step for step, _ in first["eval/avg_at_2"]] == [1]
    assert len(first["train/loss"]) >= 1 and [step for step, _ in first["round/mean_kl"]] == [1]
    for key in (
        "smoke-step-aligned-results",
        "smoke-step-aligned-scores-base",
        "smoke-step-aligned-scores-round-0001",
    ):
        assert Artifact.get(key) is not None, key
