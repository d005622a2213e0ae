"""Config: defaults < YAML file < `--set` overrides, closed and frozen models, errors that name the bad
key."""

import re

import pytest
from pydantic import ValidationError

from sdfb.config import ConfigError, RunConfig, build_config, config_hash, load_config


def test_defaults_validate_and_match_the_declared_defaults():
    cfg = load_config(None)
    assert cfg == RunConfig()
    assert cfg.rounds == 1
    assert cfg.distill.mode == "sampled_token"
    assert cfg.distill.alpha == 1.0


def test_yaml_file_then_overrides_take_precedence_and_override_values_are_typed_by_yaml(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("name: demo\nrounds: 2\nrollout:\n  batch_size: 4\n")
    cfg = load_config(
        recipe, ["rounds=3", "distill.learning_rate=1e-5", "data.arithmetic.operations=[+, '-']"]
    )
    assert cfg.name == "demo"  # from the file
    assert cfg.rollout.batch_size == 4  # from the file
    assert cfg.rounds == 3 and isinstance(cfg.rounds, int)  # the override beats the file
    assert cfg.distill.learning_rate == pytest.approx(1e-5)
    assert cfg.data.arithmetic.operations == ("+", "-")
    assert cfg.rollout.sampling.temperature == 1.1  # untouched default


def test_misspelt_nested_key_names_the_full_dotted_key_and_suggests_the_right_one():
    with pytest.raises(ConfigError) as info:
        build_config({}, ["distill.learnig_rate=1e-5"])
    message = str(info.value)
    assert "distill.learnig_rate" in message
    assert "learning_rate" in message.split("distill.learnig_rate", 1)[1]  # the suggestion follows the key


def test_misspelt_key_two_levels_deep_is_named_with_its_whole_path():
    with pytest.raises(
        ConfigError, match=r"eval\.sampling\.temprature: unknown key \(did you mean 'temperature'\?\)"
    ):
        build_config({"eval": {"sampling": {"temprature": 0.5}}})


def test_negative_batch_size_names_the_key_and_the_value():
    with pytest.raises(ConfigError, match=r"distill\.batch_size: .*greater than or equal to 1 \(got -1\)"):
        build_config({}, ["distill.batch_size=-1"])


def test_unknown_top_level_section_is_rejected_and_known_sections_are_listed():
    with pytest.raises(ConfigError) as info:
        build_config({"trainer": {"lr": 1}})
    message = str(info.value)
    assert "trainer: unknown key" in message
    assert "distill" in message and "rollout" in message


def test_configs_are_frozen():
    cfg = build_config({})
    with pytest.raises(ValidationError):
        cfg.rounds = 5
    with pytest.raises(ValidationError):
        cfg.distill.learning_rate = 1.0


def test_missing_config_file_names_the_path_and_what_to_pass(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match="does not exist") as info:
        load_config(missing)
    assert str(missing) in str(info.value)
    assert "--config" in str(info.value)


def test_config_file_that_is_not_a_mapping_is_rejected(tmp_path):
    recipe = tmp_path / "list.yaml"
    recipe.write_text("- rounds\n- 3\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_config(recipe)


def test_file_source_without_a_path_fails():
    with pytest.raises(ConfigError, match="data.path is required when data.source is 'parquet'"):
        build_config({"data": {"source": "parquet"}})
    assert build_config({"data": {"source": "parquet", "path": "x.parquet"}}).data.path == "x.parquet"


def test_sampled_token_mode_rejects_alpha_other_than_one_but_full_logits_accepts_it():
    with pytest.raises(ConfigError, match="distill.alpha must be 1.0"):
        build_config({}, ["distill.alpha=0.5"])
    assert build_config({}, ["distill.mode=full_logits", "distill.alpha=0.5"]).distill.alpha == 0.5


def test_override_without_equals_sign_explains_the_expected_form():
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        build_config({}, ["rounds"])


def test_min_steps_above_max_steps_is_rejected():
    with pytest.raises(ConfigError, match=r"min_steps \(4\) must not exceed max_steps \(3\)"):
        build_config({}, ["data.arithmetic.min_steps=4", "data.arithmetic.max_steps=3"])


def test_config_hash_is_stable_and_changes_with_any_value():
    a = build_config({}, ["rounds=2"])
    assert config_hash(a) == config_hash(build_config({"rounds": 2}))
    assert config_hash(a) != config_hash(build_config({}, ["rounds=3"]))


def test_yaml_date_value_is_reported_as_a_config_error_naming_the_key(tmp_path):
    recipe = tmp_path / "dated.yaml"
    recipe.write_text("name: 2024-05-01\n")
    with pytest.raises(ConfigError, match="name"):
        load_config(recipe)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["rollout.sampling.temperature=0", "rollout.sampling.n=4"], "set n to 1 or temperature above 0"),
        (["eval.sampling.temperature=0", "eval.k=4"], "set eval.k to 1 or eval.sampling.temperature above 0"),
        (["distill.lora.r=128"], "set rollout.vllm.max_lora_rank to 128 or more"),
        (["distill.learning_rate=-1e-4"], "distill.learning_rate"),
        (["rounds=0"], "rounds"),
    ],
)
def test_out_of_range_settings_are_refused_with_what_to_do(overrides, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        build_config({}, overrides)


def test_enum_fields_load_from_and_dump_to_the_plain_strings_stage_keys_hash():
    from sdfb.config import ContextConfig
    from sdfb.names import Condition, CritiqueStatus

    cfg = ContextConfig(condition="binary", critique_statuses=["ok", "dropped_steps"])
    assert cfg.condition is Condition.BINARY
    assert cfg.critique_statuses == (CritiqueStatus.OK, CritiqueStatus.DROPPED_STEPS)
    dumped = cfg.model_dump(mode="json")
    assert dumped == {"condition": "binary", "critique_statuses": ["ok", "dropped_steps"]}
    assert type(dumped["condition"]) is str and all(type(s) is str for s in dumped["critique_statuses"])
