"""Loss math against numbers worked out by hand on tiny tensors, and against an independent TRL implementation
(GKD's generalised JSD) on random tensors."""

import math

import pytest
import torch

from sdfb import losses

P_STUDENT = torch.tensor([0.5, 0.3, 0.2])
P_TEACHER = torch.tensor([0.2, 0.5, 0.3])


def _logits(p):
    return torch.log(p).view(1, 1, -1)


def _kl(p, q):
    return float((p * (p / q).log()).sum())


@pytest.mark.parametrize(
    "alpha,expected",
    [
        (0.0, _kl(P_TEACHER, P_STUDENT)),  # forward KL(teacher || student)
        (1.0, _kl(P_STUDENT, P_TEACHER)),  # reverse KL(student || teacher)
        # generalised JSD at 0.5: M = (S + T) / 2, 0.5 KL(T||M) + 0.5 KL(S||M)
        (
            0.5,
            0.5 * _kl(P_TEACHER, (P_STUDENT + P_TEACHER) / 2)
            + 0.5 * _kl(P_STUDENT, (P_STUDENT + P_TEACHER) / 2),
        ),
    ],
)
def test_full_logits_divergences_match_hand_computed_values(alpha, expected):
    loss = losses.per_token_loss(
        _logits(P_STUDENT), _logits(P_TEACHER), torch.tensor([[0]]), "full_logits", alpha
    )
    assert loss.item() == pytest.approx(expected, abs=1e-6)


def test_topk_with_a_tail_bucket_compares_the_top_token_and_the_rest():
    # student's top-1 is token 0: buckets student (0.5, 0.5), teacher (0.2, 0.8)
    loss = losses.per_token_loss(
        _logits(P_STUDENT), _logits(P_TEACHER), torch.tensor([[0]]), "topk_logits", 1.0, topk=1
    )
    expected = 0.5 * math.log(0.5 / 0.2) + 0.5 * math.log(0.5 / 0.8)
    assert loss.item() == pytest.approx(expected, abs=1e-6)


def test_topk_without_tail_renormalises_the_top_tokens():
    # top-2 of the student: tokens 0, 1 -> student (0.625, 0.375), teacher (2/7, 5/7)
    loss = losses.per_token_loss(
        _logits(P_STUDENT),
        _logits(P_TEACHER),
        torch.tensor([[0]]),
        "topk_logits",
        1.0,
        topk=2,
        topk_tail=False,
    )
    s, t = torch.tensor([0.625, 0.375]), torch.tensor([2 / 7, 5 / 7])
    assert loss.item() == pytest.approx(_kl(s, t), abs=1e-6)


@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.5, 1.0])
def test_masked_full_logits_loss_equals_trl_gkd_generalised_jsd_on_random_tensors(alpha):
    from trl.experimental.gkd.gkd_trainer import GKDTrainer

    torch.manual_seed(0)
    student, teacher = torch.randn(3, 5, 11, dtype=torch.float64), torch.randn(3, 5, 11, dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]], dtype=torch.float64)
    ours = losses.masked_mean(
        losses.per_token_loss(student, teacher, torch.zeros(3, 5, dtype=torch.long), "full_logits", alpha),
        mask,
    )
    labels = torch.where(
        mask.bool(), torch.zeros_like(mask, dtype=torch.long), torch.full_like(mask, -100, dtype=torch.long)
    )
    theirs = GKDTrainer.generalized_jsd_loss(student, teacher, labels=labels, beta=alpha)
    assert ours.item() == pytest.approx(theirs.item(), abs=1e-6)


def test_masked_positions_contribute_nothing_to_any_mode():
    torch.manual_seed(1)
    student, teacher = torch.randn(2, 4, 7), torch.randn(2, 4, 7)
    ids = torch.randint(0, 7, (2, 4))
    mask = torch.tensor([[1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 1.0, 0.0]])
    garbage_student, garbage_teacher = student.clone(), teacher.clone()
    garbage_student[mask == 0] = 100.0 * torch.randn(3, 7)
    garbage_teacher[mask == 0] = -50.0 * torch.randn(3, 7)
    for mode, alpha in [("sampled_token", 1.0), ("full_logits", 0.5), ("topk_logits", 1.0)]:
        clean = losses.masked_mean(losses.per_token_loss(student, teacher, ids, mode, alpha, topk=3), mask)
        dirty = losses.masked_mean(
            losses.per_token_loss(garbage_student, garbage_teacher, ids, mode, alpha, topk=3), mask
        )
        assert clean.item() == pytest.approx(dirty.item(), abs=1e-6), mode


def test_importance_clipping_caps_the_ratio_to_the_rollout_policy():
    per_token = torch.tensor([[1.0, 1.0, 1.0]])
    now = torch.log(torch.tensor([[0.5, 0.5, 0.5]]))
    rollout = torch.log(torch.tensor([[0.5, 0.25, 1.0]]))  # ratios 1, 2, 0.5
    clipped = losses.importance_clip(per_token, now, rollout, cap=1.5)
    assert clipped[0].tolist() == pytest.approx([1.0, 1.5, 0.5])


