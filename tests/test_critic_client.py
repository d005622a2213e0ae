"""The OpenAI-compatible critic client on its failure paths, against a real local HTTP server
that fails on purpose: retries, timeouts, deadlines, bad bodies, the concurrency bound, the API
key, and the critique stage end to end."""

import asyncio
import json
import logging
import re
import time

import pandas as pd
import pytest
from failing_openai_server import FailingOpenAIServer, closed_port_url, marker

from sdfb.config import CriticConfig, GradingConfig, OpenAIEndpointConfig
from sdfb.critic import CriticUnavailableError, check_failures, critique_rollouts, make_critic, summarise
from sdfb.critic.cache import CritiqueCache
from sdfb.critic.client import ChatResult, Endpoint, chat_many

QUESTION = (
    "Sara has 5 pens. She buys 7 more pens. She gives 3 pens to a friend. How many pens does Sara have now?"
)
STEPS = ["5 + 7 = 12", "12 - 3 = 9"]
WRONG_ATTEMPT = "Step 1: 5 + 7 = 12\nStep 2: 12 - 3 = 8\nAnswer: 8"
CRITIC_REPLY = (
    "<case>D</case>\n<first_error>2</first_error>\n<step_1>5 + 7 = 12</step_1>\n"
    "<step_2>12 - 3 = 9</step_2>\n<answer>9</answer>"
)
KEY = "sk-test-DO-NOT-LEAK-4242"


@pytest.fixture
def start_server():
    """start_server(**kwargs) -> a running FailingOpenAIServer, stopped when the test ends."""
    started: list[FailingOpenAIServer] = []

    def start(**kwargs) -> FailingOpenAIServer:
        server = FailingOpenAIServer(**kwargs).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def endpoint(base_url: str, **overrides) -> Endpoint:
    settings = {
        "model": "m",
        "api_key": KEY,
        "concurrency": 4,
        "max_retries": 1,
        "request_timeout": 2.0,
        "deadline": 5.0,
        **overrides,
    }
    return Endpoint(base_url=base_url, **settings)


def conversation(text: str = "hello") -> list[dict[str, str]]:
    return [{"role": "system", "content": "be brief"}, {"role": "user", "content": text}]


def ask(ep: Endpoint, *texts: str, on_done=None):
    return chat_many([conversation(t) for t in texts or ("hello",)], ep, {"max_tokens": 16}, on_done)


# --- retries ---


def test_a_500_then_ok_succeeds_after_one_retry_with_two_http_attempts_for_one_request(start_server):
    server = start_server(script=["500", "ok"], reply="fine", completion_tokens=5)
    [result], stats = ask(endpoint(server.base_url))
    assert (result.text, result.error, result.completion_tokens) == ("fine", "", 5)
    assert (stats.requests, stats.http_attempts) == (1, 2)
    assert stats.as_dict()["retries"] == 1
    assert stats.as_dict()["http_statuses"] == {"200": 1, "500": 1}
    assert stats.errors == {}
    assert server.modes() == ["500", "ok"]


def test_a_429_with_retry_after_is_retried_and_then_succeeds(start_server):
    server = start_server(script=["429", "ok"], reply="fine")
    [result], stats = ask(endpoint(server.base_url))
    assert result == ChatResult("fine", "", result.seconds, 7)
    assert stats.as_dict()["http_statuses"] == {"200": 1, "429": 1}
    assert server.count == 2


def test_a_persistent_500_fails_only_its_request_and_on_done_keeps_every_finished_one(start_server):
    server = start_server(reply="fine")
    finished: list[tuple[int, ChatResult]] = []
    results, stats = ask(
        endpoint(server.base_url, max_retries=1),
        "first",
        f"second {marker('500')}",
        "third",
        on_done=lambda i, r: finished.append((i, r)),
    )
    assert [r.text for r in results] == ["fine", None, "fine"]
    assert results[1].error.startswith("HTTP 500")
    assert "failed on purpose" in results[1].error
    assert stats.errors == {"http_500": 1}
    assert stats.as_dict()["http_statuses"] == {"200": 2, "500": 2}  # the failing one: first try + 1 retry
    assert server.count == 4
    # every request reported as it finished; the ok ones before the retried failure was given up
    assert dict(finished) == dict(enumerate(results))
    assert len(finished) == 3
    assert finished[-1][0] == 1


