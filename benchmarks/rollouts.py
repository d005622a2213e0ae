"""Rollout throughput on one set of prompts: (a) sdfb's vLLM rollout stage in the engine's default dtype
(bf16 on GPUs and on CPUs with bf16 instructions), (b) a bare `vllm.LLM.generate` on the same engine and
token ids, (d) the same stage on an fp32 engine, (e) the same stage on an engine started the other way
round for LoRA (with vLLM's LoRA layers where (a) has none, i.e. where adapters are merged, the CPU
default; without them where adapters are applied per request), (c) sdfb's HF backend (fp32) at its best
batch size. Same model, prompts, sampling.

    python benchmarks/rollouts.py                      # SmolLM2-135M, 128 arithmetic prompts, 128 new tokens
    python benchmarks/rollouts.py --hf-batch-sizes 32,64,128 --repeats 3

Tokens/s counts the completion tokens actually generated. (a) and (b) use identical sampling parameters and
seed (with the sampled token's log-prob, which rollouts keep), so they generate the same tokens. The
log-prob gap is the stored (engine-dtype) log-prob of each sampled token against a teacher-forced fp32 HF
forward over the same ids. The last line is `wrapper_ratio=<a/b> vllm_vs_hf=<a/c> vllm_tok_s=<a>
bf16_vs_fp32=<a/d> logprob_gap=<mean> lora_off_vs_on=<without LoRA layers / with>`.
"""

from __future__ import annotations

import argparse
import time


