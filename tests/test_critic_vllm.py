"""The LLM critic against real servings of the tiny model: vLLM's OpenAI-compatible server started by the
test on 127.0.0.1 (the `openai` backend) and an in-process engine (the `vllm` backend).

The tiny model is random, so its replies are not critiques: these tests check the plumbing (one request per
attempt, statuses, raw replies kept, the cache, both backends sending the same prompt), not critique
quality. Skipped when vllm is not installed, unless SDFB_REQUIRE_VLLM=1 (set by `make test`).
"""

import json
import os
from pathlib import Path

import pandas as pd
import pytest
from stage_tables import write_critique_inputs

from sdfb.config import CriticConfig, CriticDecoding, GradingConfig, OpenAIEndpointConfig, VLLMConfig
from sdfb.critic import critique_rollouts, make_critic
from sdfb.store import manifest_path

pytestmark = pytest.mark.vllm

if os.environ.get("SDFB_REQUIRE_VLLM") != "1":
    pytest.importorskip("vllm")

QUESTION = (
    "Sara has 5 pens. She buys 7 more pens. She gives 3 pens to a friend. How many pens does Sara have now?"
)
DECODING = CriticDecoding(max_tokens=24)


@pytest.fixture(scope="module")
def server(tiny_model_path):
    from sdfb.critic.serve import vllm_server

    # A `vllm serve` argument passed through as given (the test below sees its effect in a reply).
    passthrough = ("--response-role", "critic-under-test")
    with vllm_server("tiny", served_name="tiny", max_model_len=2048, extra_args=passthrough) as base_url:
        yield base_url


