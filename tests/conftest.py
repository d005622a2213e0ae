"""Test fixtures: offline, CPU-only. Prefect gets a temporary home and one session-scoped test server."""

import os
import tempfile
from pathlib import Path

import pytest

_HOME = Path(tempfile.mkdtemp(prefix="sdfb-tests-"))
os.environ["PREFECT_HOME"] = str(_HOME / "prefect")
os.environ.setdefault("SDFB_CACHE", str(Path.home() / ".cache" / "sdfb"))
os.environ["DO_NOT_TRACK"] = "1"
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["TRL_EXPERIMENTAL_SILENCE"] = "1"


@pytest.fixture(scope="session")
def prefect_server():
    """One real (temporary) Prefect server for every flow test in the session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        yield


@pytest.fixture(scope="session")
def tiny_model_path() -> Path:
    """The locally built ~1M-parameter Qwen2 model with a byte-level
    BPE tokenizer (cached across sessions)."""
    from sdfb.models import ensure_tiny

    return ensure_tiny()


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model_path):
    from sdfb.models import load_tokenizer

    return load_tokenizer("tiny")


@pytest.fixture(scope="session")
def api_url(prefect_server) -> str:
    """The session Prefect server's API, for tests that start `sdfb run` as a process."""
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value()
