"""Distillation step throughput on one batch set: trained tokens/s of sdfb's self-distillation step with
the teacher inside training (teacher forward + student forward/backward + optimizer) and with the
engine-scored teacher (its log-probs precomputed: student forward/backward + optimizer), against a bare
student forward/backward + optimizer on the same tokens; the time the engine takes to score the teacher per
trained token; padding waste with length bucketing, and peak memory.

    python benchmarks/distill.py                           # tiny model, 64 samples, CPU
    python benchmarks/distill.py --model smollm2-135m --samples 32
    python benchmarks/distill.py --dtype bfloat16           # on a GPU: the same in bf16
    python benchmarks/distill.py --finetune full            # all weights trained (backward ~2x forward)

Each variant runs `--steps` passes over the batches after one warm-up step; the variants alternate
`--repeats` times so drift in machine load hits both alike. Each variant runs in its own process, so its
peak memory is that process's own: the peak resident set on CPU, torch's peak allocation on GPU. The
teacher is scored by vLLM when it is installed (else HF teacher forcing), in the engine's default dtype.
The last line is `throughput_ratio=<trainer teacher / bare> engine_teacher_ratio=<engine teacher / bare>
padding_waste=<y> peak_mem_ratio=<z>`.
"""

from __future__ import annotations

import argparse
import random
import time


def make_examples(tokenizer, n: int, seed: int, engine_teacher: bool = False) -> list:
    """Student/teacher sequences of realistic, varied lengths: prompts of the v1 template, context and
    completion lengths drawn at random (token values do not change the compute)."""
    from sdfb.distill import Example
    from sdfb.prompts import load_template, render_student_prompt

    rng = random.Random(seed)
    prompt = tokenizer(
        render_student_prompt(tokenizer, load_template("v1"), "Tom has 4 coins. He finds 3 more."),
        add_special_tokens=False,
    )["input_ids"]
    examples = []
    for i in range(n):
        completion = [rng.randrange(100, 400) for _ in range(rng.randint(20, 120))]
        context = [rng.randrange(100, 400) for _ in range(rng.randint(30, 150))]
        examples.append(
            Example(
                index=i,
                problem_id=f"p{i}",
                sample_index=0,
                completion_ids=completion,
                student_ids=prompt + completion,
                teacher_ids=prompt + context + completion,
                student_prompt_len=len(prompt),
                teacher_prompt_len=len(prompt) + len(context),
                rollout_logprobs=[0.0] * len(completion),
                advantage=0.0,
                teacher_logprobs=[-rng.random() for _ in completion] if engine_teacher else None,
            )
        )
    return examples


def main(args: argparse.Namespace) -> dict[str, float]:
    import torch

    from sdfb import distill
    from sdfb.config import DistillConfig, LoraConfig
    from sdfb.distill.trainer import distillation_loss
    from sdfb.losses import completion_logits, masked_mean, per_token_loss, token_logprobs
    from sdfb.models import load_tokenizer

    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    tokenizer = load_tokenizer(args.model)
    cfg = DistillConfig(
        learning_rate=1e-4,
        batch_size=args.batch_size,
        lora=LoraConfig(r=16, alpha=32),
        finetune=args.finetune,
    )
    engine_teacher = args.only == "engine"
    examples = make_examples(tokenizer, args.samples, 0, engine_teacher)
    examples = distill.bucket_by_length(examples, args.batch_size, seed=0)
    collate = distill.Collator(tokenizer.pad_token_id)
    batches = [
        {k: v.to(device) for k, v in collate(examples[i : i + args.batch_size]).items()}
        for i in range(0, len(examples), args.batch_size)
    ]
    model = distill.prepare_model(args.model, args.dtype, cfg, None).to(device)
    model.train()
    teacher = distill.TeacherState(model, "base", args.finetune, 0.05)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.learning_rate)

    def distill_step(batch):
        student, t = distill.student_and_teacher_logits(model, batch, teacher)
        loss = masked_mean(
            per_token_loss(student, t, batch["completion_ids"], "sampled_token", 1.0),
            batch["completion_mask"],
        )
        loss.backward()

    def engine_step(batch):  # the teacher's log-probs come with the batch: no teacher forward
        per_token = distillation_loss(model, batch, cfg, teacher)[0]
        masked_mean(per_token, batch["completion_mask"]).backward()

    def bare_step(batch):
        width = batch["completion_ids"].shape[1]
        logits = model(
            input_ids=batch["student_input_ids"],
            attention_mask=batch["student_attention_mask"],
            position_ids=batch["student_position_ids"],
        ).logits
        logp = token_logprobs(
            completion_logits(logits, batch["student_prompt_lens"], width), batch["completion_ids"]
        )
        (-masked_mean(logp, batch["completion_mask"])).backward()

    def run(step) -> tuple[float, int]:
        tokens, started = 0, time.perf_counter()
        for _ in range(args.steps):
            for batch in batches:
                step(batch)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                tokens += int(batch["completion_mask"].sum())
        if cuda:
            torch.cuda.synchronize()
        return tokens / (time.perf_counter() - started), tokens

    step = {"distill": distill_step, "engine": engine_step, "bare": bare_step}[args.only]
    step(batches[0])  # warm-up
    optimizer.zero_grad(set_to_none=True)
    tok_s = run(step)[0]
    if cuda:
        peak = torch.cuda.max_memory_allocated()
    else:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(
        f"RESULT tok_s={tok_s} peak={peak} waste={distill.padding_waste(examples, args.batch_size)} "
        f"shuffled_waste={distill.padding_waste(make_examples(tokenizer, args.samples, 0), args.batch_size)}"
    )
    return {}