def test_a_server_that_closes_the_connection_without_answering_is_retried_then_a_connection_failure(
    start_server,
):
    server = start_server(default="drop")
    [result], stats = ask(endpoint(server.base_url, max_retries=1))
    assert result.text is None
    assert result.error.startswith("could not connect")
    assert stats.errors == {"connection": 1}
    assert (stats.http_attempts, server.count) == (2, 2)
    assert not stats.http_statuses


# --- timeouts and deadlines ---


def test_a_server_stalling_past_the_request_timeout_on_every_attempt_fails_with_a_timeout(start_server):
    server = start_server(default="slow")
    [result], stats = ask(endpoint(server.base_url, request_timeout=0.3, max_retries=1, deadline=10.0))
    assert result.text is None
    assert "timed out" in result.error
    assert "critic.openai.request_timeout_seconds" in result.error
    assert stats.errors == {"timeout": 1}
    assert stats.http_attempts == 2
    assert server.count == 2
    # Both attempts are still stalled at the server (30 s each) when the result comes back: the client gave up
    # on them rather than waiting for the stall to end (a waiting client would have got the ok reply after
    # it).
    assert server.in_flight == 2


def test_a_deadline_shorter_than_the_retries_stops_the_request_at_the_deadline(start_server):
    server = start_server(default="slow")
    [result], stats = ask(endpoint(server.base_url, request_timeout=1.5, max_retries=2, deadline=0.4))
    assert result.text is None
    assert "deadline" in result.error
    assert "critic.openai.deadline_seconds" in result.error
    assert stats.errors == {"deadline": 1}
    # Cut off inside the first attempt, whose own 1.5 s timeout would have been a `timeout` followed by a
    # retry: no retry was sent. (On a loaded machine the 0.4 s may pass before that attempt reaches the
    # server: at most one.)
    assert stats.http_attempts <= 1
    assert server.count <= 1


# --- bodies that are not chat completions ---


@pytest.mark.parametrize(
    ("mode", "sdk_detail"),
    [
        # text/html that is not JSON: the SDK hands back the body as a str instead of raising
        ("garbage", "'str' object has no attribute 'choices'"),
        # JSON without `choices`: the SDK builds a ChatCompletion without validating it, so choices is None
        ("not_chat", "'NoneType' object is not subscriptable"),
    ],
)
def test_a_200_that_is_not_a_chat_completion_is_a_failed_request_and_is_not_retried(
    start_server, mode, sdk_detail
):
    server = start_server(default=mode)
    finished = []
    [result], stats = ask(endpoint(server.base_url, max_retries=2), on_done=lambda i, r: finished.append(i))
    assert result.text is None
    assert result.error.startswith("the reply is not a chat completion")
    assert sdk_detail in result.error
    assert stats.errors == {"invalid_response": 1}
    assert stats.as_dict()["http_statuses"] == {"200": 1}
    assert server.count == 1
    assert finished == [0]


def test_an_empty_message_content_is_an_empty_reply_not_a_failure(start_server):
    server = start_server(default="empty")
    [result], stats = ask(endpoint(server.base_url))
    assert (result.text, result.error, result.completion_tokens) == ("", "", 7)
    assert stats.errors == {}


# --- endpoint down ---


def test_an_endpoint_with_nothing_listening_fails_every_request_with_a_connection_error_not_a_timeout():
    results, stats = ask(endpoint(closed_port_url(), max_retries=1), "a", "b", "c")
    assert [r.text for r in results] == [None, None, None]
    assert all(r.error.startswith("could not connect") for r in results), [r.error for r in results]
    # A refused connection fails at once: waiting on the 2 s request timeout or the 5 s deadline would have
    # ended the requests as `timeout` or `deadline` instead.
    assert stats.errors == {"connection": 3}
    assert stats.http_attempts == 6  # each request retried once
    assert not stats.http_statuses


# --- concurrency ---


class HoldsUntilInFlight(FailingOpenAIServer):
    """Holds every ok answer until `wanted` requests have been in flight at once (or `patience` seconds
    pass), then `linger` seconds more, so a client that keeps that many in flight is seen doing so
    however loaded the machine is, and one that sends more has its extra requests arrive while the
    first are held. Overrides `_wait` only."""

    def __init__(self, wanted: int, patience: float = 20.0, linger: float = 0.2, **kwargs):
        super().__init__(**kwargs)
        self.wanted = wanted
        self.patience = patience
        self.linger = linger

    def _wait(self, seconds: float) -> None:
        give_up = time.monotonic() + self.patience  # bounds the hold; nothing is measured
        while self.max_in_flight < self.wanted and time.monotonic() < give_up:
            if self._stop.wait(0.01):
                return
        self._stop.wait(self.linger)


