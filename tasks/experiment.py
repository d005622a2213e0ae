"""The experiment's last stage: gather every arm's tables into the analysis tables, write them with a
summary and the HTML report, and publish the comparison and a link to the report as Prefect artifacts."""

import json
import time
from pathlib import Path

from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact

from sdfb.experiment import ExperimentConfig, analyse, arm_dir, shared_counts, write_analysis
from sdfb.models import load_tokenizer
from sdfb.names import ArmStatus
from sdfb.report import write_report
from sdfb.summary import comparison_markdown, stage_times
from tasks._artifacts import artifact_key
from tasks._stage import stage_task


def _timing(root: Path, started_at: float) -> dict:
    """Seconds per stage over every arm, each execution counted once (a
    shared output's manifest is one file)."""
    manifests = {}
    for path in sorted(root.glob("seed_*/*/**/*.manifest.json")):
        if path.relative_to(root).parts[1] != "shared":
            manifests.setdefault(path.read_bytes(), json.loads(path.read_text()))
    times = stage_times({str(i): m for i, m in enumerate(manifests.values())}, started_at)
    return {**times, "wall_seconds": time.time() - started_at}


@stage_task("analyse-experiment")
def analyse_experiment(
    exp: ExperimentConfig, root: str, outcomes: dict[str, dict], model: str, k: int, started_at: float
) -> str:
    runs = {(arm.name, seed): arm_dir(root, arm.name, seed) for arm in exp.arms for seed in exp.seeds}
    runs = {key: path for key, path in runs.items() if outcomes[key[0]]["status"] == ArmStatus.OK}
    tables, summary = analyse(
        exp.name,
        runs,
        outcomes,
        exp.reference,
        k,
        exp.validation_share,
        load_tokenizer(model),
        exp.bootstrap_resamples,
        shared_counts(Path(root), exp.seeds, [a.name for a in exp.arms]),
    )
    summary["timing"] = _timing(Path(root), started_at)
    path = write_analysis(Path(root) / "analysis", tables, summary)
    report = write_report(Path(root) / "analysis", Path(root) / "report.html")
    create_markdown_artifact(
        key=artifact_key(exp.name, "comparison"), markdown=comparison_markdown(tables, summary)
    )
    if not tables["comparisons"].empty:
        records = tables["comparisons"].round(4).to_dict("records")
        create_table_artifact(key=artifact_key(exp.name, "paired"), table=records)
    create_link_artifact(
        key=artifact_key(exp.name, "report"),
        link=report.resolve().as_uri(),
        link_text="experiment report (HTML)",
    )
    return str(path)
