"""`sdfb deploy --pool NAME` registers the deployments in prefect.yaml with a work pool; `sdfb serve`
serves them from this process (Prefect's serve: no pool, no worker). Both check every deployment's config
first, so a bad one fails here with the config's own message rather than at run time."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from cli.common import console, err

ROOT = (
    Path(__file__).resolve().parent.parent
)  # where the flows run: config paths in prefect.yaml are relative to it

FileOption = Annotated[Path, typer.Option("--file", help="the deployments file")]
OnlyOption = Annotated[
    list[str] | None, typer.Option("--only", help="only this deployment (repeat for several)")
]


ZOMBIES = "sdfb: crash zombie flow runs"


def deploy(
    pool: Annotated[str, typer.Option("--pool", help="work pool whose workers run the deployments")],
    file: FileOption = ROOT / "prefect.yaml",
    only: OnlyOption = None,
    zombie_seconds: Annotated[
        int,
        typer.Option(help="mark a flow run CRASHED after this long without a heartbeat (its worker died)"),
    ] = 120,
) -> None:
    """Register the deployments in prefect.yaml with work pool POOL (create a process pool with
    `prefect work-pool create POOL --type process`; docker/worker.sh does), and the automation that
    marks flow runs whose worker died as CRASHED (workers send heartbeats:
    PREFECT_FLOWS_HEARTBEAT_FREQUENCY, set by worker.sh)."""
    from prefect import deploy as prefect_deploy
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    file = file.resolve()
    os.chdir(ROOT)  # the deployments record where their code is (entrypoints relative to this repository)
    deployments = _runner_deployments(file, only)
    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(pool)
        except ObjectNotFound:
            err.print(
                f"[red]error:[/red] work pool {pool!r} does not exist on {client.api_url}; create it with "
                f"`prefect work-pool create {pool} --type process` (or start docker/worker.sh, which does)"
            )
            raise typer.Exit(2) from None
        zombie_automation(client, zombie_seconds)
    ids = prefect_deploy(
        *deployments, work_pool_name=pool, build=False, push=False, print_next_steps_message=False
    )
    for dep, ident in zip(deployments, ids, strict=True):
        console.print(
            f"deployed {dep.flow_name}/{dep.name} ({ident}) to pool {pool}; tags {', '.join(dep.tags)}"
        )


def zombie_automation(client, seconds: int) -> None:
    """Prefect's recipe for self-hosted servers: a run whose heartbeats stop for `seconds` (a
    worker killed outright, a lost machine) is marked CRASHED, so its deployment can be run again.
    Created once; an existing one is kept."""
    from datetime import timedelta

    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
    from prefect.events.schemas.events import ResourceSpecification

    if client.read_automations_by_name(ZOMBIES):
        return
    ends = ("Completed", "Failed", "Cancelled", "Crashed")
    trigger = EventTrigger(
        after={"prefect.flow-run.heartbeat"},
        expect={"prefect.flow-run.heartbeat", *(f"prefect.flow-run.{end}" for end in ends)},
        match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
        for_each={"prefect.resource.id"},
        posture=Posture.Proactive,
        threshold=1,
        within=timedelta(seconds=seconds),
    )
    action = ChangeFlowRunState(state=StateType.CRASHED, message=f"no heartbeat for {seconds} s")
    client.create_automation(AutomationCore(name=ZOMBIES, trigger=trigger, actions=[action]))
    console.print(f"created automation {ZOMBIES!r}: no heartbeat for {seconds} s marks a flow run CRASHED")


def serve(file: FileOption = ROOT / "prefect.yaml", only: OnlyOption = None) -> None:
    """Serve the deployments in prefect.yaml from this process until Ctrl-C: their schedules fire and runs
    started from the UI or `prefect deployment run` execute here, without a work pool or worker."""
    from prefect import serve as prefect_serve

    # As docker/worker.sh: Prefect's default (180 s) is longer than the zombie automation's window, which
    # would mark every served run longer than that CRASHED. Its runs are subprocesses and read this from the
    # environment.
    os.environ.setdefault("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", "30")
    file = file.resolve()
    os.chdir(ROOT)
    deployments = _runner_deployments(file, only)
    prefect_serve(*deployments)


def _runner_deployments(file: Path, only: list[str] | None) -> list:
    from sdfb.deployments import DeploymentError, load_deployments

    try:
        specs = load_deployments(file, ROOT, only)
    except DeploymentError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    return [_runner_deployment(spec) for spec in specs]


def _runner_deployment(spec):
    from prefect.deployments.runner import EntrypointType
    from prefect.schedules import Cron, Interval

    from flows.deployments import run_experiment, run_recipe

    flow = run_recipe if spec.kind == "recipe" else run_experiment
    schedules = [
        Cron(s.cron, timezone=s.timezone, active=s.active)
        if s.cron
        else Interval(s.interval, timezone=s.timezone, active=s.active)
        for s in spec.schedules
    ]
    return flow.to_deployment(
        name=spec.name,
        parameters=spec.parameters,
        tags=list(spec.tags),
        description=spec.description,
        schedules=schedules,
        job_variables=spec.job_variables or None,
        # `flows.deployments.run_recipe`: a worker imports the installed package, wherever its checkout is
        entrypoint_type=EntrypointType.MODULE_PATH,
    )
