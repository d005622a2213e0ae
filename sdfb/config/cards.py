"""What critic models' cards say about decoding, one record per model family, and the check of a
critic's decoding settings against them. Data and pure functions only: the config refuses what a
card forbids; warnings go to the caller.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CardDecoding:
    """A model card's decoding advice. `match`: a lower-case piece of the model id or folder name."""

    match: str
    name: str
    temperature: float
    top_p: float
    # Room for the model's thinking before its answer: fewer new tokens cut critiques off inside <think>.
    min_max_tokens: int
    greedy_forbidden: bool
    source: str


CARDS = (
    CardDecoding(
        match="qwq",
        name="QwQ-32B",
        temperature=0.6,
        top_p=0.95,
        min_max_tokens=16384,
        greedy_forbidden=True,
        source="huggingface.co/Qwen/QwQ-32B: 'Use Temperature=0.6, TopP=0.95, MinP=0 instead of Greedy "
        "decoding to avoid endless repetitions'",
    ),
    CardDecoding(
        match="deepseek-r1",
        name="DeepSeek-R1",
        temperature=0.6,
        top_p=0.95,
        min_max_tokens=16384,
        greedy_forbidden=True,
        source="huggingface.co/deepseek-ai/DeepSeek-R1: 'Set the temperature within the range of 0.5-0.7 "
        "(0.6 is recommended) to prevent endless repetitions or incoherent outputs'",
    ),
)


def card_for(model: str | None) -> CardDecoding | None:
    """The card whose family the model id (or local folder) names, if any."""
    name = (model or "").rstrip("/").rsplit("/", 1)[-1].lower()
    return next((card for card in CARDS if card.match in name), None)


def card_settings(card: CardDecoding) -> str:
    """The card's settings as `--set` overrides."""
    return (
        f"--set critic.decoding.temperature={card.temperature} --set critic.decoding.top_p={card.top_p} "
        f"--set critic.decoding.max_tokens={card.min_max_tokens}"
    )


def greedy_refusal(model: str | None, temperature: float) -> str | None:
    """Why greedy decoding is refused for this model (its card forbids it), or None."""
    card = card_for(model)
    if card is None or not card.greedy_forbidden or temperature > 0:
        return None
    return (
        f"critic.decoding.temperature=0 (greedy) for critic.model={model}: the {card.name} model card "
        f"forbids greedy decoding ({card.source}); use the card's settings: {card_settings(card)}"
    )


def card_warnings(model: str | None, temperature: float, top_p: float, max_tokens: int) -> list[str]:
    """Settings that the card advises against without forbidding them: fewer new tokens than its thinking
    needs, a temperature or top-p other than its own."""
    card = card_for(model)
    if card is None:
        return []
    warnings = []
    if max_tokens < card.min_max_tokens:
        warnings.append(
            f"critic.decoding.max_tokens={max_tokens} is below the {card.min_max_tokens} new "
            f"tokens a {card.name} critic needs to finish thinking: its critiques will end "
            "inside <think> and be recorded as malformed"
        )
    if (temperature, top_p) != (card.temperature, card.top_p) and temperature > 0:
        warnings.append(
            f"critic.decoding temperature={temperature}, top_p={top_p} differ from the {card.name} card's "
            f"temperature={card.temperature}, top_p={card.top_p}"
        )
    return warnings
