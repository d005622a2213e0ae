"""Distillation: loss math on hand-worked tensors, masking, the frozen teacher, and one real training step on the
tiny model lowering the student-teacher divergence on its batch."""

import math

import pandas as pd
import pytest
import torch

from sdfb import distill
from sdfb.config import DistillConfig, LoraConfig
from sdfb.prompts import load_template, render_student_prompt, render_teacher_prompt


def test_completion_logits_pick_the_positions_that_predict_each_completion_token():
    # logits[b, t] = t so the gathered values are the positions themselves
    logits = torch.arange(6.0).view(1, 6, 1).repeat(2, 1, 3)
    picked = distill.completion_logits(logits, torch.tensor([2, 3]), width=2)
    assert picked[0, :, 0].tolist() == [
        1.0,
        2.0,
    ]  # prompt of 2 tokens: positions 1 and 2 predict tokens 2 and 3
    assert picked[1, :, 0].tolist() == [2.0, 3.0]


def test_token_advantage_is_teacher_minus_student_log_prob_of_the_sampled_token():
    # vocab of 2: student p = (0.5, 0.5); teacher p = (0.8, 0.2); sampled token 0 then 1
    student = torch.zeros(1, 2, 2)
    teacher = torch.log(torch.tensor([[[0.8, 0.2], [0.8, 0.2]]]))
    adv = distill.token_advantages(student, teacher, torch.tensor([[0, 1]]))
    assert adv[0, 0].item() == pytest.approx(math.log(0.8) - math.log(0.5))
    assert adv[0, 1].item() == pytest.approx(math.log(0.2) - math.log(0.5))


def test_reverse_kl_matches_the_hand_computed_value():
    student = torch.log(torch.tensor([[[0.5, 0.5]]]))
    teacher = torch.log(torch.tensor([[[0.8, 0.2]]]))
    expected = 0.5 * math.log(0.5 / 0.8) + 0.5 * math.log(0.5 / 0.2)
    assert distill.reverse_kl(student, teacher).item() == pytest.approx(expected)


def test_sampled_token_loss_gradient_is_minus_advantage_times_score_function():
    # d/dz of log_ratio.detach() * log p(y) equals (log ps - log pt) * d log p(y)/dz: pushes p(y) up when A_t > 0
    student = torch.zeros(1, 1, 2, requires_grad=True)
    teacher = torch.log(torch.tensor([[[0.8, 0.2]]]))
    loss = distill.per_token_loss(student, teacher, torch.tensor([[0]]), "sampled_token", 1.0).sum()
    loss.backward()
    log_ratio = math.log(0.5) - math.log(0.8)
    # d log softmax(z)_0 / dz = (1 - p0, -p1) = (0.5, -0.5)
    assert student.grad[0, 0].tolist() == pytest.approx([log_ratio * 0.5, -log_ratio * 0.5])
    assert student.grad[0, 0, 0] < 0  # gradient descent raises the logit of the token the teacher prefers


