"""The experiment flow on the smoke experiment (tiny model, four arms, one seed): first-round work computed
once and shared, the none control's signal zero, the analysis tables and the report written, a rerun that
computes nothing, and added arms that run alone, one of which fails without stopping the others. Real
Prefect (the session's test server), real Parquet files, real training; the failing arm's critic key names
a Prefect Secret block that does not exist."""

import json
import shutil
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
import yaml
from typer.testing import CliRunner

from sdfb.experiment import FIRST_ROUND, by_arm, load_experiment, resolve_arms

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "configs" / "experiment-smoke.yaml"
SHARED = [
    "eval/problems",
    "eval/base",
    "eval/base.scores",
    "round_0001/problems",
    "round_0001/rollouts",
    "round_0001/grades",
    "round_0001/critiques",
]


def _run(config: Path, root: Path) -> str:
    from flows.experiment import experiment

    exp, recipe = load_experiment(config)
    configs = by_arm(resolve_arms(exp, recipe))
    return experiment(exp, configs, str(root))


def _manifests(root: Path) -> dict[str, bytes]:
    found = sorted(root.glob("seed_*/*/**/*.manifest.json"))
    return {
        str(p.relative_to(root)): p.read_bytes() for p in found if p.relative_to(root).parts[1] != "shared"
    }


@pytest.fixture(scope="module")
def smoke_experiment(prefect_server, tiny_model_path, tmp_path_factory):
    root = tmp_path_factory.mktemp("experiment") / "smoke"
    summary = _run(SMOKE, root)
    return root, json.loads(Path(summary).read_text())


pytestmark = pytest.mark.flow


def test_every_arm_trains_on_the_first_round_work_computed_once_for_all(smoke_experiment):
    root, summary = smoke_experiment
    arms = ["step_aligned", "reference", "binary", "none"]
    assert {a: summary["arms"][a]["status"] for a in arms} == dict.fromkeys(arms, "ok")
    for name in SHARED:
        manifests = {(root / "seed_0" / arm / f"{name}.parquet.manifest.json").read_bytes() for arm in arms}
        assert len(manifests) == 1, f"{name} was computed more than once"
    contexts = {
        (root / "seed_0" / arm / "round_0001/contexts.parquet.manifest.json").read_bytes() for arm in arms
    }
    assert len(contexts) == 4  # the arm's own work
    assert summary["shared"]["executions_saved"] >= len(SHARED) * 3


def test_the_control_arm_trains_on_an_advantage_of_zero(smoke_experiment):
    root, _ = smoke_experiment
    tokens = pd.read_parquet(root / "seed_0" / "none" / "round_0001" / "tokens.parquet")
    assert len(tokens) > 0 and tokens["advantage"].abs().max() < 1e-5


def test_the_analysis_has_intervals_paired_differences_and_localisation_and_the_report_is_written(
    smoke_experiment,
):
    root, summary = smoke_experiment
    analysis = root / "analysis"
    scores = pd.read_parquet(analysis / "scores.parquet")
    assert set(scores["arm"]) == {"step_aligned", "reference", "binary", "none"}
    assert (scores["low"] <= scores["estimate"]).all() and (scores["estimate"] <= scores["high"]).all()
    assert scores.groupby("arm")["chosen"].sum().eq(3).all()  # one chosen checkpoint per arm, three metrics
    comparisons = pd.read_parquet(analysis / "comparisons.parquet")
    assert len(comparisons) == 3 * 3 * 2 and set(comparisons["reference"]) == {"none"}
    assert comparisons["p_value"].between(0, 1).all()
    split = summary["split"]
    assert split["validation_problems"] + split["test_problems"] == 6
    assert (scores["n_problems"] == split["test_problems"]).all()  # scores never use validation problems
    localisation = pd.read_parquet(analysis / "localisation.parquet")
    assert {"neg_mass_in_wrong_step", "active_tokens"} <= set(localisation["measure"])
    none_active = localisation[(localisation["arm"] == "none") & (localisation["measure"] == "active_tokens")]
    assert none_active["mean"].tolist() == [0.0]
    assert not pd.read_parquet(analysis / "tokens_sample.parquet").empty
    html = (root / "report.html").read_text()
    assert "experiment-smoke" in html and html.count("<script") >= 2


