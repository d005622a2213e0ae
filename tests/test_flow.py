"""The whole pipeline on the smoke config under a real (temporary) Prefect server: every file of the run
folder, manifests, artifacts, skipping finished stages on a rerun and resuming after a crash."""

import json
from pathlib import Path

import pandas as pd
import pytest

from sdfb.config import load_config
from sdfb.store import manifest_path

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.flow


@pytest.fixture(scope="module")
def smoke_run(prefect_server, tiny_model_path, tmp_path_factory):
    from flows.pipeline import pipeline

    cfg = load_config(ROOT / "configs" / "smoke.yaml")
    run_dir = tmp_path_factory.mktemp("smoke")
    summary_path = Path(pipeline(cfg, str(run_dir)))
    # Kept as the first run wrote it: the rerun tests below rewrite summary.json (with nothing left to do),
    # and the tests run in random order.
    return cfg, run_dir, json.loads(summary_path.read_text())


def _expected_files(run_dir: Path, rounds: int) -> list[Path]:
    files = [run_dir / "eval" / "problems.parquet", run_dir / "eval" / "base.parquet"]
    for r in range(1, rounds + 1):
        files += [
            run_dir / f"round_{r:04d}" / f"{s}.parquet"
            for s in ("problems", "rollouts", "grades", "critiques", "contexts")
        ]
        files.append(run_dir / "checkpoints" / f"round_{r:04d}")
    files.append(run_dir / "eval" / f"round_{rounds:04d}.parquet")
    return files


def _manifest_times(run_dir: Path) -> dict[str, str]:
    return {str(p): json.loads(p.read_text())["finished_at"] for p in run_dir.rglob("*.manifest.json")}


def test_the_smoke_run_writes_every_stage_with_a_manifest_and_a_summary(smoke_run):
    cfg, run_dir, summary = smoke_run
    for path in _expected_files(run_dir, cfg.rounds):
        assert path.exists(), f"missing {path}"
        manifest = json.loads(manifest_path(path).read_text())
        assert manifest["config_hash"] and "versions" in manifest and "input_hashes" in manifest
        if path.suffix == ".parquet":
            assert manifest["rows"] == len(pd.read_parquet(path)) > 0
    assert (run_dir / "checkpoints" / "round_0002" / "adapter_model.safetensors").exists()
    tokens = pd.read_parquet(run_dir / "round_0001" / "tokens.parquet")
    per_sample = pd.read_parquet(run_dir / "round_0001" / "distill.parquet")
    assert len(tokens) == per_sample["n_tokens"].sum() > 0  # one record per trained token
    assert [s["checkpoint"] for s in summary["scores"]] == ["base", "round_0002"]
    assert summary["base_student"]["format_rate"] >= 0 and len(summary["rounds"]) == cfg.rounds
    assert summary["rounds"][0]["distill"]["examples"] == cfg.data.problems_per_round
    assert set(summary["timing"]["per_stage_seconds"]) >= {"rollouts", "distill", "eval_samples"}
    assert 0 <= summary["timing"]["prefect_overhead_share"] < 1


def test_rollouts_are_trained_on_by_the_policy_that_sampled_them(smoke_run):
    _, run_dir, _ = smoke_run
    round1 = pd.read_parquet(run_dir / "round_0001" / "rollouts.parquet")
    round2 = pd.read_parquet(run_dir / "round_0002" / "rollouts.parquet")
    assert set(round1["policy_version"]) == {"base"} and set(round2["policy_version"]) == {"round_0001"}
    assert (round1["completion_ids"].map(len) == round1["logprobs"].map(len)).all()
    problems1 = pd.read_parquet(run_dir / "round_0001" / "problems.parquet")
    problems2 = pd.read_parquet(run_dir / "round_0002" / "problems.parquet")
    evals = pd.read_parquet(run_dir / "eval" / "problems.parquet")
    assert not set(problems1["problem_id"]) & set(problems2["problem_id"])  # a fresh batch each round
    assert not (set(problems1["problem_id"]) | set(problems2["problem_id"])) & set(evals["problem_id"])


