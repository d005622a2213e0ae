"""Distillation: loss math on hand-worked tensors, masking, the frozen teacher, and one real training step
on the tiny model lowering the student-teacher divergence on its batch."""

import dataclasses
import math

import pandas as pd
import pytest
import torch

from sdfb import distill
from sdfb.config import DistillConfig, LoraConfig
from sdfb.localisation import SEGMENTS
from sdfb.losses import completion_logits, masked_mean, per_token_loss, reverse_kl, token_advantages
from sdfb.prompts import load_template, render_student_prompt, render_teacher_prompt


def test_completion_logits_pick_the_positions_that_predict_each_completion_token():
    # logits[b, t] = t so the gathered values are the positions themselves
    logits = torch.arange(6.0).view(1, 6, 1).repeat(2, 1, 3)
    picked = completion_logits(logits, torch.tensor([2, 3]), width=2)
    assert picked[0, :, 0].tolist() == [
        1.0,
        2.0,
    ]  # prompt of 2 tokens: positions 1 and 2 predict tokens 2 and 3
    assert picked[1, :, 0].tolist() == [2.0, 3.0]


def test_token_advantage_is_teacher_minus_student_log_prob_of_the_sampled_token():
    # vocab of 2: student p = (0.5, 0.5); teacher p = (0.8, 0.2); sampled token 0 then 1
    student = torch.zeros(1, 2, 2)
    teacher = torch.log(torch.tensor([[[0.8, 0.2], [0.8, 0.2]]]))
    adv = token_advantages(student, teacher, torch.tensor([[0, 1]]))
    assert adv[0, 0].item() == pytest.approx(math.log(0.8) - math.log(0.5))
    assert adv[0, 1].item() == pytest.approx(math.log(0.2) - math.log(0.5))


def test_reverse_kl_matches_the_hand_computed_value():
    student = torch.log(torch.tensor([[[0.5, 0.5]]]))
    teacher = torch.log(torch.tensor([[[0.8, 0.2]]]))
    expected = 0.5 * math.log(0.5 / 0.8) + 0.5 * math.log(0.5 / 0.2)
    assert reverse_kl(student, teacher).item() == pytest.approx(expected)


def test_sampled_token_loss_gradient_is_minus_advantage_times_score_function():
    # d/dz of log_ratio.detach() * log p(y) equals (log ps - log pt) * d log p(y)/dz: pushes p(y) up when A_t
    # > 0
    student = torch.zeros(1, 1, 2, requires_grad=True)
    teacher = torch.log(torch.tensor([[[0.8, 0.2]]]))
    loss = per_token_loss(student, teacher, torch.tensor([[0]]), "sampled_token", 1.0).sum()
    loss.backward()
    log_ratio = math.log(0.5) - math.log(0.8)
    # d log softmax(z)_0 / dz = (1 - p0, -p1) = (0.5, -0.5)
    assert student.grad[0, 0].tolist() == pytest.approx([log_ratio * 0.5, -log_ratio * 0.5])
    assert student.grad[0, 0, 0] < 0  # gradient descent raises the logit of the token the teacher prefers