def test_a_rerun_computes_nothing_and_an_added_arm_runs_alone_while_a_failing_one_stops_only_itself(
    smoke_experiment, tmp_path
):
    # on a copy: the arms added below would otherwise enter the analysis the other tests read, in whatever
    # order the shuffled suite runs them
    root = tmp_path / "smoke"
    shutil.copytree(smoke_experiment[0], root)
    before = _manifests(root)
    _run(SMOKE, root)
    assert _manifests(root) == before  # every stage of every arm reused

    spec = yaml.safe_load(SMOKE.read_text())
    spec["recipe"] = str(SMOKE.parent / spec["recipe"])
    spec["arms"].append({"name": "no_repeat", "set": {"context.condition": "aligned_no_repeat"}})
    # its critic's key is in a Prefect Secret block that does not exist: the critique stage fails at its start
    down = {
        "critic.kind": "openai",
        "critic.model": "nobody",
        "critic.openai.api_key_block": "sdfb-no-such-secret",
    }
    spec["arms"].append({"name": "critic_down", "set": {"context.condition": "step_aligned", **down}})
    grown = tmp_path / "grown.yaml"
    grown.write_text(yaml.safe_dump(spec))
    summary = json.loads(Path(_run(grown, root)).read_text())

    after = _manifests(root)
    assert {k: v for k, v in after.items() if k in before} == before  # the first four arms were not touched
    new = {k.split("/")[1] for k in after if k not in before}
    assert new == {"no_repeat", "critic_down"}
    assert summary["arms"]["no_repeat"]["status"] == "ok"
    assert summary["arms"]["critic_down"]["status"] == "failed"
    assert "sdfb-no-such-secret" in summary["arms"]["critic_down"]["error"]
    assert (root / "seed_0" / "no_repeat" / "round_0001" / "rollouts.parquet.manifest.json").read_bytes() == (
        root / "seed_0" / "none" / "round_0001" / "rollouts.parquet.manifest.json"
    ).read_bytes()  # the new arm trained on the rollouts the others did


def test_plan_prints_the_paper_experiment_without_running_anything():
    from cli.main import app

    result = CliRunner().invoke(
        app, ["experiment", "--config", "configs/gpu/paper-experiment.yaml", "--plan"]
    )
    assert result.exit_code == 0, result.output
    assert "Qwen/Qwen3-1.7B" in result.output and "rollouts" in result.output
    assert "12 runs" in result.output and "trained tokens" in result.output
    assert all(stage in result.output for stage in FIRST_ROUND)


def test_arms_that_claim_shared_rollouts_but_sample_differently_are_refused_before_any_work(tmp_path):
    from cli.main import app

    spec = yaml.safe_load(SMOKE.read_text())
    spec["recipe"] = str(SMOKE.parent / spec["recipe"])
    spec["arms"][0]["set"] = {"context.condition": "step_aligned", "rollout.sampling.n": 4}
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(spec))
    result = CliRunner().invoke(app, ["experiment", "--config", str(bad), "--run-dir", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert "cannot share first-round rollouts" in result.output and "rollout.sampling.n" in result.output
    assert not (tmp_path / "run").exists()


def test_plan_prints_the_split_sizes_and_the_smallest_detectable_difference_with_its_assumption():
    from cli.main import app
    from sdfb.experiment.power import minimum_detectable_difference

    result = CliRunner().invoke(
        app, ["experiment", "--config", "configs/gpu/paper-experiment.yaml", "--plan"]
    )
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    # data no run has read yet (a hub dataset, offline): the expected split, 200 eval problems x 0.5
    assert "100 validation (checkpoint choice) / 100 test (reported) of 200 eval problems (expected:" in text
    points = 100 * minimum_detectable_difference(100, 3, 12, 0.5)
    assert "100 test problems x 3 seed(s) x k=12: smallest Avg@12 difference detectable at 80% power" in text
    assert f"{points:.1f} points; base rate 0.50 configured" in text


def test_plan_uses_the_base_rates_measured_in_the_run_folder(tmp_path):
    from cli.main import app
    from sdfb.problems import sample_eval
    from sdfb.store import StageKey, write_table

    exp, recipe = load_experiment(SMOKE)
    cfg = resolve_arms(exp, recipe)[("none", 0)]
    ids = sample_eval(cfg.data)[0]["problem_id"].tolist()
    samples = pd.DataFrame({"problem_id": ids * 2, "correct": [True, False] * len(ids)})
    base = tmp_path / "run" / "seed_0" / "none" / "eval" / "base.parquet"  # the reference arm's
    write_table(samples, base, pa.Schema.from_pandas(samples, preserve_index=False), StageKey(1, "c", {}))
    args = ["experiment", "--config", str(SMOKE), "--plan", "--run-dir", str(tmp_path / "run")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "base rates measured from" in result.output and "base.parquet" in result.output.replace("\n", "")


def test_plan_refuses_a_test_split_too_small_to_report_before_any_work(tmp_path):
    from cli.main import app

    spec = yaml.safe_load(SMOKE.read_text())
    spec["recipe"] = str(SMOKE.parent / spec["recipe"])
    del spec["min_split_problems"]  # the default minimum, 10, against the smoke experiment's 6 eval problems
    small = tmp_path / "small.yaml"
    small.write_text(yaml.safe_dump(spec))
    result = CliRunner().invoke(
        app, ["experiment", "--config", str(small), "--run-dir", str(tmp_path / "run")]
    )
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert "split would hold 3 of 6 eval problems" in text and "at least 10 are needed" in text
    assert "raise data.eval_problems to" in text and not (tmp_path / "run").exists()