def test_scores_are_published_as_prefect_artifacts(smoke_run):
    from prefect.artifacts import Artifact

    cfg, _, _ = smoke_run
    keys = (
        "scores-base",
        "scores-round-0002",
        "results",
        "localisation",
    )  # after the run's name and condition
    for key in (f"smoke-step-aligned-{key}" for key in keys):
        artifact = Artifact.get(key)
        assert artifact is not None, f"no artifact {key}"
    assert "Avg@k" in Artifact.get("smoke-step-aligned-results").data
    assert "neg. mass in wrong step" in Artifact.get("smoke-step-aligned-localisation").data
    for r in range(1, cfg.rounds + 1):  # each round's health, from the distill task
        assert "format_rate" in Artifact.get(f"smoke-step-aligned-seed{cfg.seed}-round{r}-health").data
        assert "kl_to_start" in Artifact.get(f"smoke-step-aligned-seed{cfg.seed}-round{r}-health-steps").data


def test_every_trained_token_is_located_and_each_round_reports_where_the_signal_falls(smoke_run):
    """Step-aligned critiques on the smoke run: tokens carry their step line and segment, and the summary
    holds the round's localisation with intervals and whether the signal is alive."""
    _, run_dir, summary = smoke_run
    tokens = pd.read_parquet(run_dir / "round_0001" / "tokens.parquet")
    assert set(tokens["segment"]) <= {"prefix", "wrong_step", "after", "answer", "other", "unknown"}
    assert (tokens.loc[tokens["segment"] == "wrong_step", "step_index"] >= 1).all()
    for stats in summary["rounds"]:
        loc = stats["localisation"]
        assert loc["attempts"] == stats["distill"]["examples"]
        assert 0 <= loc["activity"]["active_tokens"] <= 1 and loc["inactive"] is False
        # The tiny random model writes no "Step k" lines, so the critic names no wrong step (it gives -1) and
        # nothing can be localised: the measures must say so with n = 0 and no number, not a share of 0.
        round_dir = run_dir / f"round_{stats['round']:04d}"
        critiques = pd.read_parquet(round_dir / "critiques.parquet")
        assert (critiques["first_wrong_step"].fillna(-1) < 1).all()
        assert not (pd.read_parquet(round_dir / "tokens.parquet")["segment"] == "wrong_step").any()
        assert loc["attempts_with_wrong_step"] == loc["attempts_counted"] == 0
        for measure in ("neg_mass_in_wrong_step", "wrong_step_token_share", "share_minus_chance"):
            assert loc[measure]["n"] == 0 and pd.isna(loc[measure]["mean"])


def test_a_rerun_skips_every_finished_stage(smoke_run):
    from flows.pipeline import pipeline

    cfg, run_dir, _ = smoke_run
    before = _manifest_times(run_dir)
    pipeline(cfg, str(run_dir))
    assert _manifest_times(run_dir) == before


def test_a_crashed_stage_is_redone_on_rerun_and_nothing_before_it(smoke_run):
    """A stage killed before its manifest was written leaves a Parquet file without one; the rerun redoes
    that stage and what depends on it, and keeps every earlier output."""
    from flows.pipeline import pipeline

    cfg, run_dir, _ = smoke_run
    checkpoint = run_dir / "checkpoints" / "round_0002"
    manifest_path(checkpoint).unlink()
    manifest_path(run_dir / "eval" / "round_0002.parquet").unlink()
    before = _manifest_times(run_dir)
    pipeline(cfg, str(run_dir))
    after = _manifest_times(run_dir)
    for path, finished in before.items():
        if not any(part in path for part in ("round_0002/distill", "round_0002/tokens", "round_0002.scores")):
            assert after[path] == finished, f"{path} was redone"
    assert (
        manifest_path(checkpoint).exists() and manifest_path(run_dir / "eval" / "round_0002.parquet").exists()
    )
    assert (
        after[str(run_dir / "round_0002" / "distill.parquet.manifest.json")]
        != before[str(run_dir / "round_0002" / "distill.parquet.manifest.json")]
    )


