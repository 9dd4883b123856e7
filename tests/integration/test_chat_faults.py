"""Bad input and faults give clear typed errors, never a KeyError, a silent truncation or a hang."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator

import pytest
from langchain_core.load import dumpd

from langchain_dbx_serving import (
    AgentError,
    AuthenticationError,
    ChatDatabricksServing,
    ConfigurationError,
    EndpointNotFoundError,
    MalformedResponseError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    ServiceUnavailableError,
    ServingConnectionError,
    ServingTimeoutError,
    StreamInterruptedError,
)
from langchain_dbx_serving.testing import Fault, LocalEndpoint, RawReply, Reply
from langchain_dbx_serving.transport import client as transport_client
from tests.support.serving import queue


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep exponential backoff but scale it down, so retry tests take milliseconds."""
    monkeypatch.setattr(transport_client, "_INITIAL_BACKOFF", 0.001)


@pytest.fixture(autouse=True)
def no_faults(serving: LocalEndpoint) -> Iterator[None]:
    """Faults planned by a test never reach the next one."""
    serving.faults.clear()
    yield
    serving.faults.clear()


def test_unknown_endpoint_names_the_endpoint(serving) -> None:
    llm = ChatDatabricksServing(endpoint="no-such-endpoint", host=serving.host, token=serving.token)
    with pytest.raises(EndpointNotFoundError) as info:
        llm.invoke("hi")
    err = info.value
    assert (err.status_code, err.error_code, err.endpoint) == (
        404,
        "RESOURCE_DOES_NOT_EXIST",
        "no-such-endpoint",
    )
    assert "no-such-endpoint" in str(err)
    assert "check the endpoint name" in str(err)


def test_bad_token_is_an_authentication_error_without_the_token(serving) -> None:
    secret = "wrong-token-value-123456"
    llm = ChatDatabricksServing(endpoint="chat", host=serving.host, token=secret)
    with pytest.raises(AuthenticationError) as info:
        llm.invoke("hi")
    assert info.value.status_code == 401
    assert "token" in str(info.value)
    assert secret not in str(info.value) and secret not in repr(info.value)
    assert len(serving.requests) == 1  # a 401 is not retried


def test_rate_limit_is_retried_honouring_retry_after(serving, make_chat) -> None:
    queue(
        serving,
        Reply.error(429, "REQUEST_LIMIT_EXCEEDED", "Too many requests", retry_after=0),
        Reply.text("finally"),
    )
    assert make_chat().invoke("hi").text == "finally"
    assert len(serving.requests) == 2


def test_rate_limit_without_retries_raises_with_retry_after(serving, make_chat) -> None:
    queue(serving, Reply.error(429, "REQUEST_LIMIT_EXCEEDED", "Too many", retry_after=7))
    with pytest.raises(RateLimitError) as info:
        make_chat(max_retries=0).invoke("hi")
    assert info.value.retry_after == 7.0
    assert info.value.error_code == "REQUEST_LIMIT_EXCEEDED"
    assert len(serving.requests) == 1


def test_burst_of_503_is_retried_then_gives_up(serving, make_chat) -> None:
    unavailable = Reply.error(503, "TEMPORARILY_UNAVAILABLE", "scaling up")
    queue(serving, unavailable, unavailable, Reply.text("up"))
    assert make_chat(max_retries=2).invoke("hi").text == "up"
    queue(serving, unavailable, unavailable, unavailable)
    with pytest.raises(ServiceUnavailableError) as info:
        make_chat(max_retries=2).invoke("hi")
    assert "gave up after 2 retries" in str(info.value)
    assert len(serving.requests) == 6


async def test_async_retries_too(serving, make_chat) -> None:
    queue(serving, Reply.error(429, "REQUEST_LIMIT_EXCEEDED", "slow"), Reply.text("ok"))
    assert (await make_chat().ainvoke("hi")).text == "ok"
    assert len(serving.requests) == 2


def test_server_error_is_not_retried(serving, make_chat) -> None:
    queue(serving, Reply.error(500, "INTERNAL_ERROR", "model crashed"))
    with pytest.raises(ServerError) as info:
        make_chat().invoke("hi")
    assert "model crashed" in str(info.value)
    assert len(serving.requests) == 1


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [("html", "HTML error page"), ("text", "rate of 0"), ("openai", "rate of 0")],
)
def test_every_error_body_format_gives_a_readable_message(
    serving, make_chat, fmt, expected
) -> None:
    queue(serving, Reply.error(403, "PERMISSION_DENIED", "disabled due to a rate of 0", format=fmt))
    with pytest.raises(PermissionDeniedError) as info:
        make_chat().invoke("hi")
    assert expected in str(info.value)


