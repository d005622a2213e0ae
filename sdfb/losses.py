"""Loss and advantage math as small pure torch functions: self-distillation divergences (TRL's definitions),
importance-ratio clipping, GRPO group advantages and clipped surrogate, the k3 KL estimator, masked means.

Every function maps tensors to tensors; nothing here knows about models, batches on disk or Prefect.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

# Logits per chunk in the per-token loss math: 2**25 floats, 128 MiB in float32.
CHUNK_ELEMENTS = 2**25


def completion_logits(logits: torch.Tensor, prompt_lens: torch.Tensor, width: int) -> torch.Tensor:
    """The logits that predict each completion token: positions
    prompt_len-1 .. prompt_len+width-2, per row."""
    index = prompt_lens[:, None] - 1 + torch.arange(width, device=logits.device)[None, :]
    index = index.clamp(max=logits.shape[1] - 1)
    return logits.gather(1, index[..., None].expand(-1, -1, logits.shape[-1]))


def token_logprobs(logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """log softmax(logits)[id] per position, in float32."""
    return torch.log_softmax(logits.float(), -1).gather(-1, ids[..., None]).squeeze(-1)


def per_token_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    completion_ids: torch.Tensor,
    mode: str,
    alpha: float,
    topk: int = 20,
    topk_tail: bool = True,
) -> torch.Tensor:
    """Per-token self-distillation loss (batch, tokens) with TRL's meanings of each mode."""
    from trl.experimental.sdft.loss_utils import (
        compute_full_logit_self_distillation_loss,
        compute_sampled_token_self_distillation_loss,
        compute_topk_self_distillation_loss,
    )

    if mode == "sampled_token":
        return compute_sampled_token_self_distillation_loss(
            student_logits, teacher_logits, completion_ids, distillation_alpha=alpha
        )
    if mode == "full_logits":
        return compute_full_logit_self_distillation_loss(
            student_logits, teacher_logits, distillation_alpha=alpha
        )
    if mode == "topk_logits":
        return compute_topk_self_distillation_loss(
            student_logits,
            teacher_logits,
            distillation_topk=topk,
            distillation_alpha=alpha,
            distillation_add_tail=topk_tail,
        )
    raise ValueError(f"distill.mode {mode!r} is not available")


