"""Retry discipline of the transport, against the local endpoint.

- never re-send once the first byte of a reply reached the caller;
- a bounded number of retries, with exponential backoff and jitter, or ``Retry-After``;
- a bounded total wait (the retry budget);
- ``max_retries=0`` disables retries;
- every retry is logged once at DEBUG, with no credentials.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest

from langchain_dbx_serving import (
    ConfigurationError,
    DatabricksServingError,
    RateLimitError,
    ServiceUnavailableError,
    ServingConnectionError,
    StreamInterruptedError,
)
from langchain_dbx_serving.auth import TokenCredentials
from langchain_dbx_serving.testing import Fault, LocalEndpoint, Reply
from langchain_dbx_serving.transport import client as transport_client
from langchain_dbx_serving.transport.client import Transport
from tests.support.serving import queue

BODY = {"messages": [{"role": "user", "content": "hi"}]}
STREAM_BODY = {**BODY, "stream": True}
UNAVAILABLE = Reply.error(503, "TEMPORARILY_UNAVAILABLE", "scaling up")


def rate_limited(retry_after: float | None = None) -> Any:
    return Reply.error(429, "REQUEST_LIMIT_EXCEEDED", "slow down", retry_after=retry_after)


def transport(ep: LocalEndpoint, **settings: Any) -> tuple[Transport, list[float], str]:
    """A transport on ``ep`` whose backoff sleeps are recorded instead of slept."""
    delays: list[float] = []
    made = Transport(lambda: TokenCredentials(ep.token), sleep=delays.append, **settings)
    return made, delays, ep.invocations_url("chat")


@pytest.fixture(autouse=True)
def real_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """The real schedule (0.5 s, 1 s, ...): sleeps are recorded, not slept, in these tests."""
    monkeypatch.setattr(transport_client, "_INITIAL_BACKOFF", 0.5)


def test_backoff_doubles_with_jitter_and_is_capped(faulty: LocalEndpoint) -> None:
    faulty.faults.add(*[UNAVAILABLE] * 7)
    queue(faulty, "finally")
    client, delays, url = transport(faulty, max_retries=7)

    reply = client.post_json(url, BODY, endpoint="chat")

    assert reply["choices"][0]["message"]["content"] == "finally"
    assert len(faulty.requests) == 8
    ceilings = [0.5, 1, 2, 4, 8, 8, 8]
    assert len(delays) == len(ceilings)
    for delay, ceiling in zip(delays, ceilings, strict=True):
        assert ceiling / 2 <= delay <= ceiling


def test_retry_after_is_honoured_as_given(faulty: LocalEndpoint) -> None:
    faulty.faults.add(rate_limited(2), rate_limited(0.5))
    queue(faulty, "ok")
    client, delays, url = transport(faulty)

    client.post_json(url, BODY, endpoint="chat")

    assert delays == [2.0, 0.5]


def test_the_retry_budget_bounds_the_total_wait(faulty: LocalEndpoint) -> None:
    faulty.faults.add(*[rate_limited(2)] * 5)
    client, delays, url = transport(faulty, max_retries=10, retry_budget=5)

    with pytest.raises(RateLimitError) as info:
        client.post_json(url, BODY, endpoint="chat")

    assert delays == [2.0, 2.0]  # a third wait would make 6 s > 5 s
    assert len(faulty.requests) == 3
    assert "exceeds the 5s retry budget" in str(info.value)
    assert info.value.retry_after == 2.0  # the caller can still schedule its own retry


@pytest.mark.parametrize(
    ("entry", "error"),
    [
        (rate_limited(), RateLimitError),
        (UNAVAILABLE, ServiceUnavailableError),
        (Fault.reset(), ServingConnectionError),
    ],
    ids=["429", "503", "reset"],
)
def test_max_retries_zero_disables_retries(
    faulty: LocalEndpoint, entry: Any, error: type[Exception]
) -> None:
    faulty.faults.add(entry)
    queue(faulty, "never sent")
    client, delays, url = transport(faulty, max_retries=0)

    with pytest.raises(error):
        client.post_json(url, BODY, endpoint="chat")

    assert len(faulty.requests) == 1
    assert delays == []


@pytest.mark.parametrize(
    "entry",
    [
        Reply.error(500, "INTERNAL_ERROR", "model crashed"),
        Reply.error(502, "BAD_GATEWAY", "upstream", format="html"),
        Reply.error(504, "GATEWAY_TIMEOUT", "upstream timed out", format="html"),
        Reply.error(400, "INVALID_PARAMETER_VALUE", "bad temperature"),
        Reply.error(401, "UNAUTHENTICATED", "Invalid access token."),
        Reply.error(403, "PERMISSION_DENIED", "no CAN QUERY"),
        Reply.error(404, "RESOURCE_DOES_NOT_EXIST", "gone"),
        Fault.stall(),  # the request reached a slow model: re-sending would run it twice
    ],
    ids=["500", "502", "504", "400", "401", "403", "404", "read-timeout"],
)
def test_failures_that_may_have_run_the_model_or_cannot_change_are_not_retried(
    faulty: LocalEndpoint, entry: Any
) -> None:
    faulty.faults.add(entry)
    queue(faulty, "never sent")
    client, delays, url = transport(faulty, timeout=0.3)

    with pytest.raises(DatabricksServingError):
        client.post_json(url, BODY, endpoint="chat")

    assert len(faulty.requests) == 1
    assert delays == []


def test_a_stream_is_never_resent_once_events_reached_the_caller(faulty: LocalEndpoint) -> None:
    queue(faulty, Reply.text(["a ", "b ", "c ", "d"]))
    faulty.faults.add(Fault.drop(after=2))
    client, delays, url = transport(faulty, max_retries=5)
    received: list[str] = []

    with pytest.raises(StreamInterruptedError):
        for data in client.stream(url, STREAM_BODY, endpoint="chat"):
            received.append(data)

    assert len(received) == 2
    assert len(faulty.requests) == 1
    assert delays == []


def test_a_whole_reply_cut_mid_body_is_not_resent(faulty: LocalEndpoint) -> None:
    queue(faulty, "an answer that is cut half-way")
    faulty.faults.add(Fault.drop())
    client, delays, url = transport(faulty, max_retries=5)

    with pytest.raises(StreamInterruptedError):
        client.post_json(url, BODY, endpoint="chat")

    assert len(faulty.requests) == 1
    assert delays == []


def test_errors_before_the_first_byte_of_a_stream_are_retried(faulty: LocalEndpoint) -> None:
    queue(faulty, Reply.text(["a ", "b"]))
    faulty.faults.add(rate_limited(0), Fault.reset(), UNAVAILABLE)
    client, delays, url = transport(faulty)

    events = list(client.stream(url, STREAM_BODY, endpoint="chat"))

    assert events[-1] == "[DONE]"
    assert len(faulty.requests) == 4
    assert len(delays) == 3


def test_every_retry_is_logged_once_at_debug_without_the_token(
    faulty: LocalEndpoint, caplog: pytest.LogCaptureFixture
) -> None:
    faulty.faults.add(rate_limited(), UNAVAILABLE, Fault.reset())
    queue(faulty, "ok")
    client, _, url = transport(faulty)

    with caplog.at_level(logging.DEBUG):
        client.post_json(url, BODY, endpoint="chat")

    retries = [r for r in caplog.records if r.name == "langchain_dbx_serving"]
    assert [r.levelno for r in retries] == [logging.DEBUG] * 3
    messages = [r.getMessage() for r in retries]
    assert "429" in messages[0] and "(retry 1 of 3)" in messages[0]
    assert "503" in messages[1] and "(retry 2 of 3)" in messages[1]
    assert "Connection reset" in messages[2] and "(retry 3 of 3)" in messages[2]
    assert faulty.token not in caplog.text  # httpx's and httpcore's DEBUG logs included


async def test_async_calls_follow_the_same_discipline(
    faulty: LocalEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transport_client, "_INITIAL_BACKOFF", 0.001)  # asyncio.sleep is real
    faulty.faults.add(rate_limited(0), Fault.reset(), UNAVAILABLE)
    queue(faulty, "ok", Reply.text(["a ", "b ", "c"]))
    client, _, url = transport(faulty)

    reply = await client.apost_json(url, BODY, endpoint="chat")
    assert reply["choices"][0]["message"]["content"] == "ok"
    assert len(faulty.requests) == 4

    faulty.faults.add(Fault.drop(after=1))
    with pytest.raises(StreamInterruptedError):
        async for _ in client.astream(url, STREAM_BODY, endpoint="chat"):
            pass
    assert len(faulty.requests) == 5  # not re-sent

    faulty.faults.add(rate_limited())
    no_retries, _, _ = transport(faulty, max_retries=0)
    with pytest.raises(RateLimitError):
        await no_retries.apost_json(url, BODY, endpoint="chat")
    assert len(faulty.requests) == 6
    await client.aclose()
    await no_retries.aclose()


def test_a_url_without_http_scheme_fails_at_once_without_retries() -> None:
    client = Transport(lambda: TokenCredentials("t"), sleep=pytest.fail)

    with pytest.raises(ConfigurationError, match="https://"):
        client.post_json("ftp://adb-1.azuredatabricks.net/x", BODY)


def test_an_injected_client_is_used_as_it_is_and_still_retried(faulty: LocalEndpoint) -> None:
    faulty.faults.add(UNAVAILABLE)
    queue(faulty, "ok")
    with httpx.Client(timeout=5) as http:
        client = Transport(lambda: TokenCredentials(faulty.token), http_client=http, sleep=bool)
        reply = client.post_json(faulty.invocations_url("chat"), BODY, endpoint="chat")
        assert not http.is_closed
    assert reply["choices"][0]["message"]["content"] == "ok"
    assert len(faulty.requests) == 2