def test_grpo_group_advantages_on_a_hand_made_group():
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 1.0])
    groups = torch.tensor([0, 0, 0, 0, 1, 1])
    adv = losses.group_advantages(rewards, groups, scale=True, eps=0.0)
    std = math.sqrt(1 / 3)  # unbiased std of (1, 0, 0, 1)
    assert adv[:4].tolist() == pytest.approx([0.5 / std, -0.5 / std, -0.5 / std, 0.5 / std])
    assert adv[4:].tolist() == [0.0, 0.0]  # nothing to learn from a group that all got the same reward
    unscaled = losses.group_advantages(rewards, groups, scale=False)
    assert unscaled[:4].tolist() == pytest.approx([0.5, -0.5, -0.5, 0.5])


def test_grpo_surrogate_clips_the_ratio_in_the_direction_of_the_advantage():
    rollout = torch.zeros(1, 2)
    logp = torch.log(torch.tensor([[1.5, 0.5]]))  # ratios 1.5 and 0.5
    positive = losses.grpo_token_loss(logp, rollout, torch.tensor([[1.0]]), 0.2, 0.2)
    negative = losses.grpo_token_loss(logp, rollout, torch.tensor([[-1.0]]), 0.2, 0.2)
    assert positive[0].tolist() == pytest.approx([-1.2, -0.5])  # min(1.5, 1.2) and min(0.5, 0.8)
    assert negative[0].tolist() == pytest.approx([1.5, 0.8])  # -min(-1.5, -1.2) and -min(-0.5, -0.8)


def test_k3_kl_is_zero_when_policies_agree_and_positive_otherwise():
    logp = torch.log(torch.tensor([0.5, 0.5]))
    ref = torch.log(torch.tensor([0.5, 0.25]))
    kl = losses.k3_kl(logp, ref)
    assert kl[0].item() == pytest.approx(0.0)
    assert kl[1].item() == pytest.approx(0.5 - math.log(0.5) - 1.0)


def test_the_sampled_token_loss_from_two_log_probs_equals_trls_from_two_sets_of_logits():
    """What the engine-scored teacher feeds the trainer (one log-prob per
    token) gives TRL's loss and gradient."""
    torch.manual_seed(0)
    student = torch.randn(2, 5, 11, requires_grad=True)
    teacher, ids = torch.randn(2, 5, 11), torch.randint(0, 11, (2, 5))
    want = losses.per_token_loss(student, teacher, ids, "sampled_token", 1.0)
    got = losses.sampled_token_loss(losses.token_logprobs(student, ids), losses.token_logprobs(teacher, ids))
    torch.testing.assert_close(got, want)
    (grad_want,) = torch.autograd.grad(want.sum(), student)
    (grad_got,) = torch.autograd.grad(got.sum(), student)
    torch.testing.assert_close(grad_got, grad_want)
    hand = (math.log(0.5) - math.log(0.25)) * math.log(0.5)  # (log p_s - log p_t) * log p_s
    assert float(
        losses.sampled_token_loss(torch.tensor([math.log(0.5)]), torch.tensor([math.log(0.25)]))
    ) == pytest.approx(hand)


@pytest.mark.parametrize("mode,alpha", [("sampled_token", 1.0), ("full_logits", 0.5), ("topk_logits", 1.0)])
def test_chunked_loss_terms_and_gradients_equal_the_whole_batch_ones(mode, alpha):
    """Chunks of 2 x 3 tokens x 11 logits (four slices of a 10-token
    batch) against one pass over everything."""
    torch.manual_seed(0)
    student = torch.randn(2, 10, 11, requires_grad=True)
    teacher, ids = torch.randn(2, 10, 11), torch.randint(0, 11, (2, 10))
    whole = losses.distillation_terms(student, teacher, ids, mode, alpha, topk=3, chunk_elements=10**6)
    (whole_grad,) = torch.autograd.grad((whole[0] + whole[1]).sum(), student)
    chunked = losses.distillation_terms(student, teacher, ids, mode, alpha, topk=3, chunk_elements=2 * 3 * 11)
    (chunked_grad,) = torch.autograd.grad((chunked[0] + chunked[1]).sum(), student)
    for got, want in zip(chunked, whole, strict=True):
        assert got.shape == (2, 10) and torch.allclose(got, want, atol=1e-6)
    assert torch.allclose(chunked_grad, whole_grad, atol=1e-6)
    assert not chunked[2].requires_grad and not chunked[3].requires_grad  # records carry no graph


def test_chunked_log_probs_keep_no_whole_batch_log_softmax_for_backward():
    """The tensors autograd keeps for backward: one pass keeps a float32 log-softmax of every logit; chunks
    keep only their inputs (views of the logits) and recompute the rest."""
    torch.manual_seed(0)
    logits = torch.randn(2, 64, 50, requires_grad=True)
    ids = torch.randint(0, 50, (2, 64))

    def kept_elements(chunk_elements: int) -> int:
        sizes = []

        def pack(t):
            sizes.append(t.numel() if t.data_ptr() != logits.data_ptr() else 0)
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            losses.chunked_logprobs(logits, ids, chunk_elements=chunk_elements).sum()
        return max(sizes)

    assert kept_elements(10**6) >= logits.numel()  # the whole log-softmax
    assert kept_elements(2 * 8 * 50) <= 2 * 8 * 50  # no saved tensor larger than one chunk
    assert torch.allclose(
        losses.chunked_logprobs(logits, ids, chunk_elements=2 * 8 * 50), losses.token_logprobs(logits, ids)
    )