def test_masked_completion_tokens_do_not_contribute_to_the_mean():
    values = torch.tensor([[1.0, 3.0, 100.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    assert masked_mean(values, mask).item() == pytest.approx(2.0)


def _examples(tokenizer, n=4):
    template = load_template("v1")
    rows, ctx = [], []
    for i in range(n):
        question = f"Tom has {i + 3} apples. He buys 2 more apples. How many apples does Tom have now?"
        prompt = render_student_prompt(tokenizer, template, question)
        completion = tokenizer(f"Step 1: {i + 3} + 2 = {i + 5}\nAnswer: {i + 5}", add_special_tokens=False)[
            "input_ids"
        ]
        rows.append(
            {
                "problem_id": f"p{i}",
                "sample_index": 0,
                "prompt_ids": tokenizer(prompt, add_special_tokens=False)["input_ids"],
                "completion_ids": completion + [tokenizer.eos_token_id],
            }
        )
        teacher = render_teacher_prompt(
            tokenizer, template, question, f"Here is a corrected solution:\nAnswer: {i + 5}"
        )
        ctx.append({"problem_id": f"p{i}", "sample_index": 0, "teacher_prompt": teacher, "train": True})
    return distill.build_examples(pd.DataFrame(rows), pd.DataFrame(ctx), tokenizer)


def test_examples_keep_the_stored_completion_ids_for_both_roles(tiny_tokenizer):
    examples = _examples(tiny_tokenizer, n=2)
    for ex in examples:
        assert ex.student_ids[ex.student_prompt_len :] == ex.completion_ids
        assert ex.teacher_ids[ex.teacher_prompt_len :] == ex.completion_ids
        assert ex.teacher_prompt_len > ex.student_prompt_len  # the teacher's prompt also holds the context


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
            input_ids=batch["teacher_input_ids"],
            attention_mask=batch["teacher_attention_mask"],
            position_ids=batch["teacher_position_ids"],
        ).logits
    assert torch.allclose(completion_logits(base, batch["teacher_prompt_lens"], teacher.shape[1]), teacher)
    student.sum().backward()
    base_params = [p for n, p in model.named_parameters() if "lora" not in n]
    assert all(p.grad is None for p in base_params)  # the frozen initial policy is never updated


def test_an_aligned_batch_gives_each_example_the_logits_it_gets_alone(lora_student, tiny_tokenizer):
    """Prompts padded on the left, completions on the right, position ids over real tokens
    only: padding changes no logit, and the output projection sees the completion positions
    only (width + 1 rows, never the prompt)."""
    model, _ = lora_student
    examples = _examples(tiny_tokenizer, n=3)
    examples = [  # prompts and completions of different lengths in one batch
        dataclasses.replace(
            ex,
            student_ids=ex.student_ids[: ex.student_prompt_len]
            + [ex.student_ids[0]] * i
            + ex.completion_ids[i:],
            student_prompt_len=ex.student_prompt_len + i,
            completion_ids=ex.completion_ids[i:],
            teacher_ids=ex.teacher_ids[: ex.teacher_prompt_len] + ex.completion_ids[i:],
            rollout_logprobs=ex.rollout_logprobs[i:],
        )
        for i, ex in enumerate(examples)
    ]
    rows = []
    hook = model.get_output_embeddings().register_forward_pre_hook(
        lambda _, args: rows.append(args[0].shape[1])
    )
    with torch.no_grad():
        student, teacher = distill.student_and_teacher_logits(model, distill.Collator(0)(examples))
        hook.remove()
        width = max(len(ex.completion_ids) for ex in examples)
        assert rows == [width + 1, width + 1]  # teacher pass, then student pass
        for i, ex in enumerate(examples):
            alone = distill.student_and_teacher_logits(model, distill.Collator(0)([ex]))
            n = len(ex.completion_ids)
            assert torch.allclose(student[i, :n], alone[0][0], atol=1e-5)
            assert torch.allclose(teacher[i, :n], alone[1][0], atol=1e-5)


def _sampled_log_ratio_sq(model, batch) -> float:
    """What the sampled-token loss descends: its gradient is that of 0.5 *
    (log ps - log pt)^2 per sampled token."""
    from sdfb.losses import token_logprobs

    with torch.no_grad():
        student, teacher = distill.student_and_teacher_logits(model, batch)
        ratio = token_logprobs(student, batch["completion_ids"]) - token_logprobs(
            teacher, batch["completion_ids"]
        )
        return float(masked_mean(ratio**2, batch["completion_mask"]))


@pytest.mark.parametrize(
    "mode,alpha,measure",
    [("sampled_token", 1.0, _sampled_log_ratio_sq), ("full_logits", 0.5, distill.batch_divergence)],
)
@pytest.mark.train
def test_one_distillation_step_lowers_the_divergence_on_its_batch(
    lora_student, tiny_tokenizer, tmp_path, mode, alpha, measure
):
    model, cfg = lora_student
    cfg = cfg.model_copy(update={"mode": mode, "alpha": alpha, "learning_rate": 1e-4})
    examples = _examples(tiny_tokenizer, n=4)
    batch = distill.Collator(tiny_tokenizer.pad_token_id)(examples)
    # start from a student that differs from the teacher (LoRA B is zero at initialisation)
    torch.manual_seed(1)
    for name, param in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.05)
    before = measure(model, batch)
    result = distill.train_round(model, tiny_tokenizer, examples, cfg, tmp_path / "trainer", seed=0)
    after = measure(model, batch)
    assert result.metrics["steps"] == 1
    assert before > 0
    assert after < before, f"divergence did not fall: {before:.6f} -> {after:.6f}"
    per_sample = result.per_sample
    assert len(per_sample) == 4 and (per_sample["n_tokens"] > 0).all()
    assert per_sample["frac_negative"].between(0, 1).all()


def test_a_long_teacher_prompt_loses_the_middle_of_its_context_only():
    prefix, context, suffix, marker = [1, 2, 3], list(range(100, 120)), [4, 5], [9]
    ids, cut = distill.fit_teacher_prompt(prefix, context, suffix, budget=15, marker=marker)
    assert len(ids) == 15 and cut == 11  # 20 context tokens, 9 kept
    assert ids[:3] == prefix and ids[-2:] == suffix  # question side and the rest are intact
    assert ids[3:8] == context[:5] and ids[8] == 9 and ids[9:13] == context[-4:]
    assert distill.fit_teacher_prompt(prefix, context, suffix, budget=25, marker=marker) == (
        prefix + context + suffix,
        0,
    )
    with pytest.raises(ValueError):
        distill.fit_teacher_prompt(prefix, context, suffix, budget=5, marker=marker)


def test_examples_over_max_length_are_cut_in_the_context_and_counted(tiny_tokenizer):
    template = load_template("v1")
    question = "Tom has 3 apples. He buys 2 more apples. How many apples does Tom have now?"
    context = "Here is a corrected solution:\n" + "Step 1: 3 + 2 = 5\n" * 30 + "Answer: 5"
    prompt = render_student_prompt(tiny_tokenizer, template, question)
    teacher = render_teacher_prompt(tiny_tokenizer, template, question, context)
    completion = tiny_tokenizer("Step 1: 3 + 2 = 5\nAnswer: 5", add_special_tokens=False)["input_ids"]
    rollouts = pd.DataFrame(
        [
            {
                "problem_id": "p",
                "sample_index": 0,
                "completion_ids": completion,
                "prompt_ids": tiny_tokenizer(prompt, add_special_tokens=False)["input_ids"],
            }
        ]
    )
    contexts = pd.DataFrame(
        [{"problem_id": "p", "sample_index": 0, "teacher_prompt": teacher, "context": context, "train": True}]
    )
    full = len(tiny_tokenizer(teacher, add_special_tokens=False)["input_ids"]) + len(completion)
    examples, stats = distill.prepare_examples(rollouts, contexts, tiny_tokenizer, max_length=full - 40)
    assert stats.teacher_truncated == 1 and stats.teacher_tokens_cut >= 40
    ex = examples[0]
    assert len(ex.teacher_ids) <= full - 40
    assert ex.teacher_ids[-len(completion) :] == completion  # the completion is never cut
    text = tiny_tokenizer.decode(ex.teacher_ids[: ex.teacher_prompt_len])
    assert question in text and "[...]" in text and text.rstrip().endswith("assistant")


def test_length_bucketing_cuts_padding_waste():
    import random

    rng = random.Random(0)
    examples = [
        distill.Example(i, "p", 0, [0] * n, [0] * (n + 20), n, n + 20, [], [])
        for i, n in enumerate(rng.choices(range(10, 300), k=256))
    ]
    shuffled = examples[:]
    rng.shuffle(shuffled)
    bucketed = distill.bucket_by_length(examples, batch_size=8, seed=0)
    assert sorted(e.index for e in bucketed) == list(range(256))  # a permutation: nothing lost or repeated
    assert distill.padding_waste(bucketed, 8) < 0.10 < distill.padding_waste(shuffled, 8)


def _fresh(tiny_model_path, **overrides):
    cfg = DistillConfig(learning_rate=1e-2, batch_size=2, lora=LoraConfig(r=8, alpha=16), **overrides)
    torch.manual_seed(0)
    return distill.prepare_model("tiny", "float32", cfg, None), cfg


@pytest.mark.parametrize("teacher", ["base", "ema"])
@pytest.mark.train
def test_a_resumed_round_reproduces_the_next_steps_loss_exactly(
    tiny_model_path, tiny_tokenizer, tmp_path, teacher
):
    examples = _examples(tiny_tokenizer, n=4)
    model, cfg = _fresh(tiny_model_path, teacher=teacher, save_steps=1)
    straight = distill.train_round(
        model, tiny_tokenizer, examples, cfg, tmp_path / "straight", seed=0, max_steps=2
    )
    model, cfg = _fresh(tiny_model_path, teacher=teacher, save_steps=1)
    first = distill.train_round(
        model, tiny_tokenizer, examples, cfg, tmp_path / "crashed", seed=0, max_steps=1
    )
    assert (tmp_path / "crashed" / "checkpoint-1").is_dir()
    model, cfg = _fresh(
        tiny_model_path, teacher=teacher, save_steps=1
    )  # a new process: initial weights again
    resumed = distill.train_round(
        model, tiny_tokenizer, examples, cfg, tmp_path / "crashed", seed=0, max_steps=2
    )
    assert resumed.metrics["resumed_from"].endswith("checkpoint-1")
    assert first.losses == straight.losses[:1]
    assert resumed.losses[1:] == straight.losses[1:]  # bitwise equal, not approximately
    # the resumed round reports the whole round: the step before the crash comes from the checkpoint
    assert resumed.losses == straight.losses and len(resumed.per_sample) == len(straight.per_sample)


@pytest.mark.parametrize("mode", ["ema", "live"])
def test_teacher_weights_are_swapped_in_and_restored_exactly(tiny_model_path, tiny_tokenizer, mode):
    model, cfg = _fresh(tiny_model_path, teacher=mode)
    teacher = distill.TeacherState(model, mode, "lora", rate=0.5)
    for name, param in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.3)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    batch = distill.Collator(tiny_tokenizer.pad_token_id)(_examples(tiny_tokenizer, n=2))
    student, ema_teacher = distill.student_and_teacher_logits(model, batch, teacher)
    assert all(torch.equal(before[n], p) for n, p in model.named_parameters())
    if mode == "live":
        with torch.no_grad():  # the live teacher is the current student reading the teacher prompt
            logits = model(
                input_ids=batch["teacher_input_ids"],
                attention_mask=batch["teacher_attention_mask"],
                position_ids=batch["teacher_position_ids"],
            ).logits
        width = student.shape[1]
        assert torch.allclose(completion_logits(logits, batch["teacher_prompt_lens"], width), ema_teacher)
    else:
        base_teacher = distill.student_and_teacher_logits(model, batch)[1]
        assert torch.allclose(ema_teacher, base_teacher)  # the EMA starts at the initial (B = 0) adapter
        teacher.update(model)
        moved = distill.student_and_teacher_logits(model, batch, teacher)[1]
        assert not torch.allclose(moved, base_teacher)


