"""One slot of the Prefect global concurrency limit `sdfb-gpu` for a flow run that uses a GPU: its
engines and training stay on the device from the first rollout to the last score, so two flow runs on
one worker take turns instead of fighting over one GPU. docker/worker.sh creates the limit with
SDFB_GPU_SLOTS slots (one per GPU the worker's runs may share; `prefect gcl create sdfb-gpu --limit N`
by hand). Without the limit, runs go ahead."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

GPU_LIMIT = "sdfb-gpu"
LEASE_SECONDS = 60  # renewed while the run lives; a run killed outright frees its slot after this long


def uses_gpu() -> bool:
    """A CUDA device is visible, or SDFB_GPU_SLOT=1 asks for the slot anyway (one heavy run at a time on a CPU
    machine, and the server test)."""
    if os.environ.get("SDFB_GPU_SLOT") == "1":
        return True
    import torch

    return torch.cuda.is_available()


@contextlib.contextmanager
def gpu_slot(logger: logging.Logger | logging.LoggerAdapter) -> Iterator[None]:
    if not uses_gpu():
        yield
        return
    from prefect.concurrency.sync import concurrency

    logger.info("waiting for a slot of the %s concurrency limit", GPU_LIMIT)
    with concurrency(GPU_LIMIT, occupy=1, lease_duration=LEASE_SECONDS, strict=False):
        logger.info("holding a slot of %s", GPU_LIMIT)
        yield
