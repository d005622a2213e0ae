"""Progress of a long stage in the Prefect UI: a progress artifact on the task run, updated as prompts
finish or training steps pass (at most every few seconds: each update is an API call), and a bar on the
terminal when the command that runs the flow turned bars on (`sdfb.progress`)."""

from __future__ import annotations

import time
from collections.abc import Callable

from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.context import TaskRunContext

from sdfb.progress import reporting
from tasks._stage import task_logger

EVERY_SECONDS = 2.0


def stage_progress(description: str) -> Callable[[int, int], None]:
    """`progress(done, total)` for the library: creates the artifact (0 %) now, updates it as work finishes
    and always at 100 %. Outside a Prefect run (tests calling a task's `.fn`) it has no artifact. With
    terminal bars on, it also draws the stage's bar."""
    artifact = None
    if TaskRunContext.get() is not None:
        try:
            artifact = create_progress_artifact(progress=0.0, description=description)
        except Exception as exc:  # noqa: BLE001 - progress is for the eyes only: a failed call never stops a stage
            task_logger().debug("no progress artifact (%s)", exc)
    last = [0.0]

    def progress(done: int, total: int) -> None:
        now = time.monotonic()
        if artifact is None or not total or (done < total and now - last[0] < EVERY_SECONDS):
            return
        last[0] = now
        try:
            update_progress_artifact(artifact_id=artifact, progress=100.0 * done / total)
        except Exception as exc:  # noqa: BLE001 - as above
            task_logger().debug("progress update failed (%s)", exc)

    return reporting(description, progress)
