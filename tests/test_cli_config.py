"""`sdfb --version` and `sdfb config show`: what a user checks at the terminal before starting a run."""

from importlib.metadata import version

import yaml
from sdfb_process import ROOT
from typer.testing import CliRunner

from cli.main import app
from sdfb.config import load_config

SMOKE = str(ROOT / "configs" / "smoke.yaml")


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def test_version_prints_the_installed_package_version_and_exits_0():
    result = invoke("--version")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"sdfb {version('sdfb')}"


def test_config_show_prints_the_recipe_with_defaults_and_overrides_resolved(tmp_path):
    result = invoke(
        "config", "show", "--config", SMOKE, "--set", "rounds=3", "--set", "distill.learning_rate=2e-4"
    )
    assert result.exit_code == 0, result.output
    shown = yaml.safe_load(result.stdout)
    assert shown["name"] == "smoke" and shown["rounds"] == 3
    assert shown["distill"]["learning_rate"] == 2e-4
    assert "critic" in shown and "eval" in shown  # sections the recipe leaves to the defaults are filled in
    saved = tmp_path / "resolved.yaml"
    saved.write_text(result.stdout)
    assert load_config(saved) == load_config(SMOKE, ["rounds=3", "distill.learning_rate=2e-4"])


def test_config_show_without_a_file_prints_the_defaults():
    result = invoke("config", "show")
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(result.stdout) == load_config(None).model_dump(mode="json")


def test_config_show_names_a_misspelt_key_and_exits_2():
    result = invoke("config", "show", "--config", SMOKE, "--set", "distill.learning_rte=1e-4")
    assert result.exit_code == 2
    assert "distill.learning_rte: unknown key" in result.stderr and "learning_rate" in result.stderr
    assert result.stdout == ""


def test_config_show_of_a_missing_file_says_so_and_exits_2(tmp_path):
    result = invoke("config", "show", "--config", str(tmp_path / "nope.yaml"))
    assert result.exit_code == 2
    assert "does not exist" in result.stderr