def by_chunks(
    fn: Callable[..., tuple], *tensors: torch.Tensor, chunk_elements: int = CHUNK_ELEMENTS
) -> tuple:
    """`fn` over slices of the token dimension (dim 1) of (batch, tokens, vocabulary) tensors, each
    slice holding at most `chunk_elements` logits, the outputs concatenated along dim 1. Under autograd
    each slice is checkpointed: its intermediates (float32 log-softmaxes, divergence terms) are
    recomputed in backward instead of kept, so their memory is that of one slice, whatever the
    vocabulary and length. One slice: `fn` on the whole tensors."""
    batch, width, vocab = tensors[0].shape
    step = max(1, chunk_elements // max(1, batch * vocab))
    if step >= width:
        return fn(*tensors)
    from torch.utils.checkpoint import checkpoint

    grad = torch.is_grad_enabled() and any(t.requires_grad for t in tensors)
    parts = []
    for start in range(0, width, step):
        piece = [t[:, start : start + step] for t in tensors]
        parts.append(checkpoint(fn, *piece, use_reentrant=False) if grad else fn(*piece))
    return tuple(torch.cat(outputs, dim=1) for outputs in zip(*parts, strict=True))


def distillation_terms(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    completion_ids: torch.Tensor,
    mode: str,
    alpha: float,
    topk: int = 20,
    topk_tail: bool = True,
    chunk_elements: int = CHUNK_ELEMENTS,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-token loss (`per_token_loss`), the student's log-probs of the sampled tokens
    (with gradients), and, without gradients, the teacher's log-probs and KL(student ||
    teacher); all computed in chunks (`by_chunks`)."""

    def train(s: torch.Tensor, t: torch.Tensor, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return per_token_loss(s, t, ids, mode, alpha, topk, topk_tail), token_logprobs(s, ids)

    def record(s: torch.Tensor, t: torch.Tensor, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return token_logprobs(t, ids), reverse_kl(s, t)

    per_token, logp = by_chunks(
        train, student_logits, teacher_logits, completion_ids, chunk_elements=chunk_elements
    )
    with torch.no_grad():
        teacher_lp, kl = by_chunks(
            record, student_logits.detach(), teacher_logits, completion_ids, chunk_elements=chunk_elements
        )
    return per_token, logp, teacher_lp, kl


def chunked_logprobs(
    logits: torch.Tensor, ids: torch.Tensor, chunk_elements: int = CHUNK_ELEMENTS
) -> torch.Tensor:
    """`token_logprobs` in chunks (`by_chunks`): the float32 log-softmax is never held for the whole batch."""
    return by_chunks(lambda x, i: (token_logprobs(x, i),), logits, ids, chunk_elements=chunk_elements)[0]


def importance_clip(
    per_token: torch.Tensor, student_lp: torch.Tensor, rollout_lp: torch.Tensor, cap: float
) -> torch.Tensor:
    """Weight each token's loss by min(pi_now / pi_rollout, cap), the ratio detached (TRL's clipping)."""
    from trl.experimental.sdft.loss_utils import apply_importance_sampling_clipping

    return apply_importance_sampling_clipping(per_token, student_lp, rollout_lp, cap)


def token_advantages(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, completion_ids: torch.Tensor
) -> torch.Tensor:
    """A_t = log p_teacher(y_t) - log p_student(y_t) on the sampled tokens."""
    return token_logprobs(teacher_logits, completion_ids) - token_logprobs(student_logits, completion_ids)


def sampled_token_loss(student_logprobs: torch.Tensor, teacher_logprobs: torch.Tensor) -> torch.Tensor:
    """The sampled-token loss from the two log-probs of each sampled token (the engine-scored teacher gives
    only those): (log p_s - log p_t), detached, times log p_s; TRL's
    `compute_sampled_token_self_distillation_loss`."""
    return (student_logprobs - teacher_logprobs).detach() * student_logprobs


def reverse_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """Per-token KL(student || teacher) over the full vocabulary."""
    from trl.experimental.sdft.loss_utils import compute_full_logit_self_distillation_loss

    return compute_full_logit_self_distillation_loss(
        student_logits.float(), teacher_logits.float(), distillation_alpha=1.0
    )


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (values * mask).sum() / mask.sum().clamp(min=1)


def group_advantages(
    rewards: torch.Tensor, groups: torch.Tensor, scale: bool = True, eps: float = 1e-4
) -> torch.Tensor:
    """GRPO advantages: (r - mean of its group) / (std of its group + eps); std is the unbiased one, as TRL's.
    A group whose rewards are all equal gets 0 for every member."""
    rewards = rewards.float()
    out = torch.zeros_like(rewards)
    for group in groups.unique():
        members = groups == group
        r = rewards[members]
        centred = r - r.mean()
        if scale:
            std = float(r.std()) if r.numel() > 1 else 0.0
            if std + eps > 0:
                centred = centred / (std + eps)
        out[members] = centred
    return out


def grpo_token_loss(
    logprobs: torch.Tensor,
    rollout_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    clip_low: float,
    clip_high: float,
) -> torch.Tensor:
    """Clipped surrogate per token: -min(ratio * A, clip(ratio, 1 - low, 1 + high) * A), ratio = pi /
    pi_rollout; `advantages` broadcasts over tokens (one per sequence)."""
    ratio = torch.exp(logprobs - rollout_logprobs)
    clipped = torch.clamp(ratio, 1.0 - clip_low, 1.0 + clip_high)
    return -torch.minimum(ratio * advantages, clipped * advantages)


def k3_kl(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """Per-token k3 estimator of KL(policy || reference) on sampled
    tokens: exp(d) - d - 1, d = ref - policy."""
    delta = ref_logprobs - logprobs
    return torch.exp(delta) - delta - 1.0


def token_entropy(logits: torch.Tensor, chunk_elements: int = CHUNK_ELEMENTS) -> torch.Tensor:
    """Per-token entropy -sum_v p_v log p_v of softmax(logits) over the vocabulary (nats, float32,
    no gradients), in chunks (`by_chunks`)."""

    def entropy(x: torch.Tensor) -> tuple[torch.Tensor]:
        logp = torch.log_softmax(x.float(), -1)
        return (-(logp.exp() * logp).sum(-1),)

    with torch.no_grad():
        return by_chunks(entropy, logits.detach(), chunk_elements=chunk_elements)[0]


def kl_to_start(logprobs: torch.Tensor, start_logprobs: torch.Tensor) -> torch.Tensor:
    """Per-token k3 estimate of KL(start || now) on tokens sampled from the starting policy: r - 1 - log r
    with r = p_now / p_start (Schulman's k3; non-negative, exactly 0 where nothing moved)."""
    return k3_kl(start_logprobs, logprobs.detach())


def active_tokens(advantages: torch.Tensor, kl: torch.Tensor, threshold: float) -> torch.Tensor:
    """1.0 where a token carries a training signal: |advantage| or its KL to the teacher above `threshold`."""
    return ((advantages.abs() > threshold) | (kl > threshold)).float()
