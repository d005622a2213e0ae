"""The configuration sections: frozen, closed pydantic models with their defaults and cross-field checks.

Loading YAML recipes and `a.b=value` overrides lives in `sdfb.config.loading`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from sdfb.config.base import ConfigError, _Frozen
from sdfb.config.critic import CriticConfig, CriticDecoding, OpenAIEndpointConfig
from sdfb.config.data import ArithmeticConfig, ColumnMap, DataConfig, EvalSetConfig, FilterConfig
from sdfb.config.generation import SamplingConfig, VLLMConfig
from sdfb.config.health import HealthConfig
from sdfb.config.reporting import HubRepo, Trackers
from sdfb.names import Condition, CritiqueStatus

# defined beside, imported from here
__all__ = [
    "ArithmeticConfig",
    "ColumnMap",
    "ConfigError",
    "DataConfig",
    "EvalSetConfig",
    "FilterConfig",
    "HealthConfig",
]
__all__ += ["CriticConfig", "CriticDecoding", "OpenAIEndpointConfig", "SamplingConfig", "VLLMConfig"]


class ModelConfig(_Frozen):
    """The student model (and the self-teacher: the same weights)."""

    name_or_path: str = Field(
        "smollm2-135m",
        description="An alias (`smollm2-135m`, `tiny`), a local folder or a Hugging Face model id.",
    )
    dtype: Literal["auto", "float32", "bfloat16"] = Field(
        "auto", description="Generation dtype; auto: bf16 on GPUs and CPUs with bf16 instructions, else fp32."
    )
    trust_remote_code: bool = Field(
        False,
        description="Run Python code shipped with a hub model (its modelling files) when loading it: "
        "off unless you trust it.",
    )


class PromptConfig(_Frozen):
    """How the student and teacher prompts are rendered."""

    template: str = Field("v1", description="Versioned templates in sdfb/templates/<template>.yaml.")
    enable_thinking: bool | None = Field(
        None,
        description="Passed to the chat template as `enable_thinking` for the student and the teacher prompt "
        "(Qwen3 thinks by default; the paper turns it off for the student). None: not passed, so the "
        "template's own default holds.",
    )


class RolloutConfig(_Frozen):
    """Student rollouts: the generation engine and its sampling."""

    engine: Literal["auto", "vllm", "hf"] = Field(
        "auto", description="auto: vLLM when it is importable, else HF generate"
    )
    batch_size: int = Field(16, ge=1, description="HF backend only; vLLM schedules its own batches")
    sampling: SamplingConfig = SamplingConfig()
    vllm: VLLMConfig = VLLMConfig()


class GradingConfig(_Frozen):
    """The grader: math-verify in a pool of time- and memory-limited workers (docs/grading.md)."""

    timeout_seconds: float = Field(5.0, gt=0, description="Per comparison; a slower one is graded `timeout`.")
    workers: int = Field(2, ge=1, description="Grading worker processes.")
    memory_mb: int = Field(
        1024,
        ge=256,
        description="Address space (RLIMIT_AS) each grading worker may add to what it "
        "holds once its imports are done, MiB.",
    )


class ContextConfig(_Frozen):
    """What the self-teacher sees beside the question: the feedback condition (docs/conditions.md)."""

    condition: Condition = Field(
        Condition.STEP_ALIGNED,
        description="step_aligned and its two style ablations are all derived from the same critique: "
        "aligned_no_repeat shows only the critique from its first changed step on; aligned_with_error "
        "quotes the wrong step before the fix.",
    )
    critique_statuses: tuple[CritiqueStatus, ...] = Field(
        (CritiqueStatus.OK,),
        description="Critique statuses a teacher may learn from; every other row is kept out of training.",
    )


class LoraConfig(_Frozen):
    """The LoRA adapter trained when distill.finetune is lora."""

    r: int = Field(64, ge=1, description="The adapter's rank (at most rollout.vllm.max_lora_rank).")
    alpha: int = Field(128, ge=1, description="LoRA's scaling numerator (the update is scaled by alpha / r).")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout on the adapter's input.")
    target_modules: tuple[str, ...] = Field(
        ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
        description="The linear layers that get an adapter.",
    )


class GRPOConfig(_Frozen):
    """PPO-style clipped surrogate on group-normalised 0/1 rewards; ratio
    against the rollout's stored log-probs."""

    clip_low: float = Field(0.2, ge=0.0, description="The ratio is clipped below at 1 - clip_low.")
    clip_high: float = Field(0.2, ge=0.0, description="The ratio is clipped above at 1 + clip_high.")
    kl_beta: float = Field(0.0, ge=0.0, description="k3 estimator of KL(policy || base policy); 0 disables")
    scale_rewards: bool = Field(True, description="divide by the group's std (Dr. GRPO sets this off)")


