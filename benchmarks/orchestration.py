"""What a rerun of a finished run costs, in two parts: Prefect (interpreter start, imports,
the temporary API server, flow and task runs) and sdfb's own work (finding every stage
finished, the summary). Uses the smoke recipe.

    python benchmarks/orchestration.py                # one fresh smoke run, then 3 reruns of each kind
    python benchmarks/orchestration.py --repeats 5

(a) `sdfb run` on the finished folder, the temporary Prefect server started first (the default); (b) the
same with SDFB_EARLY_SERVER=0 (Prefect starts its server when the flow is called, as before); (c) sdfb's
own rerun work: the pipeline's body in this process with every task called as its plain function, without
Prefect. Medians of the repeats. The last line is `rerun_wall_s=<a> rerun_wall_lazy_s=<b>
early_server_ratio=<b/a> rerun_sdfb_work_s=<c> rerun_prefect_s=<a-c>`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "configs" / "smoke.yaml"


def sdfb_run(run_dir: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    cmd = [sys.executable, "-m", "cli.main", "run", "--config", str(CONFIG), "--run-dir", str(run_dir)]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"sdfb run failed ({done.returncode}):\n{done.stderr[-3000:]}")
    if "Starting temporary server" in done.stderr + done.stdout and env.get("SDFB_EARLY_SERVER") != "0":
        raise SystemExit("the early server was not used: Prefect started its own")
    return time.perf_counter() - started


def sdfb_work(run_dir: Path) -> float:
    """The pipeline body without Prefect: tasks as plain functions, artifacts (Prefect API calls) left out."""
    code = f"""
import time, flows.pipeline as fp, tasks.scoring, tasks.summary
from sdfb.config import load_config
for module in (tasks.scoring, tasks.summary):
    for name in ("create_table_artifact", "create_markdown_artifact"):
        if hasattr(module, name):
            setattr(module, name, lambda **_: None)
for name in dir(fp):
    if name != "pipeline" and hasattr(getattr(fp, name), "fn"):
        setattr(fp, name, getattr(fp, name).fn)
cfg = load_config({str(CONFIG)!r})
started = time.perf_counter()
fp._rounds(cfg, {str(run_dir)!r}, time.time(), False)
print(time.perf_counter() - started)
"""
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"the in-process rerun failed:\n{done.stderr[-3000:]}")
    return float(done.stdout.strip().splitlines()[-1])


def main(args: argparse.Namespace) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env |= {"DO_NOT_TRACK": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "TRL_EXPERIMENTAL_SILENCE": "1"}
    with tempfile.TemporaryDirectory(prefix="sdfb-orchestration-") as tmp:
        env["PREFECT_HOME"] = str(Path(tmp) / "prefect")
        run_dir = Path(tmp) / "run"
        fresh = sdfb_run(run_dir, env)
        print(f"fresh smoke run: {fresh:.1f}s")
        early, lazy, work = [], [], []
        for _ in range(args.repeats):  # interleaved, so drift on a noisy machine hits both alike
            early.append(sdfb_run(run_dir, env))
            lazy.append(sdfb_run(run_dir, env | {"SDFB_EARLY_SERVER": "0"}))
            work.append(sdfb_work(run_dir))
            print(f"rerun: early server {early[-1]:.2f}s, lazy {lazy[-1]:.2f}s, sdfb work {work[-1]:.3f}s")
    a, b, c = statistics.median(early), statistics.median(lazy), statistics.median(work)
    return {
        "rerun_wall_s": round(a, 2),
        "rerun_wall_lazy_s": round(b, 2),
        "early_server_ratio": round(b / a, 3),
        "rerun_sdfb_work_s": round(c, 3),
        "rerun_prefect_s": round(a - c, 2),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=3)
    result = main(parser.parse_args())
    print(" ".join(f"{k}={v}" for k, v in result.items()))
