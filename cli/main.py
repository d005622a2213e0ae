"""The `sdfb` command: `sdfb run --config FILE [--run-dir DIR] [--set a.b=value ...] [--until STAGE]`,
`sdfb train-round --config FILE --run-dir DIR --round N` (also under `accelerate launch`), `sdfb show DIR`,
`sdfb prepare-model NAME`, `sdfb serve-critic MODEL`, `sdfb config show --config FILE`, `sdfb --version`.
Configuration is validated before any work (or Prefect import) starts."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from cli.common import config_or_exit, console, err, guarded, progress_bars, user_errors
from cli.server import EarlyServer, early_server
from sdfb.config import ConfigError, load_config
from sdfb.summary import RESULTS_HEADER, results_rows

if TYPE_CHECKING:
    from sdfb.stages import StopAfter

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Self-distillation with feedback.")


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"sdfb {version('sdfb')}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="print the version and exit"),
    ] = False,
) -> None:
    """Self-distillation with feedback."""


def print_results(summary_path: Path) -> None:
    summary = json.loads(summary_path.read_text())
    for eval_set in [None, *summary.get("eval_sets", {})]:
        title = f"sdfb results: {summary['run']}" + (f", eval set {eval_set}" if eval_set else "")
        table = Table(title=title)
        for name in RESULTS_HEADER:
            table.add_column(name, justify="left" if name == "checkpoint" else "right")
        for row in results_rows(summary, eval_set):
            table.add_row(*row)
        console.print(table)
    base = summary.get("base_student")
    if base:
        console.print(
            f"base student on the eval split: format followed in {100 * base['format_rate']:.1f}% of "
            f"samples, correct in {100 * base['accuracy']:.1f}% (k={base['k']})"
        )
    timing = summary["timing"]
    stages = ", ".join(f"{k} {v:.1f}s" for k, v in timing["per_stage_seconds"].items())
    console.print(f"stage time: {stages}")
    console.print(
        f"flow wall time {timing['flow_wall_seconds']:.1f}s, of which Prefect/orchestration overhead "
        f"{100 * timing['prefect_overhead_share']:.1f}%"
    )
    console.print(f"summary: {summary_path}")


@app.command()
def run(
    config: Annotated[Path, typer.Option("--config", "-c", help="YAML recipe, e.g. configs/demo.yaml")],
    run_dir: Annotated[
        Path | None, typer.Option("--run-dir", help="run folder (default runs/<name>)")
    ] = None,
    overrides: Annotated[
        list[str] | None, typer.Option("--set", help="override a key: --set distill.learning_rate=1e-4")
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(
            help="stop after this stage (a stage table name, e.g. teacher: before the first training)"
        ),
    ] = None,
    until_round: Annotated[
        int | None,
        typer.Option(
            help="with --until: the round whose stage to stop after (default: the first that has it)"
        ),
    ] = None,
) -> None:
    """Run the pipeline flow; finished stages in the run folder are reused."""
    from sdfb.stages import stop_after, switched_off

    started = time.time()
    try:
        cfg = load_config(config, overrides or [])
        stop = stop_after(until, until_round, cfg.rounds, cfg.eval.every, switched_off(cfg))
    except (ConfigError, ValueError) as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    target = (run_dir or Path("runs") / cfg.name).resolve()
    from cli.experiment import run_report
    from sdfb.models import check_model

    with early_server() as server, guarded(target):  # the server first: guarded imports prefect
        check_model(cfg.model.name_or_path)
        result = _start_pipeline(cfg, target, started, server, stop)
        if stop.stage:
            console.print(f"stopped after {stop}: {result}; rerun without --until to continue the run")
            return
        print_results(Path(result))
        # Still holding the folder: the report reads the run's tables.
        console.print(f"report: {run_report(target)}")


def _start_pipeline(cfg, target: Path, started: float, server: EarlyServer | None, stop: StopAfter) -> str:
    os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "sdfb")
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    from transformers.utils import logging as hf_logging

    from flows.pipeline import pipeline

    hf_logging.disable_progress_bar()
    if server:
        server.wait()
    return pipeline(
        cfg, str(target), started_at=started, until=stop.stage, until_round=stop.round if stop.stage else None
    )


@app.command("train-round")
def train_round(
    config: Annotated[Path, typer.Option("--config", "-c", help="the run's YAML recipe")],
    run_dir: Annotated[Path, typer.Option("--run-dir", help="the run folder holding the round's rollouts")],
    round_index: Annotated[int, typer.Option("--round", help="which round to train (1-based)")],
    overrides: Annotated[
        list[str] | None, typer.Option("--set", help="the same overrides as the run")
    ] = None,
) -> None:
    """Train one round from its stored tables, outside the flow (for `accelerate launch`), as
    the flow's distillation stage would: after `sdfb run --until teacher --until-round N`, and
    a later `sdfb run` reuses what this wrote."""
    from sdfb.resume import unfinished_inputs
    from sdfb.stages import output_path
    from tasks.distill import run_round

    cfg = config_or_exit(config, overrides)
    if not 1 <= round_index <= cfg.rounds:
        err.print(f"[red]error:[/red] --round {round_index}: this run has rounds 1 to {cfg.rounds}")
        raise typer.Exit(2)
    root = run_dir.resolve()
    missing = unfinished_inputs(cfg, str(root), "distill", round_index)
    if missing:
        err.print(
            f"[red]error:[/red] round {round_index} cannot be trained yet: {', '.join(missing)} not finished "
            f"under this config; run the flow up to that round first: `sdfb run --config {config} --run-dir "
            f"{run_dir} --until teacher --until-round {round_index}` with the same --set overrides"
        )
        raise typer.Exit(2)
    inputs = {
        s: output_path(root, s, round=round_index) for s in ("rollouts", "contexts", "grades", "teacher")
    }
    previous = output_path(root, "distill", "checkpoint", round=round_index - 1) if round_index > 1 else None
    from sdfb.distill import is_main_process
    from sdfb.runlock import run_lock

    args = (cfg, str(root), round_index, *(str(p) for p in inputs.values()), previous and str(previous))
    try:
        # Rank 0 writes, so it holds the folder; the other ranks of an `accelerate launch` only read.
        with run_lock(root) if is_main_process() else contextlib.nullcontext(), progress_bars():
            path = run_round(*args)
    except user_errors() as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    console.print(path)


@app.command()
def show(run_dir: Annotated[Path, typer.Argument(help="a run folder holding summary.json")]) -> None:
    """Print the results table of a finished run."""
    path = run_dir / "summary.json"
    if not path.exists():
        err.print(
            f"[red]error:[/red] {path} does not exist: the run has not "
            "finished; rerun `sdfb run` to resume it"
        )
        raise typer.Exit(2)
    print_results(path)


@app.command("prepare-model")
def prepare_model(
    name: Annotated[
        str, typer.Argument(help="alias (smollm2-135m, tiny), folder or hub id")
    ] = "smollm2-135m",
) -> None:
    """Resolve (and for aliases, build) a model once, so later runs start fast."""
    from sdfb.models import resolve_model

    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    try:
        console.print(str(resolve_model(name)))
    except user_errors() as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None


def _register() -> None:
    from cli.config import config_app
    from cli.critic import serve_critic
    from cli.deploy import deploy, serve
    from cli.experiment import experiment, report

    app.command()(experiment)
    app.command()(report)
    app.command()(deploy)
    app.command()(serve)
    app.command("serve-critic")(serve_critic)
    app.add_typer(config_app, name="config")


_register()


if __name__ == "__main__":
    app()