def test_no_more_requests_are_in_flight_than_the_concurrency_bound_and_the_bound_is_used():
    with HoldsUntilInFlight(wanted=3, reply="fine") as server:
        generous = endpoint(server.base_url, concurrency=3, request_timeout=60.0, deadline=120.0)
        results, stats = ask(generous, *[f"q{i}" for i in range(9)])
    assert [r.text for r in results] == ["fine"] * 9
    assert stats.errors == {}
    assert server.count == 9
    # The bound is reached (three held at once) and never passed while they were held or after.
    assert server.max_in_flight == 3


def test_chat_many_called_from_inside_a_running_event_loop_still_returns_results(start_server):
    server = start_server(reply="fine")

    async def caller():
        return chat_many([conversation()], endpoint(server.base_url), {})

    [result], stats = asyncio.run(caller())
    assert result.text == "fine"
    assert stats.requests == 1


# --- the API key ---


def test_the_api_key_is_sent_as_a_bearer_token_and_never_appears_in_errors_stats_or_logs(
    start_server, caplog
):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="sdfb")
    server = start_server(reply="fine")
    modes = ["ok", "500", "429", "garbage", "not_chat", "drop"]
    results, stats = ask(
        endpoint(server.base_url, max_retries=1, request_timeout=10.0), *[marker(m) for m in modes]
    )
    down_results, down_stats = ask(endpoint(closed_port_url(), max_retries=0), "hello")
    slow = start_server(default="slow")
    slow_results, slow_stats = ask(endpoint(slow.base_url, max_retries=0, request_timeout=0.2), "hello")

    assert server.authorizations and set(server.authorizations) == {f"Bearer {KEY}"}
    assert set(slow.authorizations) == {f"Bearer {KEY}"}
    assert [r.text is None for r in results] == [
        False,
        True,
        True,
        True,
        True,
        True,
    ]  # a marker fails every try
    assert stats.errors == {"http_500": 1, "http_429": 1, "invalid_response": 2, "connection": 1}
    everything = [*results, *down_results, *slow_results]
    assert all(KEY not in r.error for r in everything)
    assert KEY not in repr(everything)
    for s in (stats, down_stats, slow_stats):
        assert KEY not in repr(s)
        assert KEY not in json.dumps(s.as_dict())
    assert caplog.records, "the SDK logs at DEBUG; nothing captured means the check below checks nothing"
    assert KEY not in caplog.text
    assert all(KEY not in r.getMessage() for r in caplog.records)


def test_without_an_api_key_a_placeholder_bearer_token_is_sent(start_server):
    server = start_server()
    ask(endpoint(server.base_url, api_key=None))
    assert server.authorizations == ["Bearer EMPTY"]


# --- the critique stage end to end ---


def critic_config(base_url: str, tmp_path, **overrides) -> CriticConfig:
    endpoint_cfg = OpenAIEndpointConfig(
        base_url=base_url, concurrency=2, max_retries=1, request_timeout_seconds=2.0, deadline_seconds=5.0
    )
    return CriticConfig(kind="openai", model="m", openai=endpoint_cfg, cache_dir=str(tmp_path), **overrides)


def tables():
    """p1 is answered by the server; p2's question carries a marker that makes the server answer 500."""
    problems = pd.DataFrame(
        {
            "problem_id": ["p1", "p2"],
            "question": [QUESTION, f"{QUESTION} {marker('500')}"],
            "solution": ["Sara has 12, then 9. The answer is 9."] * 2,
            "answer": ["9", "9"],
            "steps": [STEPS, STEPS],
        }
    )
    rollouts = pd.DataFrame(
        {
            "problem_id": ["p1", "p1", "p2", "p1"],
            "sample_index": [0, 1, 0, 2],
            "completion_text": [WRONG_ATTEMPT, WRONG_ATTEMPT, WRONG_ATTEMPT, "Answer: 9"],
            "finish_reason": ["stop"] * 4,
            "completion_ids": [[1, 2, 3], [1, 2, 4], [5, 6], [7]],
        }
    )
    grades = pd.DataFrame(
        {
            "problem_id": ["p1", "p1", "p2", "p1"],
            "sample_index": [0, 1, 0, 2],
            "correct": [False, False, False, True],
        }
    )
    return rollouts, problems, grades