def test_errors_while_streaming_before_any_byte_are_retried(serving, make_chat) -> None:
    queue(serving, Reply.error(429, "REQUEST_LIMIT_EXCEEDED", "slow"), Reply.text(["a", "b"]))
    assert "".join(c.text for c in make_chat().stream("hi")) == "ab"


def test_dropped_stream_raises_with_the_partial_reply(serving, make_chat) -> None:
    queue(serving, Reply.text(["one ", "two ", "three ", "four"], cut_after=3))
    received = []
    with pytest.raises(StreamInterruptedError) as info:
        for chunk in make_chat().stream("hi"):
            received.append(chunk.text)
    assert "".join(received) == "one two "
    assert info.value.partial.text == "one two "
    assert len(serving.requests) == 1  # never re-sent once bytes reached the caller


async def test_dropped_async_stream_raises_with_the_partial_reply(serving, make_chat) -> None:
    queue(serving, Reply.text(["one ", "two ", "three"], cut_after=2))
    received = []
    with pytest.raises(StreamInterruptedError) as info:
        async for chunk in make_chat().astream("hi"):
            received.append(chunk.text)
    assert info.value.partial.text == "".join(received) == "one "
    assert len(serving.requests) == 1


def test_reset_before_the_reply_is_retried(serving, make_chat) -> None:
    serving.faults.add(Fault.reset())
    queue(serving, Reply.text(["a ", "b"]))
    assert "".join(c.text for c in make_chat().stream("hi")) == "a b"
    assert len(serving.requests) == 2


def test_cut_off_whole_reply_is_not_returned(serving, make_chat) -> None:
    queue(serving, Reply.text("a whole answer that gets cut", cut_after=1))
    with pytest.raises((StreamInterruptedError, MalformedResponseError)):
        make_chat().invoke("hi")


def test_malformed_event_names_the_event(serving, make_chat) -> None:
    good = {
        "id": "c1",
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": {"role": "assistant", "content": "ok"}}],
    }
    queue(serving, RawReply(events=[good, "{this is not json"]))
    with pytest.raises(MalformedResponseError) as info:
        list(make_chat().stream("hi"))
    assert "{this is not json" in str(info.value)


def test_malformed_whole_reply_is_a_typed_error(serving, make_chat) -> None:
    queue(serving, RawReply(body={"unexpected": "shape"}))
    with pytest.raises(MalformedResponseError):
        make_chat().invoke("hi")


def test_error_event_inside_a_stream_is_an_agent_error(serving, make_chat) -> None:
    queue(serving, Reply.text(["partial"], stream_error="guardrail blocked the answer"))
    with pytest.raises(AgentError) as info:
        list(make_chat().stream("hi"))
    assert "guardrail blocked the answer" in str(info.value)


def test_stalled_stream_hits_the_call_deadline(serving, make_chat) -> None:
    queue(serving, Reply.text(["start ", "too ", "late"]))
    serving.faults.add(Fault.stall(after=2))  # the server goes silent after two events
    received = []
    with pytest.raises(ServingTimeoutError) as info:
        for chunk in make_chat(timeout=0.3).stream("hi"):
            received.append(chunk.text)
    assert "did not finish within timeout=0.3s" in str(info.value)
    assert "waiting for the rest of the reply" in str(info.value)
    assert "".join(received) == "start "
    assert info.value.partial.text == "start "
    assert len(serving.requests) == 1  # a read timeout mid-stream is never re-sent


def test_connection_refused_is_retried_then_explained() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    llm = ChatDatabricksServing(
        endpoint="x", host=f"http://127.0.0.1:{port}", token="t", max_retries=1
    )
    with pytest.raises(ServingConnectionError) as info:
        llm.invoke("hi")
    assert f"127.0.0.1:{port}" in str(info.value)
    assert "check host=" in str(info.value)


def test_missing_host_is_a_configuration_error(monkeypatch) -> None:
    monkeypatch.delenv("DATABRICKS_HOST", raising=False)
    llm = ChatDatabricksServing(endpoint="x", token="t")
    with pytest.raises(ConfigurationError) as info:
        llm.invoke("hi")
    assert "DATABRICKS_HOST" in str(info.value)


def test_token_never_appears_in_repr_str_dumpd_logs_or_errors(serving, caplog) -> None:
    secret = serving.token
    llm = ChatDatabricksServing(endpoint="chat", host=serving.host, token=secret)
    assert secret not in repr(llm) and secret not in str(llm)
    assert secret not in str(dumpd(llm))
    queue(
        serving, Reply.error(429, "REQUEST_LIMIT_EXCEEDED", "slow"), Reply.error(404, "X", "gone")
    )
    with caplog.at_level(logging.DEBUG), pytest.raises(EndpointNotFoundError) as info:
        llm.invoke("hi")
    assert "retrying" in caplog.text
    assert secret not in caplog.text
    assert secret not in str(info.value) and secret not in repr(info.value.__dict__)
    assert secret not in repr(llm.transport.credentials)
