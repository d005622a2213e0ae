"""The thresholds a training run's health is judged by (`distill.health`): per
optimizer step and per round, each with its meaning and default; docs/health.md says
why each default is where it is. No metric math here."""

from __future__ import annotations

from pydantic import Field

from sdfb.config.base import _Frozen


class HealthConfig(_Frozen):
    """Every threshold may be None: that metric is still recorded and logged, never judged."""

    min_entropy: float | None = Field(
        0.05,
        ge=0.0,
        description="Per step. The student's mean entropy (nats per completion token, full vocabulary, "
        "temperature 1) below this: the policy is collapsing onto one continuation.",
    )
    max_kl_to_start: float | None = Field(
        1.0,
        gt=0.0,
        description="Per step. The k3 estimate of KL(round's starting policy || student) per "
        "completion token, from the rollouts' stored log-probs, above this: the round has moved the "
        "policy far from where it sampled its data.",
    )
    min_active_share: float | None = Field(
        0.05,
        ge=0.0,
        le=1.0,
        description="Per step. The share of completion tokens that carry a signal (|teacher - student "
        "log-prob| or the token's KL to the teacher above `signal_threshold` nats; GRPO: a non-zero "
        "group advantage) below this: distillation has gone silent. Not judged for the `control` "
        "objective, whose signal is zero by design.",
    )
    signal_threshold: float = Field(
        0.01, gt=0.0, description="Nats above which a token counts as carrying a signal (min_active_share)."
    )
    min_format_rate: float | None = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="Per round, from the round's grades (samples of the round's starting policy): the "
        "share of samples in the step format below this.",
    )
    min_answer_rate: float | None = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="Per round, from the round's grades: the share of samples with an answer line "
        "(any status but no_answer) below this.",
    )
    stop: bool = Field(
        False,
        description="Stop training at the first threshold crossed, with an error naming the metric, its "
        "value and the threshold. Finished rounds stay finished; the stopped round writes no outputs. A "
        "round whose rollouts come from the base model is never stopped on its format or answer rate "
        "(there is no training yet to blame).",
    )