def main(args: argparse.Namespace) -> dict[str, float]:
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    from sdfb.config import ArithmeticConfig, SamplingConfig, VLLMConfig
    from sdfb.generation import HFGenerator
    from sdfb.generation.engines import adapters_per_request
    from sdfb.generation.vllm_backend import VLLMGenerator
    from sdfb.problems import generate_problems
    from sdfb.prompts import load_template, render_student_prompt
    from sdfb.rollouts import sample_rollouts

    problems = generate_problems(
        args.prompts, seed=0, cfg=ArithmeticConfig(min_steps=2, max_steps=3, max_value=20)
    )
    template = load_template("v1")
    sampling = SamplingConfig(
        temperature=1.1, top_p=0.95, top_k=20, max_new_tokens=args.max_new_tokens, seed=0
    )

    from sdfb.generation.devices import generation_dtype

    dtype = generation_dtype(args.dtype)
    started = time.perf_counter()
    settings = VLLMConfig(max_model_len=1024, max_lora_rank=16)
    lora = adapters_per_request(settings)  # as the rollout stage starts it on this machine
    engine = VLLMGenerator(args.model, dtype, settings, lora=lora)
    start_s = time.perf_counter() - started
    engine.generate(["warm-up"], SamplingConfig(max_new_tokens=4))

    prompts = [render_student_prompt(engine.tokenizer, template, q) for q in problems["question"]]
    token_prompts = [
        TokensPrompt(prompt_token_ids=engine.tokenizer(p, add_special_tokens=False)["input_ids"])
        for p in prompts
    ]
    params = SamplingParams(
        n=1,
        temperature=sampling.temperature,
        top_p=sampling.top_p,
        top_k=sampling.top_k,
        max_tokens=sampling.max_new_tokens,
        seed=sampling.seed,
        logprobs=0,
        skip_special_tokens=True,
    )

    def bare() -> float:
        t = time.perf_counter()
        outputs = engine.llm.generate(token_prompts, params, use_tqdm=False)
        return sum(len(o.outputs[0].token_ids) for o in outputs) / (time.perf_counter() - t)

    tables = []

    def stage(generator) -> float:
        t = time.perf_counter()
        tables.append(sample_rollouts(problems, generator, template, sampling, "base"))
        return int(tables[-1]["completion_ids"].map(len).sum()) / (time.perf_counter() - t)

    a_runs, b_runs = [], []
    for _ in range(args.repeats):  # interleaved so drift in machine load hits both alike
        b_runs.append(bare())
        a_runs.append(stage(engine))
    a, b = max(a_runs), max(b_runs)
    engine.close()
    sampled = tables[0]
    other = VLLMGenerator(args.model, dtype, settings, seed=1, lora=not lora)  # LoRA layers the other way
    other.generate(["warm-up"], SamplingConfig(max_new_tokens=4))
    e = max(stage(other) for _ in range(args.repeats))
    other.close()
    fp32 = VLLMGenerator(args.model, "float32", settings, seed=1, lora=lora)
    fp32.generate(["warm-up"], SamplingConfig(max_new_tokens=4))
    d = max(stage(fp32) for _ in range(args.repeats))
    fp32.close()
    gap_mean, gap_p99 = logprob_gap(args.model, sampled.head(32))

    hf_runs = {}
    for batch_size in (int(x) for x in args.hf_batch_sizes.split(",")):
        hf_runs[batch_size] = stage(HFGenerator(args.model, dtype="float32", batch_size=batch_size))
    best_batch = max(hf_runs, key=hf_runs.get)
    c = hf_runs[best_batch]

    print(
        f"model {args.model} ({args.dtype}), {args.prompts} prompts, "
        f"{args.max_new_tokens} new tokens, sampling {sampling}"
    )
    print(f"vLLM engine start: {start_s:.1f} s")
    print(f"(a) sdfb vLLM rollout stage: {a:.0f} tok/s (runs: {', '.join(f'{x:.0f}' for x in a_runs)})")
    print(f"(b) bare vllm.LLM.generate: {b:.0f} tok/s (runs: {', '.join(f'{x:.0f}' for x in b_runs)})")
    print(
        f"(c) sdfb HF backend: {c:.0f} tok/s at batch {best_batch} "
        f"({', '.join(f'batch {k}: {v:.0f}' for k, v in hf_runs.items())})"
    )
    print(f"(d) sdfb vLLM rollout stage, fp32 engine: {d:.0f} tok/s; engine dtype in (a): {dtype}")
    print(
        f"(e) sdfb vLLM rollout stage, engine {'without' if lora else 'with'} LoRA layers: {e:.0f} "
        f"tok/s; (a) {'with' if lora else 'without'} (adapters "
        f"{'per request' if lora else 'merged'} on this machine)"
    )
    print(
        f"log-prob gap, engine ({dtype}) vs fp32 forward: mean "
        f"{gap_mean:.4f}, p99 {gap_p99:.4f} nats per token"
    )
    result = {
        "wrapper_ratio": a / b,
        "vllm_vs_hf": a / c,
        "vllm_tok_s": a,
        "bf16_vs_fp32": a / d,
        "logprob_gap": gap_mean,
        "lora_off_vs_on": (e / a) if lora else (a / e),
    }
    print(
        " ".join(
            f"{k}={v:.0f}" if k == "vllm_tok_s" else f"{k}={v:.4f}" if k == "logprob_gap" else f"{k}={v:.3f}"
            for k, v in result.items()
        )
    )
    return result


def logprob_gap(model_name: str, table) -> tuple[float, float]:
    """|stored log-prob - fp32 teacher-forced log-prob| over every sampled token of `table`: mean and 99th
    percentile."""
    import torch

    from sdfb.models import load_model

    model, gaps = load_model(model_name, "float32").eval(), []
    for row in table.itertuples():
        ids = torch.tensor([list(row.prompt_ids) + list(row.completion_ids)])
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0, len(row.prompt_ids) - 1 : -1]
        want = torch.log_softmax(logits, -1).gather(-1, torch.tensor(list(row.completion_ids))[:, None])[:, 0]
        gaps.append((torch.tensor(list(row.logprobs)) - want).abs())
    every = torch.cat(gaps)
    return float(every.mean()), float(torch.quantile(every, 0.99))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument(
        "--dtype", default="auto", choices=["auto", "float32", "bfloat16"], help="the engine of (a) and (b)"
    )
    parser.add_argument("--prompts", type=int, default=128)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--hf-batch-sizes", default="64,128")
    main(parser.parse_args())