def test_train_round_command_trains_a_round_outside_the_flow(smoke_run, tmp_path):
    """`sdfb train-round` (the entry point for `accelerate launch`) redoes a round's training from its stored
    rollouts and writes the same outputs as the flow's distill stage."""
    import shutil

    from typer.testing import CliRunner

    from cli.main import app

    _, run_dir, _ = smoke_run
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    manifest_path(copy / "checkpoints" / "round_0001").unlink()

    def train_round(round_index: int):
        args = ["train-round", "--config", str(ROOT / "configs" / "smoke.yaml"), "--run-dir", str(copy)]
        return CliRunner().invoke(app, [*args, "--round", str(round_index)])

    result = train_round(1)
    assert result.exit_code == 0, result.output
    assert manifest_path(copy / "checkpoints" / "round_0001").exists()
    assert (copy / "checkpoints" / "round_0001" / "adapter_model.safetensors").exists()
    beyond = train_round(5)
    assert beyond.exit_code == 2 and "this run has rounds 1 to 2" in beyond.output


def test_report_draws_a_single_run_as_one_arm(smoke_run, tmp_path):
    """`sdfb report RUN_DIR` on a plain run: its analysis tables (one
    arm, no comparisons) and the HTML file."""
    import shutil

    from typer.testing import CliRunner

    from cli.main import app

    _, run_dir, _ = smoke_run
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    result = CliRunner().invoke(app, ["report", str(copy)])
    assert result.exit_code == 0, result.output
    summary = json.loads((copy / "analysis" / "summary.json").read_text())
    assert summary["kind"] == "run" and list(summary["arms"]) == ["smoke"]
    scores = pd.read_parquet(copy / "analysis" / "scores.parquet")
    assert set(scores["checkpoint"]) == {"base", "round_0002"} and set(scores["arm"]) == {"smoke"}
    assert "smoke" in (copy / "report.html").read_text()
    missing = CliRunner().invoke(app, ["report", str(tmp_path / "nothing")])
    assert (
        missing.exit_code == 2 and "neither an experiment folder nor a finished run folder" in missing.output
    )


def test_long_stages_show_their_progress_in_the_ui(smoke_run):
    """Progress artifacts on the rollouts, distillation and scoring task runs, finished at 100%."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterType

    with get_client(sync_client=True) as client:
        progress = client.read_artifacts(
            artifact_filter=ArtifactFilter(type=ArtifactFilterType(any_=["progress"]))
        )
    finished = {a.description.split(":")[0] for a in progress if a.data == 100.0}
    assert {"round 1 rollouts", "round 2 distillation", "scoring base", "scoring round_0002"} <= finished


def test_a_failed_run_names_the_stage_and_the_reason_in_its_final_state(prefect_server, tmp_path):
    from flows.pipeline import pipeline
    from sdfb.problems import DataError

    data = tmp_path / "problems.jsonl"
    data.write_bytes(b'{"q": "caf\xe9?", "sol": "1 + 1 = 2", "ans": "2"}\n')
    cfg = load_config(
        ROOT / "configs" / "smoke.yaml",
        [
            "data.source=jsonl",
            f"data.path={data}",
            "data.columns.question=q",
            "data.columns.solution=sol",
            "data.columns.answer=ans",
        ],
    )
    state = pipeline(cfg, str(tmp_path / "run"), return_state=True)
    assert state.is_failed()
    assert state.message.startswith("stage eval_problems failed: DataError: ")
    assert "UTF-8" in state.message
    with pytest.raises(DataError):  # a caller of the flow (the CLI) still gets the exception itself
        pipeline(cfg, str(tmp_path / "run"))
