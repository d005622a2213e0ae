"""The run summary: summary.json in the run folder and a markdown artifact with the results table."""

import json
import time
from pathlib import Path

from prefect.artifacts import create_markdown_artifact, create_table_artifact

from sdfb.atomic import write_text
from sdfb.config import RunConfig
from sdfb.stages import output_path, summary_path
from sdfb.store import MANIFEST_SUFFIX, read_manifest, read_table
from sdfb.summary import build_summary, earlier_rounds, localisation_rows, results_markdown, round_stats
from tasks._artifacts import artifact_key
from tasks._stage import stage_task, task_logger


def _round_inputs(run_dir: str, round_index: int) -> list[str]:
    """The content hashes of the tables a round's statistics come from
    (their manifests are verified on read)."""
    paths = [output_path(run_dir, s, round=round_index) for s in ("grades", "critiques")]
    paths += [output_path(run_dir, "distill", out, round=round_index) for out in ("tokens", "checkpoint")]
    return [str(read_manifest(p).get("content_hash")) for p in paths]


def _round_stats(run_dir: str, round_index: int, previous: dict[int, dict]) -> dict:
    """A round's statistics; reused from the previous summary when computed from the same tables (a rerun of a
    finished run then costs no table reads and no statistics)."""
    inputs = _round_inputs(run_dir, round_index)
    if previous.get(round_index, {}).get("inputs") == inputs:
        return previous[round_index]
    stats = round_stats(
        round_index,
        read_table(output_path(run_dir, "grades", round=round_index)),
        read_table(output_path(run_dir, "critiques", round=round_index)),
        read_table(output_path(run_dir, "distill", "tokens", round=round_index)),
        read_manifest(output_path(run_dir, "distill", "checkpoint", round=round_index))["metrics"],
        inputs,
    )
    if stats["localisation"]["inactive"]:
        task_logger().warning(
            "round %d: distillation is inactive, no token has a non-zero advantage (the teacher "
            "agrees with the student everywhere: expected for the condition none, and under GRPO "
            "when every group's samples got one reward)",
            round_index,
        )
    return stats


def _previous_rounds(root: Path) -> dict[int, dict]:
    try:
        return earlier_rounds(json.loads(summary_path(root).read_text()))
    except (OSError, ValueError):  # no summary yet, or not JSON
        return {}


@stage_task("summary")
def write_summary(
    cfg: RunConfig,
    run_dir: str,
    score_paths: list[str],
    started_at: float,
    set_score_paths: dict[str, list[str]] | None = None,
) -> str:
    root = Path(run_dir)
    manifests = {
        str(p.relative_to(root)): json.loads(p.read_text()) for p in sorted(root.rglob(f"*{MANIFEST_SUFFIX}"))
    }
    scores = [read_table(p).iloc[0].to_dict() for p in score_paths]
    set_scores = {
        name: [read_table(p).iloc[0].to_dict() for p in paths]
        for name, paths in (set_score_paths or {}).items()
    }
    previous = _previous_rounds(root)
    rounds = [_round_stats(run_dir, r, previous) for r in range(1, cfg.rounds + 1)]
    config = cfg.model_dump(mode="json")
    summary = build_summary(cfg.name, config, scores, rounds, manifests, started_at, time.time(), set_scores)
    path = write_text(summary_path(root), json.dumps(summary, indent=2, default=str))
    create_markdown_artifact(
        key=artifact_key(cfg.name, cfg.context.condition, "results"),
        markdown=f"# {cfg.name}\n\n{results_markdown(summary)}\n\nrun folder: `{root}`",
        description="sdfb results per checkpoint",
    )
    create_table_artifact(
        key=artifact_key(cfg.name, cfg.context.condition, "localisation"),
        table=localisation_rows(summary),
        description="where the negative advantage falls, per round (95% intervals over attempts)",
    )
    return str(path)
