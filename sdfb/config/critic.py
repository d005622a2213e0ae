"""The critic section: which critic rewrites the attempts, how it decodes, and the endpoint an `openai`
critic is asked through. The critic itself lives in `sdfb.critic`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from sdfb.config.base import _Frozen
from sdfb.config.cards import greedy_refusal
from sdfb.config.generation import VLLMConfig


class CriticDecoding(_Frozen):
    """The critic's decoding. Greedy by default (the paper's, and reproducible for small critics).
    Reasoning critics whose model cards forbid greedy decoding (QwQ-32B, DeepSeek-R1:
    sdfb/config/cards.py) are refused it: their recipes set the card's sampling (docs/critic.md). All
    of these are part of the critique cache key."""

    temperature: float = Field(0.0, ge=0.0, description="Sampling temperature; 0 is greedy.")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="Nucleus sampling: the probability mass kept.")
    max_tokens: int = Field(2048, ge=1, description="Longest critic reply in tokens (its thinking included).")
    seed: int = Field(0, description="Sampling seed of the critic's requests.")


class OpenAIEndpointConfig(_Frozen):
    """Any OpenAI-compatible chat endpoint (vLLM's server, a hosted API). The key itself is
    never in the config: it is read from the environment variable `api_key_env`, or from the
    Prefect Secret block `api_key_block`."""

    base_url: str = Field("http://127.0.0.1:8000/v1", description="The endpoint's base URL.")
    api_key_env: str = Field("SDFB_CRITIC_API_KEY", description="The environment variable holding the key.")
    api_key_block: str | None = Field(
        None, description="A Prefect Secret block holding the key, read instead of the environment variable."
    )
    concurrency: int = Field(8, ge=1, description="requests in flight at once")
    max_retries: int = Field(
        4, ge=0, description="per request, with exponential back-off, on 408/409/429/5xx and timeouts"
    )
    request_timeout_seconds: float = Field(120.0, gt=0, description="one HTTP attempt")
    deadline_seconds: float = Field(600.0, gt=0, description="one request, all of its retries included")


class CriticConfig(_Frozen):
    """The frozen critic that rewrites each attempt (docs/critic.md)."""

    kind: Literal["symbolic", "vllm", "openai"] = Field(
        "symbolic",
        description="symbolic: exact, arithmetic only; vllm: an in-process engine; "
        "openai: an OpenAI-compatible endpoint.",
    )
    model: str | None = Field(
        None,
        description="vllm: an alias, local folder or hub id; openai: the endpoint's model name. "
        "Required unless symbolic.",
    )
    revision: str = Field(
        "main", description="recorded in the cache key, so a new checkpoint of the critic is asked again"
    )
    dtype: Literal["auto", "float32", "bfloat16"] = Field("auto", description="vllm only")
    trust_remote_code: bool = Field(False, description="vllm only: run code shipped with the critic model")
    prompt: str = Field(
        "critic_v1", description="Versioned critic prompts in sdfb/critic/prompts/<prompt>.yaml."
    )
    decoding: CriticDecoding = CriticDecoding()
    openai: OpenAIEndpointConfig = OpenAIEndpointConfig()
    vllm: VLLMConfig = VLLMConfig(max_model_len=8192)
    cache: bool = Field(True, description="Content-addressed critique cache.")
    cache_dir: str | None = Field(
        None, description="None: $SDFB_CACHE/critiques (default ~/.cache/sdfb/critiques)."
    )
    max_failed_share: float = Field(
        0.05,
        ge=0.0,
        le=1.0,
        description="A stage whose failed requests (endpoint down, errors after all retries) "
        "exceed this share stops with an error and writes nothing (finished critiques stay "
        "cached); below it, failed rows are written with status `failed`, kept out of training, "
        "and asked again when the stage next runs.",
    )

    @model_validator(mode="after")
    def _model_needed(self) -> CriticConfig:
        if self.kind != "symbolic" and not self.model:
            raise ValueError(f"critic.kind={self.kind} needs critic.model (a model id, alias or folder)")
        return self

    @model_validator(mode="after")
    def _decoding_the_card_allows(self) -> CriticConfig:
        refusal = self.kind != "symbolic" and greedy_refusal(self.model, self.decoding.temperature)
        if refusal:
            raise ValueError(refusal)
        return self
