"""Training health: the per-token metric math on hand-worked tensors, the thresholds, warnings and
stop rule on hand-written numbers and tables, and two rounds of the tiny model: one made to
collapse (a huge learning rate) and one that does not."""

import dataclasses
import logging
import math

import pandas as pd
import pytest
import torch
from test_distill import round_tables

from sdfb import distill, health
from sdfb.config import ConfigError, DistillConfig, HealthConfig, ModelConfig, build_config
from sdfb.losses import active_tokens, kl_to_start, token_entropy


def test_entropy_of_uniform_and_skewed_distributions_matches_the_hand_computed_values():
    logits = torch.log(torch.tensor([[[0.5, 0.5], [0.8, 0.2]]]))
    expected = [math.log(2), -(0.8 * math.log(0.8) + 0.2 * math.log(0.2))]  # 0.6931, 0.5004
    assert token_entropy(logits)[0].tolist() == pytest.approx(expected)
    # one token per chunk gives the same numbers
    assert token_entropy(logits, chunk_elements=2)[0].tolist() == pytest.approx(expected)


def test_kl_to_start_is_zero_where_nothing_moved_and_k3_of_the_ratio_elsewhere():
    start = torch.log(torch.tensor([[0.25, 0.5]]))
    now = torch.log(torch.tensor([[0.5, 0.5]]))
    # token 0: r = 0.5 / 0.25 = 2, r - 1 - log r = 1 - log 2; token 1: r = 1, 0
    assert kl_to_start(now, start)[0].tolist() == pytest.approx([1 - math.log(2), 0.0])


def test_kl_to_start_weighted_by_the_starting_policy_is_the_exact_kl():
    # start q = (0.5, 0.5), now p = (0.8, 0.2): sum_y q(y) k3(y) = KL(q || p) = 0.5 log(0.5/0.8) + 0.5
    # log(0.5/0.2)
    q, p = torch.tensor([[0.5, 0.5]]), torch.tensor([[0.8, 0.2]])
    estimate = float((q * kl_to_start(torch.log(p), torch.log(q))).sum())
    assert estimate == pytest.approx(0.5 * math.log(0.5 / 0.8) + 0.5 * math.log(0.5 / 0.2))  # 0.2231


def test_a_token_is_active_when_its_advantage_or_its_kl_passes_the_threshold():
    advantages = torch.tensor([[0.0, 0.005, -0.02, 0.0]])
    kl = torch.tensor([[0.0, 0.0, 0.0, 0.5]])
    assert active_tokens(advantages, kl, 0.01)[0].tolist() == [0.0, 0.0, 1.0, 1.0]


def test_the_step_record_counts_only_completion_tokens():
    from sdfb.distill.trainer import RoundStats

    stats = RoundStats()
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    logp = torch.log(torch.tensor([[0.5, 0.5, 0.9], [0.5, 0.5, 0.5]]))
    start = torch.log(torch.tensor([[0.25, 0.5, 0.1], [0.5, 0.5, 0.5]]))
    adv = torch.tensor([[1.0, 0.0, 5.0], [0.0, 0.0, 0.0]])
    entropy = torch.tensor([[1.0, 2.0, 100.0], [3.0, 3.0, 3.0]])
    stats.record_health({"rollout_logprobs": start}, mask, logp, adv, torch.zeros_like(adv), entropy, 0.01)
    (row,) = stats.health
    assert row["entropy"] == pytest.approx((1 + 2 + 3 * 3) / 5)  # the padded 100 is left out
    assert row["kl_to_start"] == pytest.approx((1 - math.log(2)) / 5)
    assert row["completion_length"] == pytest.approx(2.5)
    assert row["active_share"] == pytest.approx(1 / 5)


def test_step_means_average_the_micro_batches_of_one_optimizer_step():
    batches = [
        {"entropy": e, "kl_to_start": 0.0, "completion_length": 4.0, "active_share": 1.0} for e in range(6)
    ]
    assert health.step_means(batches, step=2, accumulation=2)["entropy"] == pytest.approx(2.5)  # batches 2, 3
    assert math.isnan(health.step_means(batches, step=4, accumulation=2)["entropy"])  # none measured


