"""The Hub push of a finished round, task side: the token from a Prefect Secret block, the repo
and card from the config, the upload by `sdfb.hub`. Checked before the round trains, so a
missing token or Hub id costs no training."""

from dataclasses import dataclass, field
from pathlib import Path

from sdfb.config import RunConfig
from sdfb.hub import base_model_id, model_card, push_adapter
from sdfb.store import read_manifest
from tasks._stage import task_logger


class HubTokenError(ValueError):
    """The Prefect Secret block that should hold the Hugging Face token does not exist."""


def hub_token(block: str) -> str:
    """The token in Prefect Secret block `block`; a missing block is an error saying how to create it."""
    from prefect.blocks.system import Secret

    try:
        return Secret.load(block).get()
    except ValueError as exc:
        if "Unable to find block document" not in str(exc):
            raise
        raise HubTokenError(
            "distill.push_to_hub reads a Hugging Face token (with write access) from the Prefect Secret "
            f"block {block!r}, which does not exist. Create it with `prefect block create secret` (name it "
            f"{block}) or in Python: `Secret(value='hf_...').save({block!r})` (from prefect.blocks.system "
            "import Secret); or set distill.hub_token_secret to the block that holds it"
        ) from None


@dataclass(frozen=True)
class HubTarget:
    repo: str  # distill.push_to_hub, `{round}` not yet filled in
    base_model: str  # the Hub id of the base model
    token: str = field(repr=False)


def hub_target(cfg: RunConfig) -> HubTarget | None:
    """Where this run's rounds are pushed (None: they are not): the base model's Hub id and
    the token, read before training so that a model without a Hub id or a missing token
    block stops the round before it trains."""
    if cfg.distill.push_to_hub is None:
        return None
    base = base_model_id(cfg.model.name_or_path)
    return HubTarget(cfg.distill.push_to_hub, base, hub_token(cfg.distill.hub_token_secret))


def push_round(cfg: RunConfig, target: HubTarget, round_index: int, checkpoint: Path) -> str:
    """Push finished round `round_index`'s checkpoint with its model card (metrics from its manifest)."""
    repo = target.repo.format(round=round_index)
    library = "peft" if cfg.distill.finetune == "lora" else "transformers"
    metrics = read_manifest(checkpoint)["metrics"]
    card = model_card(
        target.base_model, repo, cfg.name, cfg.context.condition, cfg.seed, round_index, metrics, library
    )
    url = push_adapter(checkpoint, repo, target.token, card, target.base_model)
    task_logger().info("distill: pushed round %d to the Hub: %s", round_index, url)
    return url