@pytest.mark.train
def test_a_grpo_step_raises_the_log_prob_of_the_rewarded_completion(
    tiny_model_path, tiny_tokenizer, tmp_path
):
    examples = _examples(tiny_tokenizer, n=2)
    examples = [
        dataclasses.replace(ex, problem_id="same", advantage=adv)
        for ex, adv in zip(examples, (1.0, -1.0), strict=True)
    ]
    model, cfg = _fresh(tiny_model_path)
    batch = distill.Collator(tiny_tokenizer.pad_token_id, with_teacher=False)(examples)

    def seq_logp():
        from sdfb.losses import token_logprobs

        with torch.no_grad():
            logits = model(
                input_ids=batch["student_input_ids"],
                attention_mask=batch["student_attention_mask"],
                position_ids=batch["student_position_ids"],
            ).logits
            lp = token_logprobs(
                completion_logits(logits, batch["student_prompt_lens"], batch["completion_ids"].shape[1]),
                batch["completion_ids"],
            )
        return (lp * batch["completion_mask"]).sum(1)

    before = seq_logp()
    # the rollout policy is the current one: ratio 1 at the first step
    examples = [dataclasses.replace(ex, rollout_logprobs=[0.0] * len(ex.completion_ids)) for ex in examples]
    result = distill.train_round(
        model,
        tiny_tokenizer,
        examples,
        cfg.model_copy(update={"batch_size": 2}),
        tmp_path,
        0,
        objective="grpo",
    )
    after = seq_logp()
    assert result.metrics["objective"] == "grpo"
    # the completions share most tokens, so both may move; the rewarded one must gain more
    assert (after[0] - before[0]) > (after[1] - before[1])
    assert result.tokens["teacher_logprob"].isna().all()