def _step(entropy=1.0, kl=0.1, active=0.5):
    return {"entropy": entropy, "kl_to_start": kl, "completion_length": 10.0, "active_share": active}


def test_each_metric_past_its_threshold_is_named_with_its_value_and_threshold():
    found = health.alarms(_step(entropy=0.01, kl=3.0), health.STEP_RULES, HealthConfig(), 2, step=7)
    assert [a.metric for a in found] == ["entropy", "kl_to_start"]
    assert found[1].describe() == "round 2 step 7: kl_to_start 3 is above distill.health.max_kl_to_start=1"
    assert found[0].describe().endswith("entropy 0.01 is below distill.health.min_entropy=0.05")
    assert health.alarms(_step(), health.STEP_RULES, HealthConfig(), 1) == []


def test_nan_values_and_unset_thresholds_are_never_judged():
    cfg = HealthConfig(max_kl_to_start=None)
    assert health.alarms(_step(entropy=math.nan, kl=99.0), health.STEP_RULES, cfg, 1) == []


def test_the_watch_warns_once_per_metric_and_stops_only_with_the_stop_rule(caplog):
    caplog.set_level(logging.WARNING, logger="sdfb.health")
    watch = health.HealthWatch(HealthConfig(), 1, "self_distillation")
    assert not watch.step(_step(kl=2.0), 1) and not watch.step(_step(kl=3.0), 2)
    assert len(watch.found) == 2 and len([r for r in caplog.records if "kl_to_start" in r.message]) == 1
    stopping = health.HealthWatch(HealthConfig(stop=True), 1, "self_distillation")
    assert not stopping.step(_step(), 1)
    assert stopping.step(_step(kl=2.0), 2) and stopping.stopped.step == 2


def test_the_control_objective_is_not_judged_on_its_by_design_silent_signal():
    silent = _step(active=0.0)
    assert [a.metric for a in health.HealthWatch(HealthConfig(), 1, "self_distillation").found] == []
    watch = health.HealthWatch(HealthConfig(), 1, "self_distillation")
    watch.step(silent, 1)
    control = health.HealthWatch(HealthConfig(), 1, "control")
    control.step(silent, 1)
    assert [a.metric for a in watch.found] == ["active_share"] and control.found == []


def _grades(format_ok, statuses):
    return pd.DataFrame({"format_ok": format_ok, "status": statuses})


def test_round_rates_come_from_the_grades_and_the_rollouts():
    grades = _grades([True, False, True, True], ["correct", "no_answer", "wrong", "unparseable"])
    rollouts = pd.DataFrame(
        {"completion_ids": [[1, 2, 3], [1, 2, 3, 4, 5]] * 2, "finish_reason": ["stop", "length"] * 2}
    )
    rates = health.round_rates(grades, rollouts)
    assert rates == {
        "format_rate": 0.75,
        "answer_rate": 0.75,
        "mean_completion_length": 4.0,
        "truncated_share": 0.5,
    }
    assert all(math.isnan(v) for v in health.round_rates(pd.DataFrame(), pd.DataFrame()).values())


def test_a_collapsed_format_rate_stops_a_trained_round_but_only_warns_on_the_base_models(caplog):
    caplog.set_level(logging.WARNING, logger="sdfb.health")
    grades, cfg = _grades([False, False, False, True], ["correct"] * 4), HealthConfig(stop=True)
    rates, found = health.check_round(grades, pd.DataFrame(), cfg, 1, trained=False)
    assert rates["format_rate"] == 0.25 and [a.metric for a in found] == ["format_rate"]
    assert "format_rate 0.25 is below distill.health.min_format_rate=0.5" in caplog.text
    with pytest.raises(health.HealthStop, match=r"round 2: format_rate 0.25 is below .*min_format_rate=0.5"):
        health.check_round(grades, pd.DataFrame(), cfg, 2, trained=True)


