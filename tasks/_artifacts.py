"""Prefect artifact keys: every key a task publishes is built here, from the run's name,
its condition and what the artifact holds, so two conditions (or checkpoints) of one recipe
never overwrite each other's artifact."""

import re


def artifact_key(*parts: str) -> str:
    """`parts` joined by dashes in Prefect's key alphabet (lowercase letters, digits, dashes): `artifact_key(
    "demo", "step_aligned", "results")` is `demo-step-aligned-results`."""
    key = re.sub(r"[^a-z0-9]+", "-", "-".join(parts).lower()).strip("-")
    if not key:
        raise ValueError(f"an artifact key needs letters or digits, got {parts}")
    return key
