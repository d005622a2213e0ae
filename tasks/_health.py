"""Prefect artifacts of a round's health (`sdfb.health`): a table of its per-step metrics and a markdown
summary of its per-round rates and threshold crossings, published also when the stop rule ends the round."""

from __future__ import annotations

from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.context import TaskRunContext

from sdfb.config import RunConfig
from sdfb.health import step_rows, summary_markdown
from tasks._artifacts import artifact_key


def publish_health(cfg: RunConfig, round_index: int, metrics: dict, stopped: bool = False) -> None:
    """`metrics`: the round's (a distill manifest's `metrics`, or what a HealthStop carried). Outside a
    Prefect task run (`sdfb train-round`, tests calling `.fn`) nothing is published."""
    if TaskRunContext.get() is None:
        return
    key = artifact_key(cfg.name, cfg.context.condition, f"seed{cfg.seed}", f"round{round_index}", "health")
    rates = {k: metrics[k] for k in ("format_rate", "answer_rate", "mean_completion_length") if k in metrics}
    found = metrics.get("health_alarms", [])
    create_markdown_artifact(key=key, markdown=summary_markdown(round_index, rates, found, stopped))
    if rows := step_rows(metrics.get("history", [])):
        create_table_artifact(
            key=f"{key}-steps", table=rows, description=f"round {round_index}: health metrics per step"
        )