def first_pass(server: FailingOpenAIServer, tmp_path, **overrides):
    cfg = critic_config(server.base_url, tmp_path, **overrides)
    critic = make_critic(cfg, api_key=KEY)
    table = critique_rollouts(*tables(), critic, GradingConfig(workers=1))
    return cfg, critic, table


def test_critique_rollouts_marks_failed_requests_failed_caches_replies_and_asks_again_only_for_failures(
    start_server, tmp_path
):
    server = start_server(reply=CRITIC_REPLY)
    cfg, critic, table = first_pass(server, tmp_path)

    assert list(table["status"]) == ["ok", "ok", "failed", "no_steps"]
    assert list(table["case"]) == ["D", "D", "none", "none"]
    assert list(table["first_wrong_step"]) == [2, 2, -1, -1]
    assert table.at[0, "critique"] == "Step 1: 5 + 7 = 12\nStep 2: 12 - 3 = 9\nAnswer: 9"
    assert list(table["answer_correct"]) == [True, True, False, False]
    assert list(table["error"])[:2] == ["", ""]
    assert table.at[2, "error"].startswith("HTTP 500")
    assert table.at[2, "critique"] == ""
    assert "Step k" in table.at[3, "error"]
    stats = critic.stats()
    assert (stats["calls"], stats["cache_hits"]) == (3, 0)
    assert stats["backend_errors"] == {"http_500": 1}
    assert (
        server.count == 4
    )  # two ok, the failing one twice (max_retries=1), none for the attempt without steps
    assert len(CritiqueCache(tmp_path)) == 2  # replies are cached, failures never

    server.force = "ok"  # the server has recovered
    again = critique_rollouts(*tables(), critic, GradingConfig(workers=1))
    assert list(again["status"]) == ["ok", "ok", "ok", "no_steps"]
    assert list(again["from_cache"]) == [True, True, False, False]
    assert (critic.stats()["calls"], critic.stats()["cache_hits"]) == (1, 2)
    assert server.count == 5
    assert marker("500") in server.received[-1].last_user_message  # only the previously failed row was asked
    assert len(CritiqueCache(tmp_path)) == 3


def test_check_failures_names_the_endpoint_and_the_setting_only_when_the_failed_share_is_exceeded(
    start_server, tmp_path
):
    server = start_server(reply=CRITIC_REPLY)
    cfg, critic, table = first_pass(server, tmp_path, max_failed_share=0.05)
    summary = summarise(table, critic.stats())
    assert "failures: http_500 x1" in summary["summary"]

    with pytest.raises(CriticUnavailableError) as raised:
        check_failures(table, cfg, summary)  # 1 of 4 failed: 0.25 > 0.05
    message = str(raised.value)
    assert server.base_url in message
    assert "critic.max_failed_share" in message
    assert "HTTP 500" in message
    assert KEY not in message

    check_failures(table, critic_config(server.base_url, tmp_path, max_failed_share=0.25), summary)
    check_failures(table, critic_config(server.base_url, tmp_path, max_failed_share=0.5), summary)


def test_an_attempt_without_step_lines_gets_no_steps_and_makes_no_request(start_server, tmp_path):
    server = start_server(reply=CRITIC_REPLY)
    rollouts, problems, grades = tables()
    only = rollouts.iloc[[3]].reset_index(drop=True)
    critic = make_critic(critic_config(server.base_url, tmp_path), api_key=KEY)
    table = critique_rollouts(only, problems, grades, critic, GradingConfig(workers=1))
    assert list(table["status"]) == ["no_steps"]
    assert server.count == 0
    assert critic.stats()["calls"] == 0


