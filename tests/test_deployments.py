"""prefect.yaml read and checked before anything is registered: entrypoints, configs that must exist and
validate, tags that say what runs, schedules that are off unless turned on."""

import json
from pathlib import Path

import pytest

from sdfb.deployments import DeploymentError, load_deployments, run_name

ROOT = Path(__file__).resolve().parents[1]


def _file(tmp_path, *entries) -> Path:
    path = tmp_path / "prefect.yaml"
    path.write_text(json.dumps({"deployments": list(entries)}))
    return path


def _entry(name="d", config="configs/smoke.yaml", **extra):
    return {
        "name": name,
        "entrypoint": "flows/deployments.py:run_recipe",
        "parameters": {"config": config},
    } | extra


def test_the_repository_deployments_validate_and_say_what_runs():
    specs = {s.name: s for s in load_deployments(ROOT / "prefect.yaml", ROOT)}
    assert {"demo", "smoke", "experiment-demo"} <= set(specs)
    assert {"model:smollm2-135m", "condition:step_aligned"} <= set(specs["demo"].tags)
    (nightly,) = specs["demo"].schedules
    assert nightly.cron and not nightly.active  # a schedule, off by default
    arms = {t for t in specs["experiment-demo"].tags if t.startswith("condition:")}
    assert len(arms) > 1  # an experiment is tagged with every arm's condition


def test_a_missing_config_fails_at_deploy_time(tmp_path):
    with pytest.raises(DeploymentError, match=r"deployment 'd' .* config .*nope.yaml does not exist"):
        load_deployments(_file(tmp_path, _entry(config="nope.yaml")), ROOT)


def test_an_invalid_config_fails_with_its_own_message(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("distill: {learning_rte: 0.1}\n")
    with pytest.raises(DeploymentError, match="learning_rte") as raised:
        load_deployments(_file(tmp_path, _entry(config=str(bad))), ROOT)
    assert "deployment 'd'" in str(raised.value)


def test_an_invalid_override_fails_at_deploy_time(tmp_path):
    entry = _entry()
    entry["parameters"]["overrides"] = ["rounds=-1"]
    with pytest.raises(DeploymentError, match="rounds"):
        load_deployments(_file(tmp_path, entry), ROOT)


def test_an_unknown_entrypoint_or_deployment_name_is_refused(tmp_path):
    with pytest.raises(DeploymentError, match="entrypoint"):
        load_deployments(_file(tmp_path, _entry(entrypoint="flows/pipeline.py:pipeline")), ROOT)
    with pytest.raises(DeploymentError, match="no deployment named x"):
        load_deployments(_file(tmp_path, _entry()), ROOT, only=["x"])


def test_a_schedule_needs_exactly_one_of_cron_or_interval(tmp_path):
    entry = _entry(schedules=[{"cron": "0 2 * * *", "interval": 60}])
    with pytest.raises(DeploymentError, match="exactly one of cron or interval"):
        load_deployments(_file(tmp_path, entry), ROOT)
    (spec,) = load_deployments(_file(tmp_path, _entry(schedules=[{"interval": 30, "active": True}])), ROOT)
    assert spec.schedules[0].interval == 30 and spec.schedules[0].active


def test_run_names_say_recipe_condition_and_date():
    from sdfb.config import load_config

    assert run_name(load_config(ROOT / "configs/demo.yaml"), "2026-11-29") == "demo-step_aligned-2026-11-29"
