"""What every configuration section shares: the error a config that cannot run raises, and the frozen, closed
base model (a misspelt key is an error that names it)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ConfigError(ValueError):
    """A configuration that cannot run; the message names the key and what to do."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