def test_bad_thresholds_are_refused_with_the_key_named():
    with pytest.raises(ConfigError, match=r"distill\.health\.min_format_rate"):
        build_config({}, ["distill.health.min_format_rate=1.5"])
    with pytest.raises(ConfigError, match=r"distill\.health\.max_kl: unknown key"):
        build_config({}, ["distill.health.max_kl=2"])
    assert build_config({}, ["distill.health.stop=true"]).distill.health.stop


def test_the_artifact_rows_and_summary_name_each_crossing():
    alarm = health.Alarm("entropy", 0.001, 0.05, "min_entropy", 1, 3)
    text = health.summary_markdown(1, {"format_rate": 0.8}, [alarm.record()], stopped=True)
    assert (
        "stopped by distill.health.stop" in text and "| step 3 | entropy | 0.001 | min_entropy=0.05 |" in text
    )
    rows = health.step_rows([{"step": 1, "loss": 0.5, **_step(entropy=math.nan)}])
    assert rows == [
        {"step": 1, "entropy": None, "kl_to_start": 0.1, "completion_length": 10.0, "active_share": 0.5}
    ]


# The tiny model on four samples, two per step, two epochs: four optimizer steps. Full fine-tuning at a
# learning rate of 1.0 collapses it (KL to the start in the tens of nats per token by step 2, entropy from
# 6.1 down to 0.06-0.11 nats by steps 3-4 on a CPU without AVX-512, to about 0 on one with it); 1e-4 keeps
# both where they started (KL under 0.1, entropy ~6.1 nats: the random model is near uniform). The tests set
# the entropy floor between the two, at 1 nat, so that neither verdict hangs on the host's float kernels
# (the default floor, 0.05, is for real models).
COLLAPSE, HEALTHY = 1.0, 1e-4
ENTROPY_FLOOR = {"min_entropy": 1.0}


def _round(tokenizer, model):
    """A round's rollouts, contexts and grades with the stored log-probs of `model` (the round's starting
    policy), all samples in format with an answer."""
    from sdfb.distill.teacher import student_logits
    from sdfb.losses import chunked_logprobs

    rollouts, contexts, grades = round_tables(tokenizer)
    examples = distill.build_examples(rollouts, contexts, tokenizer)
    with torch.no_grad():
        batch = distill.Collator(tokenizer.pad_token_id)(examples)
        logprobs = chunked_logprobs(student_logits(model, batch), batch["completion_ids"])
    rollouts = rollouts.assign(
        logprobs=[logprobs[i, : len(e.completion_ids)].tolist() for i, e in enumerate(examples)]
    )
    grades = grades.assign(format_ok=True, status=grades["correct"].map({True: "correct", False: "wrong"}))
    return rollouts, contexts, grades


def _train(tokenizer, tmp_path, name, learning_rate, previous=None, **health_settings):
    from sdfb.models import load_model

    cfg = DistillConfig(
        learning_rate=learning_rate,
        batch_size=2,
        epochs=2,
        finetune="full",
        health=HealthConfig(**health_settings),
    )
    start = load_model(str(previous) if previous else "tiny", "float32")
    tables = _round(tokenizer, start)
    checkpoint = tmp_path / "checkpoints" / name
    model = ModelConfig(name_or_path="tiny", dtype="float32")
    round_index = 2 if previous else 1
    return distill.run_round(
        model, cfg, "self_distillation", 0, round_index, *tables, previous=previous, checkpoint=checkpoint
    ), checkpoint


@pytest.mark.train
def test_a_round_at_a_normal_learning_rate_raises_no_warning(
    tiny_model_path, tiny_tokenizer, tmp_path, caplog
):
    caplog.set_level(logging.WARNING, logger="sdfb.health")
    result, _ = _train(tiny_tokenizer, tmp_path, "round_0001", HEALTHY, **ENTROPY_FLOOR)
    assert result.metrics["health_alarms"] == [] and "distill.health" not in caplog.text
    history = result.metrics["history"]
    assert [h["step"] for h in history] == [1, 2, 3, 4]
    assert all(math.isfinite(h[m]) for h in history for m in health.STEP_METRICS)
    assert history[0]["kl_to_start"] == pytest.approx(0.0, abs=1e-5)  # before any update: the starting policy
    assert result.metrics["format_rate"] == 1.0 and result.metrics["answer_rate"] == 1.0