def compare(args: argparse.Namespace) -> dict[str, float]:
    """Run each variant in a fresh process, alternating, and compare."""
    import subprocess
    import sys

    runs: dict[str, list[dict]] = {"distill": [], "engine": [], "bare": []}
    for _ in range(args.repeats):
        for variant in runs:
            cmd = [sys.executable, __file__, "--only", variant, *sys.argv[1:]]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            line = next(x for x in out.splitlines() if x.startswith("RESULT "))
            runs[variant].append({k: float(v) for k, v in (kv.split("=") for kv in line.split()[1:])})
    best = {v: max(r["tok_s"] for r in rs) for v, rs in runs.items()}
    peak = {v: max(r["peak"] for r in rs) for v, rs in runs.items()}
    waste, shuffled = runs["distill"][0]["waste"], runs["distill"][0]["shuffled_waste"]
    print(
        f"model {args.model} ({args.dtype}, {args.finetune}), {args.samples} samples, batch "
        f"{args.batch_size}, {args.steps} passes per run"
    )
    scoring, engine_name = teacher_scoring_seconds_per_token(args)
    labels = (
        ("distill", "distillation step, teacher in training"),
        ("engine", "distillation step, engine teacher"),
        ("bare", "bare student fwd+bwd"),
    )
    for v, label in labels:
        each = ", ".join(f"{r['tok_s']:.0f}" for r in runs[v])
        print(f"{label}: {best[v]:.0f} trained tok/s (runs {each}), peak {peak[v] / 2**20:.0f} MiB")
    print(f"padding waste with length bucketing: {waste:.3f} (shuffled order: {shuffled:.3f})")
    print(
        f"teacher scored by {engine_name}: {1000 * scoring:.2f} s per 1000 trained tokens "
        f"(training with it: {1000 / best['engine']:.2f} s per 1000)"
    )
    result = {
        "throughput_ratio": best["distill"] / best["bare"],
        "engine_teacher_ratio": best["engine"] / best["bare"],
        "padding_waste": waste,
        "peak_mem_ratio": peak["distill"] / peak["bare"],
    }
    print(" ".join(f"{k}={v:.3f}" for k, v in result.items()))
    return result


def teacher_scoring_seconds_per_token(args: argparse.Namespace) -> tuple[float, str]:
    """Seconds the engine takes per trained token to score the teacher over the benchmark's examples."""
    from sdfb.config import VLLMConfig
    from sdfb.generation import HFGenerator
    from sdfb.generation.devices import generation_dtype, vllm_available
    from sdfb.generation.engines import adapters_per_request
    from sdfb.models import load_tokenizer

    examples = make_examples(load_tokenizer(args.model), args.samples, 0)
    sequences, starts = [e.teacher_ids for e in examples], [e.teacher_prompt_len for e in examples]
    tokens = sum(len(e.completion_ids) for e in examples)

    def timed(engine) -> float:
        engine.prompt_logprobs(sequences[:2], starts[:2])  # warm-up
        started = time.perf_counter()
        engine.prompt_logprobs(sequences, starts)
        return (time.perf_counter() - started) / tokens

    if vllm_available():
        from sdfb.generation.vllm_backend import VLLMGenerator

        settings = VLLMConfig(max_model_len=1024, max_lora_rank=16)  # LoRA layers as the stage starts it here
        engine = VLLMGenerator(args.model, "auto", settings, lora=adapters_per_request(settings))
        try:
            return timed(engine), f"vLLM ({generation_dtype('auto')})"
        except Exception as exc:  # a benchmark reports what failed and measures the fallback
            print(
                f"vLLM prompt log-probs failed ({type(exc).__name__}: "
                f"{str(exc)[:200]}); scoring with HF instead"
            )
        finally:
            engine.close()
    engine = HFGenerator(args.model, args.dtype, batch_size=args.batch_size)
    return timed(engine), f"HF ({args.dtype})"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--finetune", default="lora", choices=["lora", "full"])
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=2, help="passes over the batch set per timed run")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--only", choices=["distill", "engine", "bare"], help=argparse.SUPPRESS)
    parsed = parser.parse_args()
    main(parsed) if parsed.only else compare(parsed)
