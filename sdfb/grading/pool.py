"""The grading process pool: runs a check per job in spawned workers, each job bounded by a time limit.

Workers carry a memory limit too (`sdfb.grading.worker.start_worker`); nothing here knows what a check does.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable
from typing import Any

from sdfb import faults
from sdfb.grading.worker import start_worker

_START_TIMEOUT = 120.0


def run_in_pool(
    check: Callable[..., Any], jobs: list[tuple], timeout_seconds: float, workers: int, memory_mb: int
) -> list[Any | None]:
    """`check(*job)` for every job, in order; None for a job that ran past `timeout_seconds`.

    A job that hangs (Math-Verify #65) holds its worker for good, so its pool is terminated and the jobs after
    it run in a fresh pool.
    """
    results: list[Any | None] = []
    while len(results) < len(jobs):
        results += _run_until_a_hang(check, jobs[len(results) :], timeout_seconds, workers, memory_mb)
    return results


def _run_until_a_hang(check, jobs: list[tuple], timeout_seconds: float, workers: int, memory_mb: int) -> list:
    """Results of a prefix of `jobs` from one pool; the prefix ends with None where a job ran out of time."""
    context = multiprocessing.get_context("spawn")
    n_workers = min(workers, len(jobs))
    ready = context.Barrier(n_workers + 1)
    pool = context.Pool(n_workers, initializer=start_worker, initargs=(ready, memory_mb))
    try:
        try:
            # Every worker has started and imported math-verify before any job's clock starts.
            ready.wait(timeout=_START_TIMEOUT)
        except threading.BrokenBarrierError:
            raise RuntimeError(
                f"grading workers did not start within {_START_TIMEOUT:.0f} s; check that math-verify "
                "imports in a fresh interpreter (python -c 'import math_verify')"
            ) from None
        pending = [pool.apply_async(check, job) for job in jobs]
        results = []
        for result in pending:
            try:
                results.append(result.get(timeout=timeout_seconds))
                faults.point("grade:result")
            except multiprocessing.TimeoutError:
                results.append(None)
                break
        return results
    finally:
        pool.terminate()
