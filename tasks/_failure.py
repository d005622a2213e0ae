"""The final state of a failed pipeline run names the stage that failed and why (`stage distill (round 2) failed:
ValueError: ...`), in the UI and in `prefect flow-run inspect`; the exception itself still reaches a caller of the
flow (the CLI prints it as one line)."""

from __future__ import annotations

from prefect.context import FlowRunContext
from prefect.states import Failed, State


def stage_failure(exc: Exception) -> State:
    return Failed(message=f"{failed_stage()} failed: {type(exc).__name__}: {exc}", data=exc)


def failed_stage() -> str:
    """`stage <task run name>` of the newest failed (or crashed) task run of this flow run (task run names carry
    the round or checkpoint); `the flow` when no task failed."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterId,
        TaskRunFilter,
        TaskRunFilterState,
        TaskRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import TaskRunSort

    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return "the flow"
    failed = TaskRunFilterState(type=TaskRunFilterStateType(any_=[StateType.FAILED, StateType.CRASHED]))
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[context.flow_run.id])),
            task_run_filter=TaskRunFilter(state=failed),
            sort=TaskRunSort.EXPECTED_START_TIME_DESC,
            limit=1,
        )
    return f"stage {runs[0].name}" if runs else "the flow"
