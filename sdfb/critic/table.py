"""The critique stage's library side: build the configured critic, critique every
rollout, check each critique's alignment with its attempt and grade its answer, and
summarise the outcome for the manifest and the log."""

from __future__ import annotations

import logging
import os
from collections import Counter
from pathlib import Path

import pandas as pd

from sdfb import faults
from sdfb.config import CriticConfig, GradingConfig
from sdfb.config.cards import card_warnings
from sdfb.critic.alignment import align, final_status, verdict_is_correct
from sdfb.critic.base import Critic, CritiqueRequest
from sdfb.critic.cache import CritiqueCache, attempt_hash
from sdfb.critic.llm import LLMCritic, OpenAIBackend, VLLMBackend
from sdfb.critic.prompt import load_critic_prompt
from sdfb.critic.symbolic import SymbolicCritic
from sdfb.grading import extract_answer, grade_pairs
from sdfb.names import CritiqueStatus
from sdfb.prompts import parse_attempt

log = logging.getLogger(__name__)


class CriticUnavailableError(RuntimeError):
    """Too many critic requests failed; what finished is cached and will not be asked again."""


def critique_cache_dir(cfg: CriticConfig) -> Path:
    from sdfb.models import cache_dir

    return Path(cfg.cache_dir).expanduser() if cfg.cache_dir else cache_dir() / "critiques"


def make_critic(cfg: CriticConfig, api_key: str | None = None, seed: int = 0) -> Critic:
    """The configured critic. `api_key` (openai only) defaults to the
    environment variable critic.openai.api_key_env."""
    if cfg.kind == "symbolic":
        return SymbolicCritic()
    prompt = load_critic_prompt(cfg.prompt)
    d = cfg.decoding
    for warning in card_warnings(cfg.model, d.temperature, d.top_p, d.max_tokens):
        log.warning("%s (docs/critic.md)", warning)
    identity = {
        "kind": cfg.kind,
        "model": cfg.model,
        "revision": cfg.revision,
        "prompt": prompt.version,
        "prompt_hash": prompt.content_hash,
        "decoding": cfg.decoding.model_dump(mode="json"),
    }
    if cfg.kind == "openai":
        backend = OpenAIBackend(
            cfg, api_key if api_key is not None else os.environ.get(cfg.openai.api_key_env)
        )
    else:
        backend = VLLMBackend(cfg, seed)
    cache = CritiqueCache(critique_cache_dir(cfg)) if cfg.cache else None
    return LLMCritic(f"{cfg.kind}:{cfg.model}", backend, prompt, identity, cache)


def critique_requests(rollouts: pd.DataFrame, problems: pd.DataFrame) -> list[CritiqueRequest]:
    """One request per rollout, in rollout order, carrying the problem
    and the hash of the sampled token ids."""
    by_id = problems.set_index("problem_id")
    return [
        CritiqueRequest(
            question=by_id.at[pid, "question"],
            solution=by_id.at[pid, "solution"],
            answer=by_id.at[pid, "answer"],
            steps=tuple(by_id.at[pid, "steps"]),
            attempt=text,
            finish_reason=finish,
            problem_id=pid,
            attempt_hash=attempt_hash(ids),
        )
        for pid, text, finish, ids in zip(
            rollouts["problem_id"],
            rollouts["completion_text"],
            rollouts["finish_reason"],
            rollouts["completion_ids"],
            strict=True,
        )
    ]


