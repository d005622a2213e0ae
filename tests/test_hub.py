"""Pushing a round to the Hugging Face Hub: the model card names the base model by its Hub id, the
upload carries the adapter pointing at that id, a failed push keeps the checkpoint and names the repo,
and the token comes from a Prefect Secret block on a real (temporary) Prefect server. Offline: nothing
is pushed to the real Hub; the upload is a stand-in that records what it was given, and the failure
test relies on HF_HUB_OFFLINE=1 (tests/conftest.py)."""

import json
from pathlib import Path

import pytest
import yaml

from sdfb.config import build_config
from sdfb.hub import HubError, base_model_id, model_card, push_adapter
from sdfb.store import StageKey, finish_folder


def _front_matter(card: str) -> dict:
    _, front, _ = card.split("---\n", 2)
    return yaml.safe_load(front)


def _checkpoint(tmp_path: Path, base: str = "/home/me/.cache/sdfb/models/smollm2-135m-instruct") -> Path:
    """A finished round's folder as the distill stage leaves it: adapter,
    EMA teacher state, manifest beside it."""
    folder = tmp_path / "checkpoints" / "round_0002"
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": base, "r": 8}))
    (folder / "adapter_model.safetensors").write_bytes(b"weights")
    (folder / "teacher_ema.pt").write_bytes(b"training state")
    metrics = {
        "loss": 0.123456,
        "mean_kl": 0.01,
        "examples": 4,
        "objective": "self_distillation",
        "history": [],
    }
    finish_folder(folder, StageKey(1, "c", {}), {"stage": "checkpoint", "metrics": metrics})
    return folder


class _FakeHub:
    """Stands in for huggingface_hub.HfApi: records the repo and the files it would upload, pushes nothing."""

    pushed: dict = {}

    def __init__(self, token):
        _FakeHub.pushed = {"token": token}

    def create_repo(self, repo_id, exist_ok=False):
        _FakeHub.pushed["created"] = (repo_id, exist_ok)

    def upload_folder(self, repo_id, folder_path, commit_message):
        files = {p.name: p.read_bytes() for p in Path(folder_path).iterdir()}
        _FakeHub.pushed |= {"repo": repo_id, "files": files}
        return type("Commit", (), {"commit_url": f"https://huggingface.co/{repo_id}/commit/1"})()


@pytest.fixture()
def fake_hub(monkeypatch):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "HfApi", _FakeHub)
    return _FakeHub


def test_the_model_card_names_the_smollm2_alias_by_its_hub_id_and_carries_condition_round_and_metrics():
    base = base_model_id("smollm2-135m")
    assert base == "HuggingFaceTB/SmolLM2-135M-Instruct"
    card = model_card(base, "me/sdfb-r2", "demo", "step_aligned", 0, 2, {"loss": 0.5, "history": [1, 2]})
    front = _front_matter(card)
    assert front == {
        "base_model": base,
        "library_name": "peft",
        "tags": ["sdfb", "self-distillation", "step_aligned"],
    }
    assert "round 2 of run `demo`, condition `step_aligned`" in card and "| loss | 0.5 |" in card
    assert "history" not in card  # lists stay in the manifest


def test_hub_ids_pass_through_and_models_without_one_are_refused_with_what_to_do(tmp_path):
    assert base_model_id("Qwen/Qwen2.5-0.5B-Instruct") == "Qwen/Qwen2.5-0.5B-Instruct"
    with pytest.raises(HubError, match="push_to_hub needs a base model with a Hub id.*'tiny'"):
        base_model_id("tiny")
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "qwen2"}))
    with pytest.raises(HubError, match="set model.name_or_path to a Hub id"):
        base_model_id(str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps({"_name_or_path": "owner/model"}))
    assert base_model_id(str(tmp_path)) == "owner/model"  # a local folder that records where it came from
    snapshot = tmp_path / "hub" / "models--owner--cached" / "snapshots" / "abc"
    snapshot.mkdir(parents=True)
    assert base_model_id(str(snapshot)) == "owner/cached"  # a folder in the Hugging Face cache