@pytest.mark.train
def test_full_fine_tuning_against_the_frozen_initial_weights(tiny_model_path, tiny_tokenizer, tmp_path):
    cfg = DistillConfig(finetune="full", learning_rate=1e-3, batch_size=4)
    model = distill.prepare_model("tiny", "float32", cfg, None)
    initial = {n: p.detach().clone() for n, p in model.named_parameters()}
    teacher = distill.TeacherState(model, "base", "full", rate=0.05)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))  # a student that has drifted from the teacher
    result = distill.train_round(
        model, tiny_tokenizer, _examples(tiny_tokenizer, n=4), cfg, tmp_path, 0, teacher=teacher
    )
    assert result.metrics["steps"] == 1
    assert all(torch.equal(teacher.copy[n], initial[n]) for n in teacher.names)  # the teacher never moves
    assert result.tokens["teacher_logprob"].notna().all() and len(result.tokens) == result.metrics["tokens"]


def test_a_saved_teacher_state_of_another_mode_is_refused_with_what_to_do(tiny_model_path):
    model, _ = _fresh(tiny_model_path, teacher="ema")
    teacher = distill.TeacherState(model, "ema", "lora", rate=0.5)
    with pytest.raises(ValueError, match="saved teacher state is 'live' but distill.teacher is 'ema'"):
        teacher.load_state_dict({"mode": "live", "copy": None})