class DistillConfig(_Frozen):
    """Distillation (or GRPO) of each round's rollouts into the student (docs/distillation.md)."""

    objective: Literal["auto", "self_distillation", "grpo"] = Field(
        "auto",
        description="auto: `grpo` for the binary condition, self-distillation for every other condition.",
    )
    mode: Literal["sampled_token", "full_logits", "topk_logits"] = Field(
        "sampled_token",
        description="sampled_token: policy gradient with A_t = log p_teacher - log p_student on the "
        "sampled token (the paper's). full_logits: full-vocabulary divergence; alpha 0 forward KL, 1 "
        "reverse KL, between generalised JSD. topk_logits: the divergence on the student's top-k tokens, "
        "plus a bucket for the tail mass if topk_tail.",
    )
    alpha: float = Field(
        1.0, ge=0.0, le=1.0, description="full_logits and topk_logits: the divergence's alpha."
    )
    topk: int = Field(20, ge=1, description="topk_logits: how many of the student's top tokens.")
    topk_tail: bool = Field(True, description="topk_logits: add a bucket for the tail mass.")
    importance_clip: float | None = Field(
        None,
        gt=0.0,
        description="Cap on the importance ratio pi_now / pi_rollout "
        "(TRL's clip_coeff); None: no correction.",
    )
    teacher: Literal["base", "live", "ema"] = Field(
        "base",
        description="Whose weights score the teacher prompt: base (frozen initial policy), live (current, no "
        "grad), ema.",
    )
    teacher_source: Literal["trainer", "engine"] = Field(
        "trainer",
        description="Where the teacher's log-probs come from. trainer: a teacher forward inside each "
        "training step. engine: a stage before training scores every sampled completion under the teacher "
        "prompt in the generation engine (vLLM prompt log-probs; HF when rollout.engine is hf), stored in "
        "<round>/teacher.parquet, and training runs only the student. For the base teacher, and for the "
        "live teacher frozen at the start of the round; sampled_token only.",
    )
    ema_rate: float = Field(
        0.05, gt=0.0, le=1.0, description="ema teacher: the weight of the current weights."
    )
    finetune: Literal["lora", "full"] = Field("lora", description="Train a LoRA adapter or every weight.")
    max_length: int = Field(
        4096,
        ge=16,
        description="Longest teacher (or student) sequence in tokens; longer teacher "
        "prompts lose the middle of their context.",
    )
    learning_rate: float = Field(5e-6, gt=0, description="Peak learning rate.")
    epochs: int = Field(1, ge=1, description="Passes over a round's samples.")
    batch_size: int = Field(8, ge=1, description="Samples per forward/backward pass.")
    gradient_accumulation_steps: int = Field(1, ge=1, description="Batches per optimizer step.")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient clipping norm.")
    save_steps: int = Field(
        0,
        ge=0,
        description="Save optimizer/scheduler/RNG/teacher state every N optimizer steps inside a round (0: "
        "only at its end); a rerun after a crash resumes from the last one.",
    )
    lora: LoraConfig = LoraConfig()
    grpo: GRPOConfig = GRPOConfig()
    health: HealthConfig = Field(
        HealthConfig(),
        description="Per-step and per-round health thresholds, warnings and the optional stop rule "
        "(docs/health.md). Judges a round without changing what it computes, so outside every stage key "
        "(stages.UNHASHED).",
    )
    report_to: Trackers = Field(
        (),
        description="Where a round is reported, not what it computes, so outside every stage key "
        "(stages.UNHASHED): trackers (transformers integrations: tensorboard, trackio, wandb, mlflow, ...).",
    )
    tracker_project: str | None = Field(
        None,
        description="The trackers' project; None: the run's name (an "
        "experiment's arms: the experiment's name).",
    )
    push_to_hub: HubRepo = Field(
        None,
        description="A Hub repo id (`{round}` filled in) each round's adapter is pushed to; the token is "
        "in a Prefect Secret block. Outside every stage key.",
    )
    hub_token_secret: str = Field("hf-token", description="The Prefect Secret block holding the Hub token.")

    @model_validator(mode="after")
    def _engine_teacher(self) -> DistillConfig:
        if self.teacher_source == "engine" and (self.mode != "sampled_token" or self.teacher == "ema"):
            raise ValueError(
                "distill.teacher_source=engine needs distill.mode=sampled_token and "
                f"distill.teacher base or live (got mode {self.mode!r}, teacher {self.teacher!r}); "
                "set distill.teacher_source=trainer"
            )
        return self

    @model_validator(mode="after")
    def _alpha_for_sampled(self) -> DistillConfig:
        if self.mode == "sampled_token" and self.alpha != 1.0:
            raise ValueError("distill.alpha must be 1.0 (reverse KL) when distill.mode is 'sampled_token'")
        return self


