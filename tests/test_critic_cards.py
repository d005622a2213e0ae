"""Critic decoding against the critic model's card: greedy refused where the card
forbids it (QwQ-32B, DeepSeek-R1), warnings for settings the card advises against, and
the paper recipe following QwQ-32B's card."""

import logging
from pathlib import Path

import pytest

from sdfb.config import ConfigError, build_config, load_config
from sdfb.config.cards import card_for, card_warnings
from sdfb.critic import make_critic

QWQ = ["critic.kind=openai", "critic.model=Qwen/QwQ-32B"]


@pytest.mark.parametrize(
    ("model", "family"),
    [
        ("Qwen/QwQ-32B", "QwQ-32B"),
        ("Qwen/QwQ-32B-AWQ", "QwQ-32B"),
        ("/data/models/qwq-32b/", "QwQ-32B"),
        ("deepseek-ai/DeepSeek-R1-Distill-Qwen-32B", "DeepSeek-R1"),
        ("Qwen/Qwen2.5-7B-Instruct", None),
        ("tiny", None),
        (None, None),
    ],
)
def test_a_critic_model_is_matched_to_its_card_by_its_name(model, family):
    card = card_for(model)
    assert (card.name if card else None) == family


def test_greedy_decoding_is_refused_for_a_critic_whose_card_forbids_it_and_the_error_gives_the_fix():
    with pytest.raises(ConfigError) as refused:
        build_config({}, QWQ)  # the default decoding is greedy
    message = str(refused.value)
    assert "QwQ-32B model card forbids greedy decoding" in message
    assert "--set critic.decoding.temperature=0.6 --set critic.decoding.top_p=0.95" in message
    assert "critic.decoding.max_tokens=16384" in message
    cfg = build_config({}, [*QWQ, "critic.decoding.temperature=0.6", "critic.decoding.top_p=0.95"])
    assert cfg.critic.decoding.temperature == 0.6


def test_greedy_decoding_stays_the_default_for_critics_without_such_a_card():
    cfg = build_config({}, ["critic.kind=vllm", "critic.model=tiny"])
    assert cfg.critic.decoding.temperature == 0.0
    assert build_config({}, ["critic.model=Qwen/QwQ-32B"]).critic.kind == "symbolic"  # the model is unused


def test_short_replies_and_other_sampling_are_warnings_not_refusals():
    assert card_warnings("Qwen/QwQ-32B", 0.6, 0.95, 16384) == []
    (short,) = card_warnings("Qwen/QwQ-32B", 0.6, 0.95, 2048)
    assert "max_tokens=2048 is below the 16384" in short
    (other,) = card_warnings("Qwen/QwQ-32B", 1.0, 0.95, 32768)
    assert "temperature=1.0" in other
    assert card_warnings("tiny", 0.0, 1.0, 16) == []


def test_the_critic_logs_the_cards_warnings_when_it_is_built(caplog):
    cfg = build_config({}, [*QWQ, "critic.decoding.temperature=0.6", "critic.decoding.top_p=0.95"])
    with caplog.at_level(logging.WARNING, logger="sdfb.critic.table"):
        make_critic(cfg.critic, api_key="k")
    assert "max_tokens=2048 is below the 16384" in caplog.text


def test_the_paper_recipe_decodes_its_qwq_critic_as_the_card_says_with_time_to_think():
    critic = load_config(Path(__file__).resolve().parents[1] / "configs/gpu/paper.yaml").critic
    card = card_for(critic.model)
    d = critic.decoding
    assert (d.temperature, d.top_p) == (card.temperature, card.top_p)
    assert d.max_tokens >= card.min_max_tokens
    assert card_warnings(critic.model, d.temperature, d.top_p, d.max_tokens) == []
    # At a few tens of tokens a second per request, one attempt must outlast a full-length critique.
    assert critic.openai.request_timeout_seconds >= d.max_tokens / 20
