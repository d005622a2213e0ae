"""Model loading boundaries: code shipped with a model is not run unless the config trusts it, and servers
listen on this machine only unless told otherwise."""

import json
import shutil

import pytest

from sdfb.config import VLLMConfig, load_config
from sdfb.critic.serve import server_command
from sdfb.generation.vllm_backend import engine_settings
from sdfb.models import UntrustedCodeError, load_model, load_tokenizer


@pytest.fixture
def model_with_own_code(tmp_path, tiny_model_path):
    """The tiny model's folder, whose config names a modelling file of its own (as hub models with custom code
    do). Importing that file would leave a marker beside it: the test checks it never appears."""
    folder = tmp_path / "custom-model"
    shutil.copytree(tiny_model_path, folder)
    marker = tmp_path / "remote-code-ran"
    (folder / "modeling_custom.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\n"
        "from transformers import Qwen2Config, Qwen2ForCausalLM\n"
        "class CustomConfig(Qwen2Config):\n    model_type = 'custom_qwen'\n"
        "class CustomForCausalLM(Qwen2ForCausalLM):\n    config_class = CustomConfig\n"
    )
    config = json.loads((folder / "config.json").read_text())
    config["model_type"] = (
        "custom_qwen"  # a type transformers does not know: only the shipped code can load it
    )
    config["auto_map"] = {
        "AutoConfig": "modeling_custom.CustomConfig",
        "AutoModelForCausalLM": "modeling_custom.CustomForCausalLM",
    }
    (folder / "config.json").write_text(json.dumps(config))
    return folder, marker


def test_a_model_that_ships_code_is_refused_with_the_key_that_trusts_it_and_its_code_never_runs(
    model_with_own_code,
):
    folder, marker = model_with_own_code
    with pytest.raises(UntrustedCodeError, match=r"model\.trust_remote_code: true"):
        load_model(str(folder), dtype="float32")
    assert not marker.exists()


def test_trusting_a_models_code_is_a_config_choice_that_runs_it(model_with_own_code):
    folder, marker = model_with_own_code
    model = load_model(str(folder), dtype="float32", trust_remote_code=True)
    assert marker.read_text() == "ran"
    assert type(model).__name__ == "CustomForCausalLM"
    assert load_tokenizer(str(folder), trust_remote_code=True) is not None


def test_remote_code_is_off_by_default_in_the_config_the_engine_and_the_critic_server(tiny_model_path):
    cfg = load_config(None)
    assert cfg.model.trust_remote_code is False and cfg.critic.trust_remote_code is False
    assert engine_settings("tiny", "float32", VLLMConfig(), 0)["trust_remote_code"] is False
    assert engine_settings("tiny", "float32", VLLMConfig(), 0, True)["trust_remote_code"] is True
    command = server_command("tiny", 8123, "tiny", 512, kv_cache_gib=0.1)
    assert "--trust-remote-code" not in command
    assert "--trust-remote-code" in server_command(
        "tiny", 8123, "tiny", 512, kv_cache_gib=0.1, trust_remote_code=True
    )


def test_the_critic_server_listens_on_this_machine_only_unless_told_otherwise(tiny_model_path):
    command = server_command("tiny", 8123, "tiny", 512, kv_cache_gib=0.1)
    assert command[command.index("--host") + 1] == "127.0.0.1"
    exposed = server_command("tiny", 8123, "tiny", 512, kv_cache_gib=0.1, host="0.0.0.0")
    assert exposed[exposed.index("--host") + 1] == "0.0.0.0"
