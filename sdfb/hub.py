"""Publishing a round's weights to the Hugging Face Hub: the base model's Hub id, the model
card, the upload. The caller passes the token (the distill task reads it from a Prefect
Secret block); nothing here runs by default."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import yaml

from sdfb.distill.checkpoint import EMA_FILE
from sdfb.models import SMOLLM2_ALIAS, SMOLLM2_HUB_ID, TINY_ALIAS


class HubError(ValueError):
    """A push that cannot be made or did not succeed; the message names the model or repo and what to do."""


def _is_repo_id(name: str) -> bool:
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def _recorded_hub_id(folder: Path) -> str | None:
    """The Hub id a local model folder came from: its place in the Hugging Face cache
    (`models--owner--name/snapshots/...`), or the `_name_or_path` its config.json records."""
    cached = [part for part in folder.resolve().parts if part.startswith("models--")]
    if cached:
        return cached[-1].removeprefix("models--").replace("--", "/")
    config = folder / "config.json"
    name = json.loads(config.read_text()).get("_name_or_path") if config.is_file() else None
    return name if isinstance(name, str) and name and _is_repo_id(name) else None


def base_model_id(name_or_path: str) -> str:
    """The Hub id of `model.name_or_path`, for a model card's `base_model` (never a local cache path)."""
    if name_or_path == SMOLLM2_ALIAS:
        return SMOLLM2_HUB_ID
    path = Path(name_or_path).expanduser()
    if name_or_path != TINY_ALIAS and not path.exists() and _is_repo_id(name_or_path):
        return name_or_path
    found = _recorded_hub_id(path) if name_or_path != TINY_ALIAS and path.is_dir() else None
    if found is None:
        raise HubError(
            f"distill.push_to_hub needs a base model with a Hub id, and model {name_or_path!r} has none (a "
            "test model or a local folder that records none): set model.name_or_path to a Hub id or "
            f"{SMOLLM2_ALIAS}, or unset distill.push_to_hub"
        )
    return found


def model_card(
    base_model: str,
    repo_id: str,
    run: str,
    condition: str,
    seed: int,
    round_index: int,
    metrics: dict[str, Any],
    library_name: str = "peft",
) -> str:
    """README.md for the pushed round: YAML front matter (base model,
    library, tags) and the round's metrics."""
    front = {
        "base_model": base_model,
        "library_name": library_name,
        "tags": ["sdfb", "self-distillation", str(condition)],  # str: YAML cannot write a Condition member
    }
    kind = "LoRA adapter" if library_name == "peft" else "fine-tuned model"
    rows = [
        f"| {key} | {value:.4g} |" if isinstance(value, float) else f"| {key} | {value} |"
        for key, value in metrics.items()
        if isinstance(value, int | float | str) and not isinstance(value, bool)
    ]
    return "\n".join(
        [
            f"---\n{yaml.safe_dump(front, sort_keys=False)}---",
            f"# {repo_id}",
            "",
            f"A {kind} for [{base_model}](https://huggingface.co/{base_model}) trained with "
            f"sdfb (self-distillation from feedback): round {round_index} of run `{run}`, "
            f"condition `{condition}`, seed {seed}.",
            "",
            f"## Round {round_index}",
            "",
            "| metric | value |",
            "|---|---|",
            *rows,
            "",
        ]
    )


def _staged(folder: Path, target: Path, card: str, base_model: str | None) -> Path:
    """A copy of `folder` to upload: the card as README.md, the adapter pointing at the Hub id of its base
    model (the saved one names the local folder it was trained from), no training state (the EMA teacher)."""
    shutil.copytree(folder, target, ignore=shutil.ignore_patterns(EMA_FILE))
    adapter_config = target / "adapter_config.json"
    if base_model is not None and adapter_config.is_file():
        settings = json.loads(adapter_config.read_text())
        adapter_config.write_text(json.dumps({**settings, "base_model_name_or_path": base_model}, indent=2))
    (target / "README.md").write_text(card)
    return target


def push_adapter(
    folder: Path | str, repo_id: str, token: str, card: str, base_model: str | None = None
) -> str:
    """Create `repo_id` if needed and upload the round's adapter (or weights) in `folder`
    with `card` as its README; the folder itself is left as it is. Returns the commit's
    URL. HubError names the repo on failure."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    with tempfile.TemporaryDirectory(prefix="sdfb-push-") as tmp:
        staged = _staged(Path(folder), Path(tmp) / "upload", card, base_model)
        try:
            api.create_repo(repo_id, exist_ok=True)
            commit = api.upload_folder(
                repo_id=repo_id, folder_path=staged, commit_message=f"sdfb: {Path(folder).name}"
            )
        except (
            Exception
        ) as exc:  # the Hub's failures are many types (HTTP, network, auth): each means no push
            raise HubError(
                f"pushing {folder} to the Hub repo {repo_id!r} failed ({type(exc).__name__}: "
                f"{exc}). The checkpoint is kept: check the token and the repo's owner, then rerun "
                "(the round is not trained again)"
            ) from exc
    return commit.commit_url