def test_arguments_passed_through_reach_the_real_server(server):
    import urllib.request

    body = {"model": "tiny", "messages": [{"role": "user", "content": "2 + 2?"}], "max_tokens": 2}
    request = urllib.request.Request(
        f"{server}/chat/completions", json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        reply = json.loads(response.read())
    assert reply["choices"][0]["message"]["role"] == "critic-under-test"


@pytest.fixture(scope="module")
def tables():
    problems = pd.DataFrame(
        {
            "problem_id": ["p1", "p2"],
            "question": [
                QUESTION,
                "Tom has 4 coins. He finds 2 more coins. How many coins does Tom have now?",
            ],
            "solution": ["5 + 7 = 12 and 12 - 3 = 9. The answer is 9.", "4 + 2 = 6. The answer is 6."],
            "answer": ["9", "6"],
            "steps": [["5 + 7 = 12", "12 - 3 = 9"], ["4 + 2 = 6"]],
        }
    )
    rollouts = pd.DataFrame(
        {
            "problem_id": ["p1", "p1", "p2", "p2"],
            "sample_index": [0, 1, 0, 1],
            "completion_text": [
                "Step 1: 5 + 7 = 12\nStep 2: 12 - 3 = 8\nAnswer: 8",
                "Step 1: 5 + 7 = 12\nStep 2: 12 - 3 = 9\nAnswer: 9",
                "Step 1: 4 + 2 = 6\nAnswer: 6",
                "Four and two make six.",  # no step lines: never sent to the critic
            ],
            "finish_reason": ["stop", "stop", "stop", "stop"],
            "completion_ids": [[1, 2, 3], [1, 2, 4], [5, 6], [7]],
        }
    )
    grades = pd.DataFrame(
        {
            "problem_id": ["p1", "p1", "p2", "p2"],
            "sample_index": [0, 1, 0, 1],
            "correct": [False, True, True, True],
        }
    )
    return rollouts, problems, grades


def run(critic, tables):
    rollouts, problems, grades = tables
    return critique_rollouts(rollouts, problems, grades, critic, GradingConfig(workers=1))


def openai_critic(base_url, cache_dir, **endpoint):
    cfg = CriticConfig(
        kind="openai",
        model="tiny",
        decoding=DECODING,
        cache_dir=str(cache_dir),
        openai=OpenAIEndpointConfig(base_url=base_url, **endpoint),
    )
    return make_critic(cfg, api_key="test-key")


def test_openai_backend_asks_a_real_server_once_per_attempt_and_a_rerun_asks_nothing(
    server, tables, tmp_path
):
    critic = openai_critic(server, tmp_path)
    first = run(critic, tables)
    stats = critic.stats()
    assert stats["calls"] == 3 and stats["cache_hits"] == 0
    assert stats["backend_http_attempts"] == 3 and stats["backend_http_statuses"] == {"200": 3}
    assert first["status"].iloc[3] == "no_steps"
    # the random model does not answer in the critic's format: recorded, with its reply kept for inspection
    assert set(first["status"].iloc[:3]) <= {"malformed", "ok", "wrong_answer", "dropped_steps"}
    assert (first["error"].iloc[:3] != "").all() or (first["status"].iloc[:3] == "ok").all()
    assert not first["from_cache"].any()

    again = openai_critic(server, tmp_path)
    second = run(again, tables)
    assert again.stats()["calls"] == 0 and again.stats()["cache_hits"] == 3
    assert second["from_cache"].iloc[:3].all()
    columns = ["status", "raw", "critique", "error"]
    pd.testing.assert_frame_equal(first[columns], second[columns])


def test_a_different_decoding_setting_is_a_different_cache_entry(server, tables, tmp_path):
    run(openai_critic(server, tmp_path), tables)
    other = make_critic(
        CriticConfig(
            kind="openai",
            model="tiny",
            decoding=CriticDecoding(max_tokens=12),
            cache_dir=str(tmp_path),
            openai=OpenAIEndpointConfig(base_url=server),
        )
    )
    run(other, tables)
    assert other.stats()["calls"] == 3


def test_vllm_backend_sends_the_same_prompt_as_the_server_and_gets_the_same_greedy_reply(
    server, tables, tmp_path
):
    from sdfb.generation import release_engines

    served = run(openai_critic(server, tmp_path / "served"), tables)
    cfg = CriticConfig(
        kind="vllm",
        model="tiny",
        dtype="float32",
        decoding=DECODING,
        cache_dir=str(tmp_path / "local"),
        vllm=VLLMConfig(max_model_len=2048),
    )
    try:
        local = run(make_critic(cfg), tables)
    finally:
        release_engines()
    assert list(local["critic"].unique()) == ["vllm:tiny"]
    assert list(local["status"]) == list(served["status"])
    assert list(local["raw"]) == list(served["raw"])


@pytest.fixture(scope="module")
def stage_inputs(tables, tmp_path_factory):
    return write_critique_inputs(tmp_path_factory.mktemp("inputs"), *tables)


def test_critique_task_reads_its_key_from_a_prefect_secret_block_and_records_counts_in_the_manifest(
    prefect_server, server, stage_inputs, tmp_path
):
    from prefect import flow
    from prefect.blocks.system import Secret

    from sdfb.config import build_config
    from tasks.critique import critique

    Secret(value="sk-sdfb-test-secret").save("sdfb-critic-key", overwrite=True)
    cfg = build_config(
        {
            "critic": {
                "kind": "openai",
                "model": "tiny",
                "decoding": {"max_tokens": 24},
                "cache_dir": str(tmp_path / "cache"),
                "openai": {"base_url": server, "api_key_block": "sdfb-critic-key"},
            }
        }
    )

    @flow
    def critique_flow(run_dir: str) -> str:
        return critique(
            cfg, run_dir, 1, stage_inputs["rollouts"], stage_inputs["problems"], stage_inputs["grades"]
        )

    from tasks.critique import _api_key

    assert _api_key(cfg.critic) == "sk-sdfb-test-secret"
    first = Path(critique_flow(str(tmp_path / "run1")))
    manifest = json.loads(manifest_path(first).read_text())
    assert manifest["critic"]["calls"] == 3 and manifest["status_counts"]["no_steps"] == 1
    assert "3 critic calls" in manifest["summary"]
    # a second run folder over the same rollouts: every critique comes from the cache
    second = Path(critique_flow(str(tmp_path / "run2")))
    manifest = json.loads(manifest_path(second).read_text())
    assert manifest["critic"]["calls"] == 0 and manifest["critic"]["cache_hits"] == 3
    for path in [*tmp_path.rglob("*.json"), *tmp_path.rglob("*.parquet")]:
        assert b"sk-sdfb-test-secret" not in path.read_bytes(), path


def test_a_critic_endpoint_that_is_down_stops_the_stage_with_a_clear_error_and_writes_nothing(
    stage_inputs, tmp_path
):
    from sdfb.config import build_config
    from sdfb.critic import CriticUnavailableError
    from sdfb.critic.serve import free_port
    from tasks.critique import critique

    down = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    cfg = build_config(
        {
            "critic": {
                "kind": "openai",
                "model": "tiny",
                "cache_dir": str(tmp_path / "cache"),
                "openai": {"base_url": down, "max_retries": 1, "request_timeout_seconds": 2},
            }
        }
    )
    run_dir = tmp_path / "run"
    with pytest.raises(CriticUnavailableError, match=r"3 of 4 critic requests to .* failed") as caught:
        critique.fn(
            cfg, str(run_dir), 1, stage_inputs["rollouts"], stage_inputs["problems"], stage_inputs["grades"]
        )
    assert "connection x3" in str(caught.value) and "critic.max_failed_share" in str(caught.value)
    assert not list(run_dir.rglob("critiques.parquet*"))