def test_a_teacher_prompt_over_the_limit_without_a_context_to_cut_is_counted_not_raised(tiny_tokenizer):
    rollouts = pd.DataFrame(
        [{"problem_id": "p", "sample_index": 0, "prompt_ids": [1, 2], "completion_ids": [3, 4]}]
    )
    contexts = pd.DataFrame(
        [{"problem_id": "p", "sample_index": 0, "teacher_prompt": "word " * 50, "context": "", "train": True}]
    )
    examples, stats = distill.prepare_examples(rollouts, contexts, tiny_tokenizer, max_length=10)
    assert examples == [] and stats.teacher_too_long == 1 and stats.teacher_truncated == 0


def distill_schema_tokens() -> list[str]:
    from sdfb import schemas

    return schemas.TOKENS.names


def round_tables(tokenizer) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The rollouts, contexts and grades of a four-sample round, as `distill.run_round` reads them."""
    examples = _examples(tokenizer, n=4)
    rollouts = pd.DataFrame(
        [
            {
                "problem_id": e.problem_id,
                "sample_index": e.sample_index,
                "prompt_ids": e.student_ids[: e.student_prompt_len],
                "completion_ids": e.completion_ids,
                "logprobs": [0.0] * len(e.completion_ids),
                "completion_text": tokenizer.decode(e.completion_ids, skip_special_tokens=True),
            }
            for e in examples
        ]
    )
    teacher_prompts = [tokenizer.decode(e.teacher_ids[: e.teacher_prompt_len]) for e in examples]
    contexts = rollouts[["problem_id", "sample_index"]].assign(
        teacher_prompt=teacher_prompts, train=True, first_wrong_step=1
    )
    grades = rollouts[["problem_id", "sample_index"]].assign(correct=[True, False, True, False])
    return rollouts, contexts, grades


@pytest.mark.parametrize("teacher", ["base", "ema"])
@pytest.mark.train
def test_run_round_trains_and_saves_the_adapter_in_place_of_the_checkpoint(
    tiny_model_path, tiny_tokenizer, tmp_path, teacher
):
    from sdfb.config import ModelConfig
    from sdfb.distill.checkpoint import load_teacher_state

    rollouts, contexts, grades = round_tables(tiny_tokenizer)
    checkpoint = tmp_path / "checkpoints" / "round_0001"
    cfg = DistillConfig(
        learning_rate=1e-3, batch_size=2, save_steps=1, teacher=teacher, lora=LoraConfig(r=8, alpha=16)
    )
    result = distill.run_round(
        ModelConfig(name_or_path="tiny", dtype="float32"),
        cfg,
        "self_distillation",
        0,
        1,
        rollouts,
        contexts,
        grades,
        previous=None,
        checkpoint=checkpoint,
    )
    assert result.metrics["steps"] == 2 and result.metrics["examples"] == 4 and len(result.per_sample) == 4
    assert result.metrics["examples_student_too_long"] == 0
    assert list(result.tokens.columns) == distill_schema_tokens()  # each token located in its completion
    assert set(result.tokens["segment"]) <= set(SEGMENTS)
    assert (checkpoint / "adapter_model.safetensors").exists()
    assert (checkpoint / distill.EMA_FILE).exists() == (teacher == "ema")
    assert distill.partial_dir(checkpoint).is_dir()  # kept until the task has written its manifests
    distill.discard_partial(checkpoint)
    assert sorted(p.name for p in checkpoint.parent.iterdir()) == ["round_0001"]  # no temporary siblings
    if teacher == "ema":  # the next round's teacher continues this round's EMA exactly
        nxt = distill.TeacherState(
            distill.prepare_model("tiny", "float32", cfg, checkpoint), "ema", "lora", 0.5
        )
        assert load_teacher_state(nxt, checkpoint)
        assert all(torch.equal(nxt.copy[n], result.teacher.copy[n]) for n in nxt.names)


def test_importing_the_package_loads_neither_torch_nor_transformers():
    import subprocess
    import sys

    code = (
        "import sys, sdfb.distill; print(sorted({'torch', 'transformers', 'peft', 'trl'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("mode", ["sampled_token", "full_logits"])
@pytest.mark.train
def test_the_none_control_trains_on_an_advantage_of_zero_at_every_token(
    tiny_model_path, tiny_tokenizer, tmp_path, mode
):
    """The control arm: the teacher's prompt is the student's own, so the signal is zero within float
    tolerance and the localisation records say so (no active token)."""
    from sdfb.config import ModelConfig
    from sdfb.localisation import signal_activity

    template, rows = load_template("v1"), []
    for i in range(4):
        prompt = render_student_prompt(
            tiny_tokenizer, template, f"Tom has {i + 3} apples. He buys 2 more. How many?"
        )
        text = f"Step 1: {i + 3} + 2 = {i + 5}\nAnswer: {i + 5}"
        rows.append(
            {
                "problem_id": f"p{i}",
                "sample_index": 0,
                "prompt_text": prompt,
                "prompt_ids": tiny_tokenizer(prompt, add_special_tokens=False)["input_ids"],
                "completion_ids": tiny_tokenizer(text, add_special_tokens=False)["input_ids"]
                + [tiny_tokenizer.eos_token_id],
                "completion_text": text,
            }
        )
    rollouts = pd.DataFrame(rows).assign(
        logprobs=lambda f: f["completion_ids"].map(lambda ids: [0.0] * len(ids))
    )
    contexts = rollouts[["problem_id", "sample_index"]].assign(
        teacher_prompt=rollouts["prompt_text"], train=True, first_wrong_step=1
    )
    grades = rollouts[["problem_id", "sample_index"]].assign(correct=False)
    cfg = DistillConfig(mode=mode, learning_rate=1e-3, batch_size=2, lora=LoraConfig(r=8, alpha=16))
    result = distill.run_round(
        ModelConfig(name_or_path="tiny", dtype="float32"),
        cfg,
        "control",
        0,
        1,
        rollouts,
        contexts,
        grades,
        previous=None,
        checkpoint=tmp_path / "round_0001",
    )
    assert result.metrics["examples"] == 4 and len(result.tokens) > 0
    assert result.tokens["advantage"].abs().max() < 1e-5
    by_attempt = [g["advantage"].to_numpy() for _, g in result.tokens.groupby("problem_id")]
    assert signal_activity(by_attempt, tol=1e-5)["active_tokens"] == 0.0
    assert set(result.tokens["segment"]) >= {"wrong_step", "answer"}  # located although the signal is silent
    assert result.metrics["steps"] == 2  # the same loop as every arm


def _lora_b_weights(checkpoint) -> dict:
    from safetensors.torch import load_file

    weights = load_file(str(checkpoint / "adapter_model.safetensors"))
    return {name: w for name, w in weights.items() if "lora_B" in name}


@pytest.mark.parametrize("objective, changed", [("control", False), ("self_distillation", True)])
@pytest.mark.train
def test_the_control_objective_leaves_the_weights_unchanged_even_where_the_teacher_disagrees(
    tiny_model_path, tiny_tokenizer, tmp_path, objective, changed
):
    """A new LoRA adapter starts with every lora_B at zero. On a teacher that does disagree
    (the reference solution in its prompt), self-distillation moves them; the control runs the
    same loop and leaves them at zero, so its checkpoint is the base model (this fails if the
    control's learning-rate override is removed)."""
    from sdfb.config import ModelConfig

    rollouts, contexts, grades = round_tables(tiny_tokenizer)
    cfg = DistillConfig(learning_rate=1e-2, batch_size=2, lora=LoraConfig(r=8, alpha=16))
    model = ModelConfig(name_or_path="tiny", dtype="float32")
    checkpoint = tmp_path / "round_0001"
    result = distill.run_round(model, cfg, objective, 0, 1, rollouts, contexts, grades, None, checkpoint)
    assert result.metrics["steps"] >= 1 and result.tokens["advantage"].abs().max() > 1e-3
    largest = max(float(w.abs().max()) for w in _lora_b_weights(tmp_path / "round_0001").values())
    assert (largest > 0) is changed, largest


@pytest.mark.train
def test_a_rounds_training_does_not_depend_on_what_the_process_drew_before(
    tiny_model_path, tiny_tokenizer, tmp_path
):
    """A resumed run or another order of arms leaves the process's random state elsewhere when a round starts
    (HF generate seeds torch per batch; a skipped stage draws nothing): the round must train alike anyway."""
    import torch

    from sdfb.config import ModelConfig

    rollouts, contexts, grades = round_tables(tiny_tokenizer)
    cfg = DistillConfig(learning_rate=1e-2, batch_size=2, lora=LoraConfig(r=8, alpha=16))
    model, results = ModelConfig(name_or_path="tiny", dtype="float32"), []
    for state in (1, 12345):
        torch.manual_seed(state)
        torch.rand(state % 97)  # and a different number of draws since
        checkpoint = tmp_path / str(state) / "round_0001"
        tables = (rollouts, contexts, grades)
        results.append(distill.run_round(model, cfg, "self_distillation", 0, 1, *tables, None, checkpoint))
    first, second = results
    assert first.losses == second.losses
    pd.testing.assert_frame_equal(first.per_sample, second.per_sample)
    pd.testing.assert_frame_equal(first.tokens, second.tokens)


@pytest.mark.train
def test_a_round_with_the_engine_scored_teacher_trains_with_the_losses_of_the_in_trainer_teacher(
    tiny_model_path, tiny_tokenizer, tmp_path
):
    """The teacher's log-probs scored before training (here by the HF backend's teacher forcing; the vLLM
    engine's are checked against the same forward in tests/test_vllm.py) give the same loss at every step
    as the teacher forward inside training, and no teacher forward runs."""
    from sdfb.config import ModelConfig
    from sdfb.distill.engine_teacher import score_teacher
    from sdfb.generation import HFGenerator

    rollouts, contexts, grades = round_tables(tiny_tokenizer)
    base = HFGenerator("tiny", dtype="float32", batch_size=3)  # batches of 3 and 1: padding must not matter
    scores = score_teacher(rollouts, contexts, grades, tiny_tokenizer, base, max_length=4096)
    assert (
        len(scores) == 4
        and (scores["teacher_logprobs"].map(len) == rollouts["completion_ids"].map(len)).all()
    )

    model = ModelConfig(name_or_path="tiny", dtype="float32")
    results = {}
    for source, stored in (("trainer", None), ("engine", scores)):
        cfg = DistillConfig(
            learning_rate=1e-3, batch_size=2, lora=LoraConfig(r=8, alpha=16), teacher_source=source
        )
        results[source] = distill.run_round(
            model,
            cfg,
            "self_distillation",
            0,
            1,
            rollouts,
            contexts,
            grades,
            previous=None,
            checkpoint=tmp_path / source / "round_0001",
            teacher_scores=stored,
        )
    trainer, engine = results["trainer"], results["engine"]
    assert len(trainer.losses) == len(engine.losses) == 2
    assert engine.losses == pytest.approx(trainer.losses, abs=1e-5)
    merged = trainer.tokens.merge(engine.tokens, on=["problem_id", "sample_index", "position"])
    assert (merged["teacher_logprob_x"] - merged["teacher_logprob_y"]).abs().max() < 1e-4


def test_the_engine_scored_teacher_is_refused_where_it_cannot_stand_in():
    with pytest.raises(ValueError, match="teacher_source=engine needs distill.mode=sampled_token"):
        DistillConfig(teacher_source="engine", mode="full_logits")
    with pytest.raises(ValueError, match="teacher base or live"):
        DistillConfig(teacher_source="engine", teacher="ema")