@pytest.mark.train
def test_a_collapsing_round_is_warned_with_the_metric_named(
    tiny_model_path, tiny_tokenizer, tmp_path, caplog
):
    caplog.set_level(logging.WARNING, logger="sdfb.health")
    result, checkpoint = _train(tiny_tokenizer, tmp_path, "round_0001", COLLAPSE, **ENTROPY_FLOOR)
    crossed = {a["metric"] for a in result.metrics["health_alarms"]}
    assert {"kl_to_start", "entropy"} <= crossed
    assert "kl_to_start" in caplog.text and "above distill.health.max_kl_to_start=1" in caplog.text
    assert result.metrics["steps"] == 4 and (checkpoint / "model.safetensors").exists()  # warned, not stopped


@pytest.mark.train
def test_the_stop_rule_ends_a_collapsing_round_and_leaves_the_earlier_round_intact(
    tiny_model_path, tiny_tokenizer, tmp_path
):
    _, first = _train(tiny_tokenizer, tmp_path, "round_0001", HEALTHY)
    before = {p.name: p.read_bytes() for p in first.iterdir() if p.is_file()}
    with pytest.raises(health.HealthStop, match=r"round 2 step 2: kl_to_start \d+(\.\d+)? is above") as info:
        _train(tiny_tokenizer, tmp_path, "round_0002", COLLAPSE, previous=first, stop=True)
    assert info.value.alarm.metric == "kl_to_start" and [h["step"] for h in info.value.history] == [1, 2]
    assert {p.name: p.read_bytes() for p in first.iterdir() if p.is_file()} == before
    assert not (tmp_path / "checkpoints" / "round_0002").exists()  # the stopped round saved no weights


def test_engine_scored_examples_keep_their_health_record(tiny_model_path, tiny_tokenizer):
    """The engine-teacher path also records entropy (it runs only the student forward)."""
    from sdfb.distill.trainer import distillation_loss

    rollouts, contexts, _ = round_tables(tiny_tokenizer)
    examples = distill.build_examples(rollouts, contexts, tiny_tokenizer)
    examples = [dataclasses.replace(e, teacher_logprobs=[0.0] * len(e.completion_ids)) for e in examples]
    batch = distill.Collator(tiny_tokenizer.pad_token_id)(examples[:2])
    model = distill.prepare_model("tiny", "float32", DistillConfig(finetune="full"), None)
    entropy = distillation_loss(model, batch, DistillConfig(teacher_source="engine"), None)[-1]
    assert entropy.shape == batch["completion_ids"].shape and float(entropy.max()) <= math.log(512) + 1e-4


@pytest.mark.flow
def test_the_distill_task_layer_publishes_a_rounds_health_as_artifacts(prefect_server):
    from prefect import flow, task
    from prefect.artifacts import Artifact

    from tasks._health import publish_health

    cfg = build_config({}, ["name=sdfb-health"])
    alarm = health.Alarm("kl_to_start", 84.0, 1.0, "max_kl_to_start", 2, 2).record()
    metrics = {"history": [{"step": 1, **_step()}, {"step": 2, **_step(kl=84.0)}], "health_alarms": [alarm]}

    @task
    def publish() -> None:
        publish_health(cfg, 2, metrics, stopped=True)

    @flow
    def run() -> None:
        publish()

    publish_health(cfg, 2, metrics)  # outside a task run: nothing, and no error
    run()
    summary = Artifact.get("sdfb-health-step-aligned-seed0-round2-health")
    assert (
        "stopped by distill.health.stop" in summary.data and "| step 2 | kl_to_start | 84 |" in summary.data
    )
    steps = Artifact.get("sdfb-health-step-aligned-seed0-round2-health-steps")
    assert "84.0" in steps.data
