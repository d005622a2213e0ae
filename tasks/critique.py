"""Critic step-alignment: one checked critique per rollout. The critic's API key comes from a Prefect Secret block
(critic.openai.api_key_block) or the environment (critic.openai.api_key_env) and never reaches a log or a table."""

import os
from pathlib import Path

from prefect import task
from prefect.cache_policies import NONE

from sdfb import schemas
from sdfb.config import CriticConfig, RunConfig
from sdfb.critic import check_failures, critique_rollouts, make_critic, summarise
from sdfb.runs import RunLayout, stage_key
from sdfb.store import read_table
from tasks._stage import run_stage, task_logger


def _api_key(cfg: CriticConfig) -> str | None:
    if cfg.kind != "openai":
        return None
    if cfg.openai.api_key_block:
        from prefect.blocks.system import Secret

        return Secret.load(cfg.openai.api_key_block).get()
    return os.environ.get(cfg.openai.api_key_env)


@task(name="critique-rollouts", cache_policy=NONE)
def critique(
    cfg: RunConfig, run_dir: str, round_index: int, rollouts: str, problems: str, grades: str
) -> str:
    path = RunLayout(Path(run_dir)).stage(round_index, "critiques")
    key = stage_key(cfg, "critiques", {"rollouts": rollouts, "problems": problems, "grades": grades})

    def compute():
        critic = make_critic(cfg.critic, api_key=_api_key(cfg.critic), seed=cfg.seed)
        frame = critique_rollouts(
            read_table(rollouts), read_table(problems), read_table(grades), critic, cfg.grading
        )
        summary = summarise(frame, critic.stats())
        task_logger().info("critiques: %s", summary["summary"])
        check_failures(frame, cfg.critic, summary)
        return frame, summary

    def redo(manifest: dict) -> bool:
        return bool(manifest.get("status_counts", {}).get("failed"))

    return run_stage("critiques", path, key, schemas.CRITIQUES, compute, redo)
