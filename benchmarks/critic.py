"""Critic throughput against a local vLLM OpenAI-compatible server, and the critique cache on a rerun.

    python benchmarks/critic.py                          # SmolLM2-135M critic, 32 attempts, 128 new tokens
    python benchmarks/critic.py --attempts 64 --max-tokens 256 --concurrency 8

The server is started here (`sdfb.critic.serve.vllm_server`, prefix caching on, as in the paper). The
attempts are arithmetic solutions in the solver's step format, half of them wrong at one step. Three
passes over the same attempts, all with the cache off, go through sdfb's `openai` critic backend: a
warm-up at the high concurrency (so both measured passes find the same prompts in vLLM's prefix cache),
then concurrency 1, then the high concurrency. Then the critique stage itself (`critique_rollouts`:
critic, alignment checks, answer grading) runs twice with the cache on, into an empty cache folder: the
first run asks the critic, the rerun must not.

The last line is `concurrency_speedup=<c8/c1 critiques per s>
rerun_calls=<n> rerun_time_share=<rerun/first>`.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def attempts_table(n: int, tokenizer):
    """Problems and step-format attempts; every second attempt has its last step's result off by one."""
    import pandas as pd

    from sdfb.config import ArithmeticConfig
    from sdfb.problems import generate_problems

    problems = generate_problems(n, seed=0, cfg=ArithmeticConfig(min_steps=2, max_steps=3, max_value=20))
    texts, correct = [], []
    for i, row in enumerate(problems.itertuples()):
        steps = list(row.steps)
        wrong = i % 2 == 1
        if wrong:
            left, result = steps[-1].rsplit("=", 1)
            steps[-1] = f"{left}= {int(result) + 1}"
        answer = steps[-1].rsplit("=", 1)[1].strip()
        texts.append("\n".join([*(f"Step {k}: {s}" for k, s in enumerate(steps, 1)), f"Answer: {answer}"]))
        correct.append(not wrong)
    rollouts = pd.DataFrame(
        {
            "problem_id": problems["problem_id"],
            "sample_index": 0,
            "completion_text": texts,
            "finish_reason": "stop",
            "completion_ids": [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts],
        }
    )
    grades = pd.DataFrame({"problem_id": problems["problem_id"], "sample_index": 0, "correct": correct})
    return rollouts, problems, grades


def critic_config(args, base_url: str, concurrency: int, cache_dir: Path | None):
    from sdfb.config import CriticConfig, CriticDecoding, OpenAIEndpointConfig

    return CriticConfig(
        kind="openai",
        model=args.model,
        decoding=CriticDecoding(max_tokens=args.max_tokens),
        openai=OpenAIEndpointConfig(base_url=base_url, concurrency=concurrency),
        cache=cache_dir is not None,
        cache_dir=str(cache_dir) if cache_dir else None,
    )


def pass_over(args, base_url, concurrency, tables) -> dict[str, float]:
    """One pass of the critic alone (no checks, no grading) with the cache off."""
    from sdfb.critic import make_critic
    from sdfb.critic.table import critique_requests

    rollouts, problems, _ = tables
    requests = critique_requests(rollouts, problems)
    critic = make_critic(critic_config(args, base_url, concurrency, None))
    started = time.perf_counter()
    critiques = critic.critique(requests)
    wall = time.perf_counter() - started
    stats = critic.stats()
    failed = sum(c.status == "failed" for c in critiques)
    assert not failed, f"{failed} critic requests failed: {stats}"
    return {"wall": wall, "per_s": len(requests) / wall, "statuses": [c.status for c in critiques], **stats}


def main(args: argparse.Namespace) -> dict[str, float]:
    from collections import Counter

    from sdfb.config import GradingConfig
    from sdfb.critic import critique_rollouts, make_critic
    from sdfb.critic.serve import vllm_server
    from sdfb.models import load_tokenizer

    tables = attempts_table(args.attempts, load_tokenizer(args.model))
    started = time.perf_counter()
    with vllm_server(args.model, served_name=args.model, max_model_len=args.max_model_len) as base_url:
        print(f"server start: {time.perf_counter() - started:.1f}s at {base_url}")
        pass_over(args, base_url, args.concurrency, tables)  # warm-up: fills the prefix cache for both passes
        runs = {c: pass_over(args, base_url, c, tables) for c in (1, args.concurrency)}
        for c, r in runs.items():
            print(
                f"concurrency {c}: {r['wall']:.1f}s wall, {r['per_s']:.2f} critiques/s, "
                f"mean request {r['backend_mean_request_seconds']:.2f}s, "
                f"{r['backend_completion_tokens'] / r['wall']:.0f} completion tokens/s "
                f"({r['backend_completion_tokens']} tokens), statuses {dict(Counter(r['statuses']))}"
            )
        speedup = runs[args.concurrency]["per_s"] / runs[1]["per_s"]

        with tempfile.TemporaryDirectory() as cache_dir:
            stage = {}
            for label in ("first", "rerun"):
                critic = make_critic(critic_config(args, base_url, args.concurrency, Path(cache_dir)))
                t0 = time.perf_counter()
                critique_rollouts(*tables, critic, GradingConfig())
                stage[label] = {"seconds": time.perf_counter() - t0, **critic.stats()}
                print(
                    f"stage {label}: {stage[label]['seconds']:.2f}s, critic calls {stage[label]['calls']}, "
                    f"cache hits {stage[label]['cache_hits']}, in critic requests "
                    f"{stage[label].get('backend_seconds', 0.0):.2f}s"
                )
    share = stage["rerun"]["seconds"] / stage["first"]["seconds"]
    result = {
        "concurrency_speedup": speedup,
        "rerun_calls": stage["rerun"]["calls"],
        "rerun_time_share": share,
    }
    print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in result.items()))
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--attempts", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--max-model-len", type=int, default=2048)
    parser.add_argument("--concurrency", type=int, default=8)
    main(parser.parse_args())
