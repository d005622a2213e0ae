"""Critics write a step-aligned critique of each attempt: correct steps copied verbatim, the first error
fixed, the rest continued in the solver's format. Backends: symbolic (exact, arithmetic), vllm
(in-process), openai (any OpenAI-compatible endpoint)."""

from sdfb.critic.base import Critic, Critique, CritiqueRequest, answer_number
from sdfb.critic.symbolic import SymbolicCritic
from sdfb.critic.table import (
    CriticUnavailableError,
    check_failures,
    critique_rollouts,
    make_critic,
    summarise,
)

__all__ = [
    "Critic",
    "CriticUnavailableError",
    "Critique",
    "CritiqueRequest",
    "SymbolicCritic",
    "answer_number",
    "check_failures",
    "critique_rollouts",
    "make_critic",
    "summarise",
]
