"""Rollout throughput on one set of prompts: (a) sdfb's vLLM rollout stage, (b) a bare `vllm.LLM.generate` on the
same engine and token ids, (c) sdfb's HF backend at its best batch size. Same model, prompts and sampling.

    python benchmarks/rollouts.py                      # SmolLM2-135M, 128 arithmetic prompts, 128 new tokens
    python benchmarks/rollouts.py --hf-batch-sizes 32,64,128 --repeats 3
    python benchmarks/rollouts.py --dtype bfloat16       # both backends in bf16

Tokens/s counts the completion tokens actually generated. (a) and (b) use identical sampling parameters and seed
(with the sampled token's log-prob, which rollouts keep), so they generate the same tokens. The last line is
`wrapper_ratio=<a/b> vllm_vs_hf=<a/c> vllm_tok_s=<a>`.
"""

from __future__ import annotations

import argparse
import time


def main(args: argparse.Namespace) -> dict[str, float]:
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    from sdfb.config import ArithmeticConfig, SamplingConfig, VLLMConfig
    from sdfb.generation import HFGenerator
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

    started = time.perf_counter()
    engine = VLLMGenerator(args.model, args.dtype, VLLMConfig(max_model_len=1024, max_lora_rank=16))
    start_s = time.perf_counter() - started
    engine.generate(["warm-up"], SamplingConfig(max_new_tokens=4))

    prompts = [render_student_prompt(engine.tokenizer, template, q) for q in problems["question"]]
    token_prompts = [
        TokensPrompt(prompt_token_ids=engine.tokenizer(p, add_special_tokens=False)["input_ids"])
        for p in prompts
    ]
    params = SamplingParams(
        n=1, temperature=sampling.temperature, top_p=sampling.top_p, top_k=sampling.top_k,
        max_tokens=sampling.max_new_tokens, seed=sampling.seed, logprobs=0, skip_special_tokens=True,
    )  # fmt: skip

    def bare() -> float:
        t = time.perf_counter()
        outputs = engine.llm.generate(token_prompts, params, use_tqdm=False)
        return sum(len(o.outputs[0].token_ids) for o in outputs) / (time.perf_counter() - t)

    def stage(generator) -> float:
        t = time.perf_counter()
        table = sample_rollouts(problems, generator, template, sampling, "base")
        return int(table["completion_ids"].map(len).sum()) / (time.perf_counter() - t)

    a_runs, b_runs = [], []
    for _ in range(args.repeats):  # interleaved so drift in machine load hits both alike
        b_runs.append(bare())
        a_runs.append(stage(engine))
    a, b = max(a_runs), max(b_runs)
    engine.close()

    hf_runs = {}
    for batch_size in (int(x) for x in args.hf_batch_sizes.split(",")):
        hf_runs[batch_size] = stage(HFGenerator(args.model, dtype=args.dtype, batch_size=batch_size))
    best_batch = max(hf_runs, key=hf_runs.get)
    c = hf_runs[best_batch]

    print(
        f"model {args.model} ({args.dtype}), {args.prompts} prompts, {args.max_new_tokens} new tokens, sampling {sampling}"
    )
    print(f"vLLM engine start: {start_s:.1f} s")
    print(f"(a) sdfb vLLM rollout stage: {a:.0f} tok/s (runs: {', '.join(f'{x:.0f}' for x in a_runs)})")
    print(f"(b) bare vllm.LLM.generate: {b:.0f} tok/s (runs: {', '.join(f'{x:.0f}' for x in b_runs)})")
    print(
        f"(c) sdfb HF backend: {c:.0f} tok/s at batch {best_batch} ({', '.join(f'batch {k}: {v:.0f}' for k, v in hf_runs.items())})"
    )
    result = {"wrapper_ratio": a / b, "vllm_vs_hf": a / c, "vllm_tok_s": a}
    print(" ".join(f"{k}={v:.3f}" if k != "vllm_tok_s" else f"{k}={v:.0f}" for k, v in result.items()))
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument(
        "--dtype", default="float32", choices=["auto", "float32", "bfloat16"], help="both backends"
    )
    parser.add_argument("--prompts", type=int, default=128)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--hf-batch-sizes", default="64,128")
    main(parser.parse_args())
