"""`sdfb experiment` and `sdfb report`: run (or only plan) an experiment of several arms, and draw the HTML
report of an experiment or a single run."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from cli.common import console, err, guarded
from cli.server import early_server
from sdfb.summary import COMPARISON_HEADER, comparison_rows


def experiment(
    config: Annotated[
        Path, typer.Option("--config", "-c", help="experiment YAML, e.g. configs/experiment-demo.yaml")
    ],
    run_dir: Annotated[
        Path | None, typer.Option("--run-dir", help="experiment folder (default runs/<name>)")
    ] = None,
    plan: Annotated[bool, typer.Option("--plan", help="validate and print the plan; run nothing")] = False,
) -> None:
    """Run every arm x seed of an experiment (shared first-round work computed once), then the paired
    statistics and the report. Finished arms are reused; an arm added to the YAML runs alone."""
    from sdfb.experiment import ExperimentError, by_arm, load_experiment, plan_experiment, resolve_arms

    try:
        exp, recipe = load_experiment(config)
        configs = resolve_arms(exp, recipe)
        root = (run_dir or Path("runs") / exp.name).resolve()
        the_plan = plan_experiment(exp, configs, root)  # a finished base scoring there lends measured rates
    except ExperimentError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    if plan:
        print_plan(exp, the_plan)
        return
    with early_server() as server, guarded(root):  # the server first: guarded imports prefect
        from flows.experiment import experiment as experiment_flow

        if server:
            server.wait()
        experiment_flow(exp, by_arm(configs), str(root))
    print_comparison(root / "analysis")
    console.print(f"report: {root / 'report.html'}")


def print_plan(exp, the_plan) -> None:
    from sdfb.experiment import FIRST_ROUND
    from sdfb.experiment.plan import differing_keys

    console.print(
        f"experiment {exp.name}: {len(exp.arms)} arms x {len(exp.seeds)} seeds, reference {exp.reference}"
    )
    first = exp.arms[0].name
    for arm in exp.arms:
        cfg = the_plan.configs[(arm.name, exp.seeds[0])]
        console.print(
            f"  arm {arm.name}: condition {cfg.context.condition}, objective {cfg.distill.objective}, "
            f"model {cfg.model.name_or_path}, {cfg.rounds} rounds, n={cfg.rollout.sampling.n} at "
            f"T={cfg.rollout.sampling.temperature}; overrides {arm.set or '{}'}"
        )
        if arm.name != first:
            keys = differing_keys(the_plan.configs[(first, exp.seeds[0])], cfg, "distill")
            console.print(
                f"    differs from {first} in: {', '.join(keys) or 'nothing the first round reads'}"
            )
    for seed_plan in the_plan.seeds:
        table = Table(title=f"seed {seed_plan.seed}: first-round stages")
        table.add_column("stage")
        table.add_column("computed")
        table.add_column("arms sharing one result")
        for name in FIRST_ROUND:
            groups = seed_plan.groups[name]
            if not groups:  # switched off in every arm (the difficulty filter without data.filter)
                continue
            table.add_row(name, f"{len(groups)}x", "; ".join(", ".join(g) for g in groups))
        console.print(table)
    work = the_plan.work
    console.print(
        f"work: {work['runs']} runs, {work['eval_generations']} eval generations, "
        f"{work['rollout_generations']} rollout generations, {work['filter_generations']} difficulty-filter "
        f"generations, at most {work['max_trained_tokens']} trained tokens"
    )
    print_power(the_plan.splits, the_plan.power)


def print_power(splits, power) -> None:
    """The split sizes and the minimum detectable difference, with the assumptions they rest on."""
    console.print(
        f"eval split: {splits.validation} validation (checkpoint choice) / {splits.test} test (reported) of "
        f"{splits.total} eval problems ({splits.how})"
    )
    found = (
        f"{100 * power.difference:.1f} points"
        if power.difference != float("inf")
        else "none (not even 100 points)"
    )
    console.print(
        f"power: {power.n_problems} test problems x {power.n_seeds} seed(s) x k={power.k}: smallest "
        f"Avg@{power.k} difference detectable at {power.power:.0%} power (two-sided alpha {power.alpha}): "
        f"{found}; {power.assumption}. Sampling noise only, so optimistic: see docs/power.md"
    )


def print_comparison(analysis: Path) -> None:
    import pandas as pd

    summary = json.loads((analysis / "summary.json").read_text())
    tables = {name: pd.read_parquet(analysis / f"{name}.parquet") for name in ("scores", "comparisons")}
    split = summary["split"]
    table = Table(
        title=f"{summary['name']}: test split ({split['test_problems']} problems), checkpoints chosen on "
        f"{split['validation_problems']} validation problems"
    )
    for name in COMPARISON_HEADER:
        table.add_column(name)
    for row in comparison_rows(tables, summary):
        table.add_row(*row)
    console.print(table)
    timing = summary.get("timing")
    if timing:
        stages = ", ".join(f"{k} {v:.0f}s" for k, v in timing["per_stage_seconds"].items())
        console.print(f"stage time over all arms (shared stages once): {stages}")
        console.print(f"experiment wall time {timing['wall_seconds']:.0f}s")
    shared = summary["shared"]
    console.print(
        f"shared first-round work: {shared['stage_outputs']} stage outputs used {shared['uses']} times "
        f"({shared['executions_saved']} stage executions saved)"
    )


def report(
    folder: Annotated[Path, typer.Argument(help="an experiment folder or a run folder")],
    out: Annotated[
        Path | None, typer.Option("--out", help="HTML file (default <folder>/report.html)")
    ] = None,
) -> None:
    """Write one self-contained HTML report (opens offline) for an experiment or a single run."""
    from sdfb.report import write_report

    analysis = folder / "analysis"
    if not (analysis / "summary.json").is_file():
        if not (folder / "summary.json").is_file():
            err.print(f"[red]error:[/red] {folder} is neither an experiment folder nor a finished run folder")
            raise typer.Exit(2)
        _analyse_run(folder, analysis)
    started = time.perf_counter()
    path = write_report(analysis, out or folder / "report.html")
    console.print(f"report: {path} ({time.perf_counter() - started:.1f}s)")


def run_report(folder: Path) -> Path:
    """`<folder>/report.html` of a finished single run (`sdfb run` writes it last). Its
    analysis tables go to a temporary folder: the run folder keeps only the stages' outputs,
    and a resumed run is never drawn from stale ones."""
    import tempfile

    from sdfb.report import write_report

    with tempfile.TemporaryDirectory(prefix="sdfb-report-") as scratch:
        _analyse_run(folder, Path(scratch))
        return write_report(Path(scratch), folder / "report.html")


def _analyse_run(folder: Path, analysis: Path) -> None:
    from sdfb.config import build_config
    from sdfb.experiment import analyse, write_analysis
    from sdfb.models import load_tokenizer
    from sdfb.names import ArmStatus

    cfg = build_config(json.loads((folder / "summary.json").read_text())["config"])
    tables, summary = analyse(
        cfg.name,
        {(cfg.name, cfg.seed): folder},
        {cfg.name: {"status": ArmStatus.OK, "error": None}},
        None,
        cfg.eval.k,
        0.5,
        load_tokenizer(cfg.model.name_or_path, cfg.model.trust_remote_code),
    )
    write_analysis(analysis, tables, summary)
