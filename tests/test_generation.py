"""The HF generation backend: exact sampled ids, their log-probs, finish reasons, seeding, and adapters."""

import pandas as pd
import pytest
import torch

from sdfb.config import SamplingConfig
from sdfb.generation import HFGenerator
from sdfb.prompts import load_template
from sdfb.rollouts import sample_rollouts


@pytest.fixture(scope="module")
def generator(tiny_model_path):
    return HFGenerator("tiny", dtype="float32", batch_size=3)


PROMPTS = ["Tom has 3 apples.", "Anna has 12 marbles and finds 4 more.", "Hi"]


def test_stored_log_probs_equal_a_teacher_forced_forward_of_the_sampled_ids(generator):
    sampling = SamplingConfig(temperature=1.0, top_p=1.0, top_k=0, max_new_tokens=12, n=2, seed=3)
    generations = generator.generate(PROMPTS, sampling)
    assert [len(g.completions) for g in generations] == [2, 2, 2]
    for gen in generations:
        for completion in gen.completions:
            ids = torch.tensor([gen.prompt_ids + completion.token_ids])
            with torch.no_grad():
                logits = generator.model(input_ids=ids).logits[0, len(gen.prompt_ids) - 1 : -1]
            expected = torch.log_softmax(logits, -1).gather(-1, torch.tensor(completion.token_ids)[:, None])[
                :, 0
            ]
            # left padding inside the batch changes float summation order slightly
            assert torch.allclose(torch.tensor(completion.logprobs), expected, atol=1e-4)


def test_completions_stop_at_the_end_token_or_are_marked_length(generator):
    sampling = SamplingConfig(temperature=1.0, top_p=1.0, top_k=0, max_new_tokens=6, n=4, seed=0)
    eos = generator.tokenizer.eos_token_id
    for gen in generator.generate(PROMPTS, sampling):
        for c in gen.completions:
            if c.finish_reason == "stop":
                assert c.token_ids[-1] == eos and eos not in c.token_ids[:-1]
            else:
                assert c.finish_reason == "length" and len(c.token_ids) == 6 and eos not in c.token_ids


def test_a_seeded_run_repeats_and_another_seed_differs(generator):
    first = generator.generate(
        PROMPTS, SamplingConfig(temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=10, seed=7)
    )
    again = generator.generate(
        PROMPTS, SamplingConfig(temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=10, seed=7)
    )
    other = generator.generate(
        PROMPTS, SamplingConfig(temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=10, seed=8)
    )
    ids = lambda gens: [c.token_ids for g in gens for c in g.completions]  # noqa: E731
    assert ids(first) == ids(again)
    assert ids(first) != ids(other)


def test_greedy_batched_generation_matches_one_prompt_at_a_time(generator):
    greedy = SamplingConfig(temperature=0.0, max_new_tokens=8)
    batched = generator.generate(PROMPTS, greedy)
    single = [generator.generate([p], greedy)[0] for p in PROMPTS]
    assert [g.completions[0].token_ids for g in batched] == [g.completions[0].token_ids for g in single]


def test_rollout_rows_keep_prompt_and_completion_ids(generator):
    problems = pd.DataFrame({"problem_id": ["a", "b"], "question": ["Tom has 3 apples.", "Mia has 2 cards."]})
    table = sample_rollouts(
        problems, generator, load_template("v1"), SamplingConfig(max_new_tokens=5, n=2), "base"
    )
    assert len(table) == 4 and set(table["sample_index"]) == {0, 1}
    row = table.iloc[0]
    assert generator.tokenizer(row.prompt_text, add_special_tokens=False)["input_ids"] == row.prompt_ids
    assert len(row.completion_ids) == len(row.logprobs) and row.policy_version == "base"


class _StandInEngine:
    """Records what the registry asks of an engine. A real vLLM start takes 11-40 s and
    needs vllm installed, and this checks only the registry's bookkeeping;
    tests/test_vllm.py gets its real engine from the registry."""

    def __init__(
        self, model_name, dtype, cfg, seed=0, section="rollout.vllm", trust_remote_code=False, lora=True
    ):
        self.settings = (model_name, dtype, cfg, seed, section)
        self.lora = lora
        self.adapter = None
        self.events = []

    def set_adapter(self, adapter):
        self.adapter = adapter

    def sleep(self):
        self.events.append("sleep")

    def close(self):
        self.events.append("close")


@pytest.fixture
def stand_in_engines(monkeypatch):
    from sdfb.generation import engines

    monkeypatch.setattr(engines, "VLLMGenerator", _StandInEngine)
    monkeypatch.setattr(engines, "_ENGINES", {})  # apart from any real engine another test left running


def test_the_registry_starts_one_engine_per_settings_and_release_empties_it(stand_in_engines):
    from sdfb.config import VLLMConfig
    from sdfb.generation import live_engines, release_engines, sleep_engines, vllm_engine

    first = vllm_engine("tiny", "float32", VLLMConfig(max_model_len=256), seed=0)
    again = vllm_engine(
        "tiny", "float32", VLLMConfig(max_model_len=256), seed=0
    )  # equal settings, new objects
    critic = vllm_engine("tiny", "float32", VLLMConfig(max_model_len=512), seed=0, section="critic.vllm")
    assert again is first and critic is not first
    assert critic.settings[-1] == "critic.vllm"
    assert live_engines() == 2
    sleep_engines()
    release_engines()
    assert live_engines() == 0
    assert first.events == ["sleep", "close"] and critic.events == ["sleep", "close"]


def test_make_generator_on_vllm_reuses_the_registry_engine_with_the_asked_adapter(stand_in_engines):
    from sdfb.config import ModelConfig, VLLMConfig
    from sdfb.generation import live_engines, make_generator

    model = ModelConfig(name_or_path="tiny", dtype="float32")
    per_request = VLLMConfig(merge_adapters=False)  # the adapter applied per request (the GPU default)
    base = make_generator(model, "vllm", per_request, 0, None, 4)
    tuned = make_generator(model, "vllm", per_request, 0, "run/round_0001", 4)
    assert tuned is base and live_engines() == 1
    assert base.adapter == "run/round_0001" and base.lora  # started with LoRA, since requests carry adapters
    merging = make_generator(model, "vllm", VLLMConfig(merge_adapters=True), 0, None, 4)
    assert merging is not base and not merging.lora  # no request will carry an adapter: no LoRA layers


def test_an_engine_without_lora_is_started_without_it_and_refuses_an_adapter(tiny_model_path):
    """The settings vLLM gets: LoRA only where requests carry adapters
    (vLLM's LoRA layers run on every token)."""
    from sdfb.config import VLLMConfig
    from sdfb.generation.vllm_backend import VLLMGenerator, engine_settings

    with_lora = engine_settings("tiny", "float32", VLLMConfig(max_lora_rank=8), 0)
    without = engine_settings("tiny", "float32", VLLMConfig(max_lora_rank=8), 0, lora=False)
    assert (with_lora["enable_lora"], with_lora["max_lora_rank"]) == (True, 8)
    assert without["enable_lora"] is False and "max_lora_rank" not in without
    engine = VLLMGenerator.__new__(VLLMGenerator)  # the adapter check runs before any engine call
    engine.lora, engine._adapter = False, None
    engine.set_adapter(None)
    with pytest.raises(ValueError, match="started without LoRA; cannot apply run/round_0001"):
        engine.set_adapter("run/round_0001")
