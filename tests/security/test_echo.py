"""A server that echoes the caller's credential back, in any encoding and any part of its
reply, never gets it into our errors, tracebacks, logs or callback payloads."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from langchain_dbx_serving import (
    AgentEndpoint,
    ChatDatabricksResponses,
    ChatDatabricksServing,
    DatabricksServingError,
)
from tests.security.echoes import ENCODINGS, SINKS, dapi, echo_handler, leaked_forms, tokens
from tests.security.rawserver import RawServer
from tests.security.sinks import RecordingHandler, assert_absent, every_rendering

CLASSES = {
    "chat": lambda **kw: ChatDatabricksServing(**kw),
    "responses": lambda **kw: ChatDatabricksResponses(**kw),
    "agent": lambda **kw: AgentEndpoint(chat=ChatDatabricksResponses(**kw)),
}


@pytest.fixture(scope="module")
def server() -> Iterator[RawServer]:
    """One raw server for the module; each test sets its handler."""
    with RawServer(lambda request: b"") as raw:
        yield raw


def failure(call: Callable[[], Any]) -> DatabricksServingError:
    try:
        call()
    except DatabricksServingError as exc:
        return exc
    raise AssertionError("the call did not fail")


def call_all_ways(client: Any, handler: RecordingHandler) -> list[DatabricksServingError]:
    config = {"callbacks": [handler]}
    return [
        failure(lambda: client.invoke("hi", config=config)),
        failure(lambda: list(client.stream("hi", config=config))),
    ]


@pytest.mark.parametrize("sink", list(SINKS))
@pytest.mark.parametrize("encoding", list(ENCODINGS))
def test_every_encoding_in_every_sink_is_masked(
    server: RawServer, encoding: str, sink: str, debug_logs: Any
) -> None:
    token = dapi()
    handler = RecordingHandler()
    server.handler = echo_handler(encoding, sink)
    server.requests.clear()
    config: Any = {"callbacks": [handler]}
    chat = ChatDatabricksServing(endpoint="ep", host=server.url, token=token, max_retries=0)
    agent = AgentEndpoint("ep", host=server.url, token=token, max_retries=0)
    errors = [
        failure(lambda: chat.invoke("hi", config=config)),
        failure(lambda: list(agent.stream("hi", config=config))),
    ]
    assert len(server.requests) == 2, "every call reached the server, once"
    assert all(r.token == token for r in server.requests)
    forms = leaked_forms(token, encoding)
    assert_absent(forms, *(every_rendering(e) for e in errors), debug_logs.text(), handler.text())


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    token=tokens,
    encoding=st.sampled_from(list(ENCODINGS)),
    sink=st.sampled_from(list(SINKS)),
    kind=st.sampled_from(list(CLASSES)),
)
def test_any_token_shape_echoed_any_way_is_masked(
    server: RawServer, token: str, encoding: str, sink: str, kind: str
) -> None:
    handler = RecordingHandler()
    server.handler = echo_handler(encoding, sink)
    server.requests.clear()
    client = CLASSES[kind](endpoint="ep", host=server.url, token=token, max_retries=0)
    errors = call_all_ways(client, handler)
    assert all(r.token == token for r in server.requests)
    assert_absent(leaked_forms(token, encoding), *(every_rendering(e) for e in errors))
    assert_absent(leaked_forms(token, encoding), handler.text())


def test_what_the_server_said_is_still_shown_around_the_mask(server: RawServer) -> None:
    server.handler = echo_handler("json \\u", "401 json")
    llm = ChatDatabricksServing(endpoint="ep", host=server.url, token=dapi(), max_retries=0)
    err = failure(lambda: llm.invoke("hi"))
    assert err.status_code == 401
    assert "bad ***" in str(err)
    assert "check that the token is valid" in str(err)


def test_a_token_never_sent_is_still_masked_by_its_shape(server: RawServer) -> None:
    """Another credential in an error body (a leaked PAT, a JWT) is masked too."""
    other, jwt = dapi(), "eyJ" + "hbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJl"

    def handle(request: Any) -> bytes:
        return SINKS["401 json"](f"{other} and {jwt} and Bearer%20{other}")

    server.handler = handle
    llm = ChatDatabricksServing(endpoint="ep", host=server.url, token=dapi(), max_retries=0)
    err = failure(lambda: llm.invoke("hi"))
    assert_absent([other, jwt], every_rendering(err))


@pytest.mark.parametrize("sink", list(SINKS))
async def test_async_calls_mask_every_sink(server: RawServer, sink: str) -> None:
    token = dapi()
    server.handler = echo_handler("json \\u mixed", sink)
    server.requests.clear()
    chat = ChatDatabricksServing(endpoint="ep", host=server.url, token=token, max_retries=0)
    agent = AgentEndpoint("ep", host=server.url, token=token, max_retries=0)
    errors = [
        await afailure(lambda: chat.ainvoke("hi")),
        await afailure(lambda: _drain(chat.astream("hi"))),
        await afailure(lambda: agent.ainvoke("hi")),
        await afailure(lambda: _drain(agent.astream("hi"))),
    ]
    assert len(server.requests) == 4
    forms = leaked_forms(token, "json \\u mixed")
    assert_absent(forms, *(every_rendering(e) for e in errors))


async def afailure(call: Callable[[], Any]) -> DatabricksServingError:
    """Await ``call()`` in a frame holding no secret; return the error it raised."""
    try:
        await call()
    except DatabricksServingError as exc:
        return exc
    raise AssertionError("the call did not fail")


async def _drain(stream: Any) -> list[Any]:
    return [item async for item in stream]
