"""Several seeds and another order of arms, as a user runs them: `sdfb experiment` as a real
process (against the session's Prefect server) on the tiny model, with two seeds; and the smoke
experiment with its arms reversed, whose every table must equal the one of the arms in their
written order. Real Prefect, real Parquet, real training."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "configs" / "experiment-smoke.yaml"
pytestmark = pytest.mark.flow


def _experiment_file(tmp_path: Path, name: str, **changes) -> Path:
    spec = yaml.safe_load(SMOKE.read_text())
    spec["recipe"] = str(SMOKE.parent / spec["recipe"])
    spec.update(changes)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def _sdfb_experiment(config: Path, root: Path, api_url: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PREFECT_API_URL": api_url}
    command = [
        sys.executable,
        "-m",
        "cli.main",
        "experiment",
        "--config",
        str(config),
        "--run-dir",
        str(root),
    ]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)


def _tables(run_dir: Path) -> dict[str, pd.DataFrame]:
    return {
        str(p.relative_to(run_dir)): pd.read_parquet(p)
        for p in sorted(run_dir.rglob("*.parquet"))
        if "checkpoints" not in p.parts
    }


@pytest.fixture(scope="module")
def two_seeds(api_url, tiny_model_path, tmp_path_factory):
    folder = tmp_path_factory.mktemp("seeds")
    arms = [a for a in yaml.safe_load(SMOKE.read_text())["arms"] if a["name"] in ("step_aligned", "none")]
    config = _experiment_file(folder, "two-seeds", seeds=[0, 1], arms=arms)
    result = _sdfb_experiment(config, folder / "run", api_url)
    assert result.returncode == 0, result.stderr[-4000:]
    return folder / "run"


def test_a_two_seed_experiment_finishes_through_the_cli_and_reports_both_seeds(two_seeds):
    summary = json.loads((two_seeds / "analysis" / "summary.json").read_text())
    assert {arm["status"] for arm in summary["arms"].values()} == {"ok"}
    scores = pd.read_parquet(two_seeds / "analysis" / "scores.parquet")
    assert set(scores["n_seeds"]) == {2}
    per_problem = pd.read_parquet(two_seeds / "analysis" / "per_problem.parquet")
    assert sorted(per_problem["seed"].unique()) == [0, 1]
    html = (two_seeds / "report.html").read_text()
    assert "2 seeds" in html


def test_seeds_share_the_eval_problems_but_draw_their_own_samples(two_seeds):
    problems = [
        pd.read_parquet(two_seeds / f"seed_{s}" / "none" / "eval" / "problems.parquet") for s in (0, 1)
    ]
    assert problems[0]["problem_id"].tolist() == problems[1]["problem_id"].tolist()
    base = [pd.read_parquet(two_seeds / f"seed_{s}" / "none" / "eval" / "base.parquet") for s in (0, 1)]
    assert base[0]["problem_id"].tolist() == base[1]["problem_id"].tolist()
    assert base[0]["completion_text"].tolist() != base[1]["completion_text"].tolist()
    rollouts = [
        pd.read_parquet(two_seeds / f"seed_{s}" / "none" / "round_0001" / "rollouts.parquet") for s in (0, 1)
    ]
    assert rollouts[0]["completion_text"].tolist() != rollouts[1]["completion_text"].tolist()


def test_the_order_of_the_arms_changes_no_table(api_url, tiny_model_path, tmp_path):
    """Each arm's tables, training's included, are the same whether it runs first or last."""
    spec = yaml.safe_load(SMOKE.read_text())
    written = _experiment_file(tmp_path, "written")
    reversed_ = _experiment_file(tmp_path, "reversed", arms=list(reversed(spec["arms"])))
    for config, folder in ((written, "written"), (reversed_, "reversed")):
        result = _sdfb_experiment(config, tmp_path / folder, api_url)
        assert result.returncode == 0, result.stderr[-4000:]
    for arm in (a["name"] for a in spec["arms"]):
        got = _tables(tmp_path / "reversed" / "seed_0" / arm)
        want = _tables(tmp_path / "written" / "seed_0" / arm)
        assert set(got) == set(want) and any("tokens" in name for name in want), arm
        for name, table in want.items():
            pd.testing.assert_frame_equal(got[name], table, obj=f"{arm}/{name}")
