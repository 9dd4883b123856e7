"""Retries are observable (a ``databricks_retry`` custom event and a structured log record),
and ``check()`` validates host, credentials and endpoint in one cheap request."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.output_parsers import StrOutputParser

from langchain_dbx_serving import AgentEndpoint, ChatDatabricksServing, DatabricksServingEmbeddings
from langchain_dbx_serving.errors import (
    AuthenticationError,
    ConfigurationError,
    EndpointNotFoundError,
    ServingConnectionError,
    ServingTimeoutError,
)
from langchain_dbx_serving.testing import Fault, LocalEndpoint, Reply
from tests.reliability.raw_server import HOLD, RawServer
from tests.support.serving import queue

BUSY = Reply.error(429, "REQUEST_LIMIT_EXCEEDED", "slow down", retry_after=0)


class Events(BaseCallbackHandler):
    def __init__(self) -> None:
        self.retries: list[dict[str, Any]] = []

    def on_custom_event(self, name: str, data: Any, **kwargs: Any) -> None:
        if name == "databricks_retry":
            self.retries.append(data)


async def call(runnable: Any, mode: str, config: Any) -> str:
    if mode == "invoke":
        return runnable.invoke("hi", config).text
    if mode == "ainvoke":
        return (await runnable.ainvoke("hi", config)).text
    if mode == "stream":
        return "".join(c.text for c in runnable.stream("hi", config))
    return "".join([c.text async for c in runnable.astream("hi", config)])


@pytest.mark.parametrize("mode", ["invoke", "ainvoke", "stream", "astream"])
async def test_each_retry_is_a_custom_event(faulty: LocalEndpoint, mode: str) -> None:
    queue(faulty, Reply.text(["fine"]))
    faulty.faults.add(BUSY, Fault.reset())
    events = Events()
    model = ChatDatabricksServing(endpoint="chat", host=faulty.host, token=faulty.token)
    assert await call(model, mode, {"callbacks": [events]}) == "fine"
    assert [(e["attempt"], e["status"], e["endpoint"]) for e in events.retries] == [
        (1, 429, "chat"),
        (2, None, "chat"),
    ]
    assert events.retries[0]["wait"] == 0 and events.retries[0]["error"] == "RateLimitError"


async def test_retry_events_reach_astream_events_inside_a_chain(faulty: LocalEndpoint) -> None:
    queue(faulty, Reply.text(["fine"]))
    faulty.faults.add(BUSY)
    chain = ChatDatabricksServing(endpoint="chat", host=faulty.host, token=faulty.token)
    chain = chain | StrOutputParser()
    seen = [
        e["data"]
        async for e in chain.astream_events("hi", version="v2")
        if e["event"] == "on_custom_event" and e["name"] == "databricks_retry"
    ]
    assert [d["status"] for d in seen] == [429]


def test_agent_endpoint_retries_are_events_too(faulty: LocalEndpoint) -> None:
    queue(faulty, Reply.text(["agent"]), name="responder")
    faulty.faults.add(BUSY)
    events = Events()
    agent = AgentEndpoint("responder", host=faulty.host, token=faulty.token)
    assert agent.invoke("hi", {"callbacks": [events]}).text == "agent"
    assert [e["status"] for e in events.retries] == [429]


def test_each_retry_is_a_structured_log_record(
    faulty: LocalEndpoint, caplog: pytest.LogCaptureFixture
) -> None:
    queue(faulty, Reply.text(["fine"]))
    faulty.faults.add(BUSY, BUSY)
    model = ChatDatabricksServing(endpoint="chat", host=faulty.host, token=faulty.token)
    with caplog.at_level(logging.DEBUG, logger="langchain_dbx_serving"):
        model.invoke("hi")
    records = [r.databricks_retry for r in caplog.records if hasattr(r, "databricks_retry")]
    assert [(r["attempt"], r["status"]) for r in records] == [(1, 429), (2, 429)]
    assert faulty.token not in caplog.text


# -- check() -------------------------------------------------------------------------------------
def test_check_reports_a_ready_endpoint(serving: LocalEndpoint) -> None:
    model = ChatDatabricksServing(endpoint="chat", host=serving.host, token=serving.token)
    report = model.check()
    assert report.ready and report.state == "READY" and report.endpoint == "chat"
    assert "endpoint 'chat'" in str(report) and "READY" in str(report)
    assert asyncio.run(model.acheck()).ready
    assert serving.requests == [], "a check runs no model"
    agent = AgentEndpoint("responder", host=serving.host, token=serving.token)
    assert agent.check().endpoint == "responder"
    embeddings = DatabricksServingEmbeddings(
        endpoint="echo", host=serving.host, token=serving.token
    )
    assert embeddings.check().ready


def test_check_fails_typed_for_each_mistake(serving: LocalEndpoint) -> None:
    host, token = serving.host, serving.token
    with pytest.raises(EndpointNotFoundError, match="no-such"):
        ChatDatabricksServing(endpoint="no-such", host=host, token=token).check()
    with pytest.raises(AuthenticationError):
        ChatDatabricksServing(endpoint="chat", host=host, token="wrong-token-0123456").check()
    with pytest.raises(ConfigurationError, match=r"http://127\.0\.0\.1"):
        ChatDatabricksServing(
            endpoint="chat", host=host.removeprefix("http://"), token=token
        ).check()
    with pytest.raises(ServingConnectionError):
        ChatDatabricksServing(
            endpoint="chat", host="http://127.0.0.1:9", token=token, max_retries=0
        ).check()


def test_check_ends_within_the_deadline() -> None:
    with RawServer([[HOLD]]) as srv:
        model = ChatDatabricksServing(endpoint="m", host=srv.url, token="t-0123456789", timeout=1)
        start = time.monotonic()
        with pytest.raises(ServingTimeoutError, match="timeout=1s"):
            model.check()
        assert time.monotonic() - start < 4
