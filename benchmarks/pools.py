"""How long a stage takes to draw problems from a large file: the eval split and one round from a generated
pool in GSM8K's own JSONL format (`question`, `answer` ending in `#### n`), against reading and parsing
every gold answer of the pool (`load_pools`, what every round did before pools parsed only what they draw).

    python benchmarks/pools.py                 # 100,000 rows
    python benchmarks/pools.py --rows 1000000

The last line is `rows=<n> eval_s=<a> round_s=<b> full_parse_s=<c> speedup=<c/(a+b)>`.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from sdfb.config import DataConfig
from sdfb.problems import load_pools, sample_eval, sample_round


def write_pool(path: Path, rows: int) -> Path:
    with open(path, "w") as out:
        for i in range(rows):
            question = f"A farm has {i} hens and buys {i % 17 + 2} more. How many hens are there now?"
            answer = (
                f"It has {i} + {i % 17 + 2} = <<{i}+{i % 17 + 2}={i + i % 17 + 2}>>{i + i % 17 + 2} hens.\n"
            )
            out.write(json.dumps({"question": question, "answer": answer + f"#### {i + i % 17 + 2}"}) + "\n")
    return path


def timed(call):
    started = time.perf_counter()
    result = call()
    return result, time.perf_counter() - started


def main(rows: int) -> str:
    with tempfile.TemporaryDirectory() as folder:
        path = write_pool(Path(folder) / "train.jsonl", rows)
        columns = {"question": "question", "solution": "answer", "answer": "answer"}
        cfg = DataConfig(
            source="jsonl", path=str(path), columns=columns, answer_extract=True, eval_problems=500
        )
        (evals, _), eval_s = timed(lambda: sample_eval(cfg))
        _, round_s = timed(lambda: sample_round(cfg, 0, 3, set(evals["problem_id"])))
        _, full_s = timed(lambda: load_pools(cfg, 0))
    print(f"eval split {eval_s:.2f} s, one round {round_s:.2f} s; every gold parsed {full_s:.2f} s")
    speedup = full_s / (eval_s + round_s)
    times = f"eval_s={eval_s:.2f} round_s={round_s:.2f} full_parse_s={full_s:.2f}"
    return f"rows={rows} {times} speedup={speedup:.2f}"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    print(main(parser.parse_args().rows))
