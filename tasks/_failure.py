"""The final state of a failed pipeline run names the stage that failed and why (`stage distill (round 2)
failed: ValueError: ...`), in the UI and in `prefect flow-run inspect`; the exception itself still reaches
a caller of the flow (the CLI prints it as one line).

Every task carries the `remember_failure` hook, which Prefect calls in the flow's process as the task
fails, before its exception reaches the flow; the flow reads the name back here (the server may not have
the task run's final state yet when the flow ends)."""

from __future__ import annotations

from prefect.context import FlowRunContext
from prefect.states import Failed, State

_failed: dict[str, str] = {}  # flow run id -> name of its task run that failed last


def remember_failure(task, task_run, state) -> None:
    _failed[str(task_run.flow_run_id)] = task_run.name


def stage_failure(exc: Exception) -> State:
    return Failed(message=f"{failed_stage()} failed: {type(exc).__name__}: {exc}", data=exc)


def failed_stage() -> str:
    """`stage <task run name>` (task run names carry the round or
    checkpoint); `the flow` when no task failed."""
    context = FlowRunContext.get()
    name = _failed.pop(str(context.flow_run.id), None) if context and context.flow_run else None
    return f"stage {name}" if name else "the flow"