def critique_rollouts(
    rollouts: pd.DataFrame,
    problems: pd.DataFrame,
    grades: pd.DataFrame,
    critic: Critic,
    grading: GradingConfig,
) -> pd.DataFrame:
    """One critique row per rollout, in rollout order, with its alignment checks and final status."""
    keys = ["problem_id", "sample_index"]
    correct = rollouts[keys].merge(grades[[*keys, "correct"]], on=keys, how="left", validate="one_to_one")[
        "correct"
    ]
    if correct.isna().any():
        raise ValueError(f"{int(correct.isna().sum())} rollouts have no grade: grade them before critiquing")
    requests = critique_requests(rollouts, problems)
    critiques = critic.critique(requests)
    faults.point("critique:replies")
    alignments = []
    for request, critique in zip(requests, critiques, strict=True):
        attempt = parse_attempt(request.attempt)
        cut_off = (
            request.finish_reason == "length" and attempt.answer is None
        )  # as the symbolic critic reads it
        ok = critique.status == CritiqueStatus.OK
        alignments.append(align(attempt, critique.text, critique.first_wrong_step, cut_off) if ok else None)
    answers = [extract_answer(c.text) if c.status == CritiqueStatus.OK else None for c in critiques]
    graded = grade_pairs(
        [(a, r.answer) for a, r in zip(answers, requests, strict=True)],
        grading.timeout_seconds,
        grading.workers,
        grading.memory_mb,
    )
    verdicts = [verdict_is_correct(c.case) for c in critiques]
    return pd.DataFrame(
        {
            "problem_id": rollouts["problem_id"].to_numpy(),
            "sample_index": rollouts["sample_index"].to_numpy(),
            "critic": critic.name,
            "case": [c.case for c in critiques],
            "first_wrong_step": [c.first_wrong_step for c in critiques],
            "first_changed_step": [a.first_changed_step if a else -1 for a in alignments],
            "copied_share": [a.copied_share if a else float("nan") for a in alignments],
            "dropped_steps": [a.dropped_steps if a else 0 for a in alignments],
            "critique": [c.text for c in critiques],
            "critique_answer": [a or "" for a in answers],
            "answer_correct": [g.correct for g in graded],
            "verdict_agrees": [
                None if v is None else bool(v == ok) for v, ok in zip(verdicts, correct, strict=True)
            ],
            "status": [
                final_status(c.status, g.correct, a.dropped_steps if a else 0)
                for c, g, a in zip(critiques, graded, alignments, strict=True)
            ],
            "error": [c.error for c in critiques],
            "raw": [c.raw for c in critiques],
            "from_cache": [c.from_cache for c in critiques],
        }
    )


def summarise(frame: pd.DataFrame, critic_stats: dict) -> dict:
    """What the manifest records and the log line says: statuses, cases, agreement, calls and cache hits."""
    statuses = Counter(frame["status"])
    agrees = frame["verdict_agrees"].dropna()
    summary = {
        "status_counts": dict(statuses),
        "case_counts": dict(Counter(frame["case"])),
        "verdict_agreement": round(float(agrees.mean()), 4) if len(agrees) else None,
        "mean_copied_share": round(float(frame["copied_share"].mean()), 4)
        if frame["copied_share"].notna().any()
        else None,
        "critic": critic_stats,
    }
    parts = ", ".join(f"{k} {v}" for k, v in statuses.most_common())
    calls = critic_stats.get("calls", 0)
    hits = critic_stats.get("cache_hits", 0)
    line = f"{len(frame)} critiques ({parts}); {calls} critic calls, {hits} from cache"
    errors = critic_stats.get("backend_errors") or {}
    if errors:
        line += "; failures: " + ", ".join(f"{k} x{v}" for k, v in errors.items())
    summary["summary"] = line
    return summary


def check_failures(frame: pd.DataFrame, cfg: CriticConfig, summary: dict) -> None:
    """Stop the stage when more requests failed than
    critic.max_failed_share allows; finished ones stay cached."""
    failed = int((frame["status"] == CritiqueStatus.FAILED).sum())
    if failed and failed / len(frame) > cfg.max_failed_share:
        example = frame.loc[frame["status"] == CritiqueStatus.FAILED, "error"].iloc[0]
        where = cfg.openai.base_url if cfg.kind == "openai" else cfg.model
        raise CriticUnavailableError(
            f"{failed} of {len(frame)} critic requests to {where} failed ({summary['summary']}); "
            f"first error: {example}. Finished critiques are cached in {critique_cache_dir(cfg)} "
            "and will not be requested again: check the critic server (critic.openai.base_url, "
            "critic.model), then rerun the flow. To accept some failures instead, raise "
            f"critic.max_failed_share (now {cfg.max_failed_share})."
        )