class EvalConfig(_Frozen):
    """Scoring the base model and checkpoints on the held-out problems."""

    k: int = Field(
        4, ge=1, description="k samples per held-out problem; Avg@k, Pass@k and Maj@k are reported at this k."
    )
    every: int = Field(
        0, ge=0, description="also score every N rounds; 0 = only before the first and after the last"
    )
    batch_size: int = Field(16, ge=1, description="HF backend only; vLLM schedules its own batches")
    sampling: SamplingConfig = SamplingConfig(temperature=0.7, top_p=1.0, top_k=0)
    sets: tuple[EvalSetConfig, ...] = Field(
        (),
        description="More benchmarks scored at every scored checkpoint, each reported "
        "on its own (e.g. MATH-500 beside GSM8K's test split); the eval split above "
        "stays the one checkpoints are chosen on.",
    )

    @model_validator(mode="after")
    def _set_names_differ(self) -> EvalConfig:
        names = [s.name for s in self.sets]
        if len(set(names)) < len(names):
            raise ValueError(f"eval.sets names must differ, got {names}")
        return self


class RunConfig(_Frozen):
    """A run: one recipe, defaults < YAML < `--set` overrides."""

    name: str = Field(
        "sdfb", description="The run's name: its folder under runs/, artifact keys, tracker runs."
    )
    seed: int = Field(0, description="The run seed: rollouts, eval samples and training.")
    rounds: int = Field(1, ge=1, description="Rounds of rollouts, critiques and distillation.")
    model: ModelConfig = ModelConfig()
    data: DataConfig = DataConfig()
    prompt: PromptConfig = PromptConfig()
    rollout: RolloutConfig = RolloutConfig()
    grading: GradingConfig = GradingConfig()
    critic: CriticConfig = CriticConfig()
    context: ContextConfig = ContextConfig()
    distill: DistillConfig = DistillConfig()
    eval: EvalConfig = EvalConfig()

    @model_validator(mode="after")
    def _grpo_needs_groups(self) -> RunConfig:
        if objective(self.context, self.distill) == "grpo" and self.rollout.sampling.n < 2:
            raise ValueError(
                "GRPO (the binary condition) needs groups: set rollout.sampling.n to 2 or more "
                "(the paper's recipe uses 12), or distill.objective=self_distillation"
            )
        return self

    @model_validator(mode="after")
    def _eval_samples_differ(self) -> RunConfig:
        if self.eval.sampling.temperature == 0 and self.eval.k > 1:
            raise ValueError(
                f"eval.sampling.temperature 0 (greedy) gives eval.k={self.eval.k} identical samples per "
                "problem: set eval.k to 1 or eval.sampling.temperature above 0"
            )
        return self

    @model_validator(mode="after")
    def _engine_holds_the_adapter(self) -> RunConfig:
        rank = self.distill.lora.r
        if self.distill.finetune == "lora" and rank > self.rollout.vllm.max_lora_rank:
            raise ValueError(
                f"distill.lora.r={rank} exceeds "
                f"rollout.vllm.max_lora_rank={self.rollout.vllm.max_lora_rank}: set "
                f"rollout.vllm.max_lora_rank to {rank} or more, so the engine can apply the adapter"
            )
        return self


def objective(context: ContextConfig, distill: DistillConfig) -> str:
    """The training objective: `auto` means GRPO for the binary condition, `control` for the condition `none`
    (self-distillation's records with no update: the signal is zero, and Adam would turn float noise in a zero
    gradient into full-size steps), self-distillation otherwise."""
    if distill.objective == "auto":
        if context.condition == Condition.NONE:
            return "control"
        return "grpo" if context.condition == Condition.BINARY else "self_distillation"
    return distill.objective
