"""Critic step-alignment: one checked critique per rollout. The critic's API key comes from a
Prefect Secret block (critic.openai.api_key_block) or the environment
(critic.openai.api_key_env) and never reaches a log or a table.

Retries: per request in the critic's HTTP client (with back-off); and on this task, when the endpoint is
down (`CriticUnavailableError`: too many requests failed even after the client's retries), two more tries a
minute apart: the reply cache makes a retry ask only what did not come back. No other error is retried."""

import os

from sdfb.config import CriticConfig, RunConfig
from sdfb.critic import CriticUnavailableError, check_failures, critique_rollouts, make_critic, summarise
from sdfb.stages import ConfigView
from sdfb.store import read_table
from tasks._stage import Inputs, run_stage, stage_task, task_logger


def _api_key(cfg: CriticConfig) -> str | None:
    if cfg.kind != "openai":
        return None
    if cfg.openai.api_key_block:
        from prefect.blocks.system import Secret

        return Secret.load(cfg.openai.api_key_block).get()
    return os.environ.get(cfg.openai.api_key_env)


def _critiques(c: ConfigView, inputs: Inputs, round: int):
    critic = make_critic(c.critic, api_key=_api_key(c.critic), seed=c.seed)
    tables = {name: read_table(path) for name, path in inputs.items()}
    frame = critique_rollouts(tables["rollouts"], tables["problems"], tables["grades"], critic, c.grading)
    summary = summarise(frame, critic.stats())
    task_logger().info("critiques: %s", summary["summary"])
    check_failures(frame, c.critic, summary)
    return frame, summary


def _some_failed(manifest: dict) -> bool:
    return bool(manifest.get("status_counts", {}).get("failed"))


def critic_unavailable(task, task_run, state) -> bool:
    """Retry only when the critic endpoint was unavailable."""
    try:
        state.result()
    except CriticUnavailableError:
        return True
    except Exception:  # noqa: BLE001 - any other failure is not retried
        return False
    return False


@stage_task(
    "critiques",
    "critiques (round {round_index})",
    retries=2,
    retry_delay_seconds=60,
    retry_condition_fn=critic_unavailable,
)
def critique(
    cfg: RunConfig, run_dir: str, round_index: int, rollouts: str, problems: str, grades: str
) -> str:
    inputs = {"rollouts": rollouts, "problems": problems, "grades": grades}
    return run_stage("critiques", cfg, run_dir, inputs, _critiques, redo=_some_failed, round=round_index)