def test_make_critic_sends_the_key_from_the_configured_environment_variable_and_the_decoding(
    start_server, tmp_path, monkeypatch
):
    monkeypatch.setenv("SDFB_TEST_CRITIC_KEY", "sk-from-the-environment")
    server = start_server(reply=CRITIC_REPLY)
    base = critic_config(server.base_url, tmp_path)
    cfg = base.model_copy(
        update={"openai": base.openai.model_copy(update={"api_key_env": "SDFB_TEST_CRITIC_KEY"})}
    )
    rollouts, problems, grades = tables()
    table = critique_rollouts(
        rollouts.iloc[[0]], problems, grades, make_critic(cfg), GradingConfig(workers=1)
    )
    assert list(table["status"]) == ["ok"]
    [received] = server.received
    assert received.authorization == "Bearer sk-from-the-environment"
    assert received.body["model"] == "m"
    d = cfg.decoding
    assert {k: received.body[k] for k in ("temperature", "top_p", "max_tokens", "seed")} == {
        "temperature": d.temperature,
        "top_p": d.top_p,
        "max_tokens": d.max_tokens,
        "seed": d.seed,
    }
    assert re.search(r"<step_2>12 - 3 = 8</step_2>", received.last_user_message)


def test_the_critique_task_writes_failed_rows_below_the_threshold_and_redoes_only_them_on_the_next_run(
    start_server, tmp_path
):
    from stage_tables import write_critique_inputs

    from sdfb.config import build_config
    from sdfb.store import read_manifest
    from tasks.critique import critique

    server = start_server(reply=CRITIC_REPLY)
    inputs = write_critique_inputs(tmp_path, *tables())
    critic = critic_config(server.base_url, tmp_path / "cache", max_failed_share=0.5).model_dump()
    cfg = build_config({"critic": critic})

    def run():
        return critique.fn(
            cfg, str(tmp_path / "run"), 1, inputs["rollouts"], inputs["problems"], inputs["grades"]
        )

    path = run()  # 1 failed of 4: below the share, so the table is written with the failure recorded
    manifest = read_manifest(path)
    assert manifest["status_counts"]["failed"] == 1 and manifest["critic"]["backend_errors"] == {
        "http_500": 1
    }
    assert "failures: http_500 x1" in manifest["summary"]
    asked = server.count

    server.force = "ok"
    run()  # the finished stage had failures: computed again, asking only the failed row
    manifest = read_manifest(path)
    assert "failed" not in manifest["status_counts"]
    assert (manifest["critic"]["calls"], manifest["critic"]["cache_hits"]) == (1, 2)
    assert server.count == asked + 1

    run()  # finished without failures: reused, nothing asked
    assert server.count == asked + 1


@pytest.mark.flow
def test_the_critique_task_is_retried_by_prefect_when_the_endpoint_was_down_and_asks_only_what_failed(
    start_server, prefect_server, tmp_path
):
    """A real task run under a real flow: the first try finds the endpoint answering 500 to everything
    (after the client's own retry), the task's retry finds it back up; nothing else is retried."""
    from prefect import flow
    from stage_tables import write_critique_inputs

    from sdfb.config import build_config
    from sdfb.store import read_manifest
    from tasks.critique import critique

    server = start_server(reply=CRITIC_REPLY)
    server.force = "500"
    inputs = write_critique_inputs(tmp_path, *tables())
    cfg = build_config({"critic": critic_config(server.base_url, tmp_path / "cache").model_dump()})
    retried = critique.with_options(retry_delay_seconds=0)
    attempts = []

    def back_up(task, task_run, state):  # runs before each retry: the endpoint recovers meanwhile
        attempts.append(state.name)
        server.force = "ok"
        return True

    @flow
    def one_stage():
        return retried.with_options(retry_condition_fn=_then(back_up))(
            cfg, str(tmp_path / "run"), 1, inputs["rollouts"], inputs["problems"], inputs["grades"]
        )

    manifest = read_manifest(one_stage())
    assert attempts == ["Failed"]
    assert "failed" not in manifest["status_counts"]


def _then(action):
    """The task's own retry condition, then `action` when it says retry."""
    from tasks.critique import critic_unavailable

    return lambda task, task_run, state: (
        critic_unavailable(task, task_run, state) and action(task, task_run, state)
    )


def test_only_an_unavailable_critic_is_retried():
    from prefect.states import Completed, Failed

    from sdfb.critic import CriticUnavailableError
    from tasks.critique import critic_unavailable

    assert critic_unavailable(None, None, Failed(data=CriticUnavailableError("down")))
    assert not critic_unavailable(None, None, Failed(data=ValueError("bad table")))
    assert not critic_unavailable(None, None, Completed(data="path"))
