"""Multi-process training: a smoke run stopped before its first distillation (`sdfb run --until
teacher`), its round trained by `sdfb train-round` in one process and under `accelerate launch`
in two CPU processes (gloo) with the same global batch, the two results compared, and the
flow's rerun reusing the round trained outside it."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from sdfb_process import sdfb_run
from typer.testing import CliRunner

from cli.main import app
from sdfb.config import load_config
from sdfb.store import manifest_path

ROOT = Path(__file__).resolve().parents[1]
SMOKE = str(ROOT / "configs" / "smoke.yaml")
pytestmark = [pytest.mark.distributed, pytest.mark.flow]

RUN = ["data.problems_per_round=8"]  # 8 trainable samples: two optimizer steps of a global batch of 4
# The same global batch of 4 both ways, in micro-batches of 2: one process accumulates two of them per step,
# two processes take one each (accelerate hands process k the batches k, k + 2, ...: the same pairs, in the
# same order).
ONE_PROCESS = [*RUN, "distill.batch_size=2", "distill.gradient_accumulation_steps=2"]
TWO_PROCESSES = [*RUN, "distill.batch_size=2", "distill.gradient_accumulation_steps=1"]
# accelerate 1.16 starts several CPU processes only through torchrun (its multi-GPU launcher) or mpirun:
# `--cpu` and `distributed_type: MULTI_CPU` without an MPI hostfile start one. On a machine without CUDA the
# training arguments ask for the CPU, so the two processes join a gloo group (recorded as `processes` in the
# metrics).
LAUNCH = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
LAUNCH += [
    "--num_machines",
    "1",
    "--mixed_precision",
    "no",
    "--dynamo_backend",
    "no",
    "--main_process_port",
    "0",
]
# Tolerance: fp32 throughout. Two processes sum their gradients in gloo's all-reduce and halve them; one
# process adds the two halved micro-batch gradients. With two addends both orders give the same bits (seen
# here: equal bitwise), but more processes or another reduction order can differ in the last bits of a float32
# (~1e-7 relative), which two Adam steps do not amplify: 1e-5 relative, 1e-7 absolute leaves room for that and
# nothing else (a different batch or a missed process changes the weights by ~1e-3, the learning rate).
TOLERANCE = {"rtol": 1e-5, "atol": 1e-7}


def _sets(overrides: list[str]) -> list[str]:
    return [arg for item in overrides for arg in ("--set", item)]


def _train_round(run_dir: Path, overrides: list[str], launcher: list[str]) -> subprocess.CompletedProcess:
    command = [*launcher, "-m", "cli.main", "train-round", "--config", SMOKE, "--run-dir", str(run_dir)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # every process of the launch runs this checkout's code
    return subprocess.run(
        [*command, "--round", "1", *_sets(overrides)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.fixture(scope="module")
def before_training(api_url, tiny_model_path, tmp_path_factory) -> tuple[Path, str]:
    run_dir = tmp_path_factory.mktemp("distributed") / "run"
    result = sdfb_run(run_dir, api_url, RUN, args=["--until", "teacher"])
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return run_dir, result.stdout


@pytest.fixture(scope="module")
def trained(before_training) -> tuple[Path, Path]:
    run_dir, _ = before_training
    one, two = run_dir.with_name("one"), run_dir.with_name("two")
    shutil.copytree(run_dir, one)
    shutil.copytree(run_dir, two)
    for folder, overrides, launcher in ((one, ONE_PROCESS, [sys.executable]), (two, TWO_PROCESSES, LAUNCH)):
        result = _train_round(folder, overrides, launcher)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return one, two


def _metrics(run_dir: Path) -> dict:
    return json.loads(manifest_path(run_dir / "round_0001" / "distill.parquet").read_text())["metrics"]


def _adapter(run_dir: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(run_dir / "checkpoints" / "round_0001" / "adapter_model.safetensors")


def test_a_run_until_teacher_stops_before_its_first_training_with_every_earlier_stage_finished(
    before_training,
):
    run_dir, stdout = before_training
    assert "stopped after teacher of round 1" in " ".join(stdout.split())
    for stage in ("problems", "rollouts", "grades", "critiques", "contexts", "teacher"):
        assert manifest_path(run_dir / "round_0001" / f"{stage}.parquet").exists(), stage
    assert manifest_path(run_dir / "eval" / "base.scores.parquet").exists()
    assert not (run_dir / "checkpoints").exists() and not (run_dir / "summary.json").exists()


def test_two_cpu_processes_train_the_round_as_one_process_does_with_the_same_global_batch(trained):
    one, two = trained
    single, double = _metrics(one), _metrics(two)
    assert (single["processes"], double["processes"]) == (1, 2)
    assert single["steps"] == double["steps"] == 2 and single["examples"] == double["examples"] == 8
    for name in ("loss", "grad_norm", "kl"):
        steps = [[h[name] for h in m["history"]] for m in (single, double)]
        torch.testing.assert_close(torch.tensor(steps[1]), torch.tensor(steps[0]), **TOLERANCE)
    first, second = _adapter(one), _adapter(two)
    assert first.keys() == second.keys()
    for name, weights in first.items():
        torch.testing.assert_close(second[name], weights, **TOLERANCE, msg=name)
    # rank 0 writes the records of both processes' samples, not only of its own half
    keys = ["problem_id", "sample_index"]
    records = [pd.read_parquet(d / "round_0001" / "distill.parquet").sort_values(keys) for d in (one, two)]
    assert len(records[1]) == len(records[0]) == 8
    pd.testing.assert_frame_equal(
        records[1].reset_index(drop=True), records[0].reset_index(drop=True), rtol=1e-5
    )
    tokens = [pd.read_parquet(d / "round_0001" / "tokens.parquet") for d in (one, two)]
    assert len(tokens[1]) == len(tokens[0]) == records[0]["n_tokens"].sum()


def test_the_flows_rerun_reuses_the_round_that_train_round_trained(trained):
    from flows.pipeline import pipeline

    one, _ = trained
    finished = {p: p.read_text() for p in (one / "round_0001").glob("*.manifest.json")}
    checkpoint = manifest_path(one / "checkpoints" / "round_0001").read_text()
    path = pipeline(load_config(SMOKE, ONE_PROCESS), str(one), until="distill")
    assert path == str(one / "checkpoints" / "round_0001")
    assert manifest_path(one / "checkpoints" / "round_0001").read_text() == checkpoint
    assert {p: p.read_text() for p in (one / "round_0001").glob("*.manifest.json")} == finished


def test_train_round_refuses_a_round_whose_inputs_the_flow_has_not_finished_under_this_config(
    before_training,
):
    run_dir, _ = before_training

    def train(round_index: int, *overrides: str):
        args = ["train-round", "--config", SMOKE, "--run-dir", str(run_dir), "--round", str(round_index)]
        return CliRunner().invoke(app, [*args, *_sets([*RUN, *overrides])])

    later = train(2)
    assert later.exit_code == 2
    message = " ".join(later.output.split())
    assert (
        "distill (round 1)" in message and "rollouts (round 2)" in message and "teacher (round 2)" in message
    )
    assert "--until teacher --until-round 2" in message
    changed = train(
        1, "grading.workers=2"
    )  # the grades (and what follows them) were computed under another config
    assert changed.exit_code == 2 and "grades (round 1)" in " ".join(changed.output.split())
    assert "problems (round 1)" not in changed.output
    beyond = train(3)
    assert beyond.exit_code == 2 and "this run has rounds 1 to 2" in beyond.output


def test_run_refuses_an_unknown_stage_to_stop_after_naming_the_stages():
    result = CliRunner().invoke(app, ["run", "--config", SMOKE, "--until", "distillation"])
    message = " ".join(result.output.split())
    assert result.exit_code == 2 and "unknown stage 'distillation'" in message
    assert (
        "eval_problems, filter, problems, rollouts, grades, critiques, contexts, teacher, distill" in message
    )


@pytest.mark.parametrize(("name", "kind"), [("ddp", "MULTI_GPU"), ("fsdp", "FSDP"), ("zero3", "DEEPSPEED")])
def test_the_gpu_launch_configs_load_in_accelerate_with_only_settings_its_launcher_knows(name, kind):
    """As far as the GPU configs are checked here (docs/distributed.md): accelerate's own
    loader reads them, and every sharding setting is one `accelerate launch` takes (a misspelt
    one would be dropped without a word)."""
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.commands.launch import launch_command_parser

    path = ROOT / "configs" / "accelerate" / f"{name}.yaml"
    config = load_config_from_file(str(path))
    assert config.distributed_type == kind and config.num_machines == 1 and config.num_processes > 1
    known = {action.dest for action in launch_command_parser()._actions}
    assert set(config.fsdp_config) | set(config.deepspeed_config) <= known
    assert f"--config_file configs/accelerate/{name}.yaml -m cli.main train-round" in path.read_text()