def test_masked_completion_tokens_do_not_contribute_to_the_mean():
    values = torch.tensor([[1.0, 3.0, 100.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    assert distill.masked_mean(values, mask).item() == pytest.approx(2.0)


def _examples(tokenizer, n=4):
    template = load_template("v1")
    rows, ctx = [], []
    for i in range(n):
        question = f"Tom has {i + 3} apples. He buys 2 more apples. How many apples does Tom have now?"
        prompt = render_student_prompt(tokenizer, template, question)
        completion = tokenizer(f"Step 1: {i + 3} + 2 = {i + 5}\nAnswer: {i + 5}", add_special_tokens=False)[
            "input_ids"
        ]
        rows.append({"problem_id": f"p{i}", "sample_index": 0, "prompt_ids": tokenizer(prompt, add_special_tokens=False)["input_ids"],
                     "completion_ids": completion + [tokenizer.eos_token_id]})  # fmt: skip
        teacher = render_teacher_prompt(
            tokenizer, template, question, f"Here is a corrected solution:\nAnswer: {i + 5}"
        )
        ctx.append({"problem_id": f"p{i}", "sample_index": 0, "teacher_prompt": teacher, "train": True})
    return distill.build_examples(pd.DataFrame(rows), pd.DataFrame(ctx), tokenizer)


def test_examples_keep_the_stored_completion_ids_for_both_roles(tiny_tokenizer):
    examples = _examples(tiny_tokenizer, n=2)
    for ex in examples:
        assert ex["student_ids"][ex["student_prompt_len"] :] == ex["completion_ids"]
        assert ex["teacher_ids"][ex["teacher_prompt_len"] :] == ex["completion_ids"]
        assert (
            ex["teacher_prompt_len"] > ex["student_prompt_len"]
        )  # the teacher's prompt also holds the context


def test_rows_marked_not_for_training_are_left_out(tiny_tokenizer):
    rollouts = pd.DataFrame(
        [{"problem_id": "p", "sample_index": 0, "prompt_ids": [1, 2], "completion_ids": [3]}]
    )
    contexts = pd.DataFrame([{"problem_id": "p", "sample_index": 0, "teacher_prompt": "x", "train": False}])
    assert distill.build_examples(rollouts, contexts, tiny_tokenizer) == []


@pytest.fixture()
def lora_student(tiny_model_path):
    cfg = DistillConfig(learning_rate=5e-3, batch_size=4, lora=LoraConfig(r=8, alpha=16))
    torch.manual_seed(0)
    return distill.prepare_model("tiny", "float32", cfg, None), cfg


def test_teacher_pass_never_receives_gradients_and_equals_the_base_model(lora_student, tiny_tokenizer):
    model, _ = lora_student
    # make the adapter non-trivial so student and teacher differ
    for name, param in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.5)
    batch = distill.Collator(tiny_tokenizer.pad_token_id)(_examples(tiny_tokenizer, n=2))
    student, teacher = distill.student_and_teacher_logits(model, batch)
    assert student.requires_grad and not teacher.requires_grad
    with torch.no_grad(), model.disable_adapter():
        base = model(
            input_ids=batch["teacher_input_ids"], attention_mask=batch["teacher_attention_mask"]
        ).logits
    assert torch.allclose(
        distill.completion_logits(base, batch["teacher_prompt_lens"], teacher.shape[1]), teacher
    )
    student.sum().backward()
    base_params = [p for n, p in model.named_parameters() if "lora" not in n]
    assert all(p.grad is None for p in base_params)  # the frozen initial policy is never updated


@pytest.mark.parametrize("mode,alpha", [("sampled_token", 1.0), ("full_logits", 0.5)])
def test_one_distillation_step_lowers_the_divergence_on_its_batch(
    lora_student, tiny_tokenizer, tmp_path, mode, alpha
):
    model, cfg = lora_student
    cfg = cfg.model_copy(update={"mode": mode, "alpha": alpha, "learning_rate": 2e-2})
    examples = _examples(tiny_tokenizer, n=4)
    batch = distill.Collator(tiny_tokenizer.pad_token_id)(examples)
    # start from a student that differs from the teacher (LoRA B is zero at initialisation)
    torch.manual_seed(1)
    for name, param in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.05)
    before = distill.batch_divergence(model, batch)
    result = distill.train_round(model, tiny_tokenizer, examples, cfg, tmp_path / "trainer", seed=0)
    after = distill.batch_divergence(model, batch)
    assert result["metrics"]["steps"] == 1
    assert before > 0
    assert after < before, f"divergence did not fall: {before:.6f} -> {after:.6f}"
    per_sample = result["per_sample"]
    assert len(per_sample) == 4 and (per_sample["n_tokens"] > 0).all()
    assert per_sample["frac_negative"].between(0, 1).all()