def test_the_upload_points_the_adapter_at_the_hub_id_and_leaves_the_checkpoint_untouched(tmp_path, fake_hub):
    folder = _checkpoint(tmp_path)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    card = model_card("HuggingFaceTB/SmolLM2-135M-Instruct", "me/r2", "demo", "binary", 0, 2, {})
    url = push_adapter(folder, "me/r2", "hf_secret", card, "HuggingFaceTB/SmolLM2-135M-Instruct")
    assert url == "https://huggingface.co/me/r2/commit/1" and fake_hub.pushed["created"] == ("me/r2", True)
    files = fake_hub.pushed["files"]
    assert sorted(files) == ["README.md", "adapter_config.json", "adapter_model.safetensors"]  # no EMA state
    assert (
        json.loads(files["adapter_config.json"])["base_model_name_or_path"]
        == "HuggingFaceTB/SmolLM2-135M-Instruct"
    )
    assert files["README.md"].decode() == card
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_a_failed_push_keeps_the_checkpoint_and_names_the_repo(tmp_path):
    folder = _checkpoint(tmp_path)  # HF_HUB_OFFLINE=1: the Hub refuses every call, as an outage would
    with pytest.raises(HubError, match=r"to the Hub repo 'me/sdfb-r2' failed.*checkpoint is kept.*rerun"):
        push_adapter(folder, "me/sdfb-r2", "hf_secret", "card")
    assert (folder / "adapter_model.safetensors").read_bytes() == b"weights"


def test_a_push_to_hub_that_is_not_a_repo_id_is_a_config_error():
    from sdfb.config import ConfigError

    assert (
        build_config({}, ["distill.push_to_hub=me/sdfb-round{round}"]).distill.push_to_hub
        == "me/sdfb-round{round}"
    )
    with pytest.raises(ConfigError, match="only {round} may be filled in"):
        build_config({}, ["distill.push_to_hub=me/sdfb-{arm}"])
    with pytest.raises(ConfigError, match="is not a Hub repo id"):
        build_config({}, ["distill.push_to_hub=me/two/slashes"])


# ------------------------------------------------------------------------------ the task side, on a real
# server
@pytest.mark.flow
def test_the_token_is_read_from_a_prefect_secret_block_and_a_missing_block_says_how_to_create_it(
    prefect_server,
):
    from prefect.blocks.system import Secret

    from tasks._hub import HubTokenError, hub_token

    Secret(value="hf_sdfb_test_token").save("sdfb-hf-test", overwrite=True)
    assert hub_token("sdfb-hf-test") == "hf_sdfb_test_token"
    with pytest.raises(
        HubTokenError, match=r"'sdfb-no-such-block', which does not exist.*prefect block create secret"
    ):
        hub_token("sdfb-no-such-block")


@pytest.mark.flow
def test_the_round_is_pushed_to_its_repo_with_the_metrics_of_its_manifest(prefect_server, tmp_path, fake_hub):
    from prefect.blocks.system import Secret

    from tasks._hub import hub_target, push_round

    Secret(value="hf_sdfb_test_token").save("sdfb-hf-push", overwrite=True)
    cfg = build_config(
        {},
        [
            "name=demo",
            "context.condition=binary",
            "rollout.sampling.n=2",
            "distill.push_to_hub=me/demo-round{round}",
            "distill.hub_token_secret=sdfb-hf-push",
        ],
    )
    target = hub_target(cfg)
    assert "hf_sdfb" not in repr(target)  # the token never reaches a log line
    push_round(cfg, target, 2, _checkpoint(tmp_path))
    assert fake_hub.pushed["repo"] == "me/demo-round2" and fake_hub.pushed["token"] == "hf_sdfb_test_token"
    card = fake_hub.pushed["files"]["README.md"].decode()
    assert _front_matter(card)["base_model"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert "| loss | 0.1235 |" in card and "| objective | self_distillation |" in card


def test_a_model_without_a_hub_id_stops_the_distill_task_before_it_trains(tmp_path):
    from tasks.distill import run_round

    cfg = build_config({}, ["model.name_or_path=tiny", "distill.push_to_hub=me/r{round}"])
    with pytest.raises(HubError, match="needs a base model with a Hub id"):
        run_round(
            cfg, str(tmp_path), 1, "rollouts", "contexts", "grades", "teacher", None
        )  # inputs never read
    assert list(tmp_path.iterdir()) == []
