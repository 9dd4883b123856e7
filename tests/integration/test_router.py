"""EndpointRouter over loopback endpoints: classifier and function routing, fallbacks, streaming."""

from __future__ import annotations

import pytest
from langchain_core.callbacks import BaseCallbackHandler

from langchain_dbx_serving import AgentEndpoint, ChatDatabricksServing, RateLimitError
from langchain_dbx_serving.router import EndpointRouter, Route, RouteResult
from langchain_dbx_serving.testing import Reply
from tests.support.serving import queue


@pytest.fixture
def routes(serving) -> list[Route]:
    def chat(endpoint: str) -> ChatDatabricksServing:
        return ChatDatabricksServing(
            endpoint=endpoint, host=serving.host, token=serving.token, max_retries=0
        )

    return [
        Route(
            name="billing",
            description="invoices and refunds",
            runnable=chat("agent"),
            fallbacks=["general"],
        ),
        Route(name="general", description="anything else", runnable=chat("echo")),
        Route(
            name="support",
            description="agent for tickets",
            runnable=AgentEndpoint("responder", host=serving.host, token=serving.token),
        ),
    ]


@pytest.fixture
def classifier(serving) -> ChatDatabricksServing:
    return ChatDatabricksServing(endpoint="chat", host=serving.host, token=serving.token)


def test_classifier_picks_the_route_from_names_and_descriptions(
    serving, routes, classifier
) -> None:
    queue(serving, Reply.tool_call("RouteChoice", {"route": "support"}))
    queue(serving, Reply.text("Ticket 7 is open."), name="responder")
    result = EndpointRouter(routes=routes, classifier=classifier).invoke("status of ticket 7?")
    assert isinstance(result, RouteResult)
    assert (result.route, result.output.text, result.fell_back_from) == (
        "support",
        "Ticket 7 is open.",
        [],
    )
    asked = serving.requests[0].body
    assert "- billing: invoices and refunds" in asked["messages"][0]["content"]
    assert asked["messages"][1]["content"] == "status of ticket 7?"
    schema = asked["tools"][0]["function"]["parameters"]["properties"]["route"]
    assert schema["enum"] == ["billing", "general", "support"]


def test_rate_limited_route_falls_back(serving, routes) -> None:
    queue(serving, Reply.error(429, "REQUEST_LIMIT_EXCEEDED", "busy"), name="agent")
    router = EndpointRouter(routes=routes, select=lambda _: "billing")
    result = router.invoke("refund me")
    assert (result.route, result.output.text, result.fell_back_from) == (
        "general",
        "refund me",
        ["billing"],
    )


def test_last_fallback_failure_is_raised(serving, routes) -> None:
    queue(serving, Reply.error(429, "REQUEST_LIMIT_EXCEEDED", "busy"), name="agent")
    routes[1] = Route(
        name="general",
        runnable=ChatDatabricksServing(
            endpoint="agent", host=serving.host, token=serving.token, max_retries=0
        ),
    )
    queue(serving, Reply.error(429, "REQUEST_LIMIT_EXCEEDED", "still busy"), name="agent")
    with pytest.raises(RateLimitError, match="still busy"):
        EndpointRouter(routes=routes, select=lambda _: "billing").invoke("refund")


async def test_async_and_streaming_pass_through(serving, routes) -> None:
    router = EndpointRouter(routes=routes, select=lambda _: "general")
    assert (await router.ainvoke("hello")).output.text == "hello"
    chunks = list(router.stream("streamed words"))
    assert len(chunks) > 1 and all(c.route == "general" for c in chunks)
    total = chunks[0]
    for chunk in chunks[1:]:
        total = total + chunk
    assert total.output.text == "streamed words"
    achunks = [c async for c in router.astream("async words")]
    assert "".join(c.output.text for c in achunks) == "async words"


def test_stream_falls_back_before_the_first_chunk(serving, routes) -> None:
    queue(serving, Reply.error(503, "TEMPORARILY_UNAVAILABLE", "scaling"), name="agent")
    chunks = list(EndpointRouter(routes=routes, select=lambda _: "billing").stream("hi there"))
    assert {c.route for c in chunks} == {"general"}
    assert chunks[0].fell_back_from == ["billing"]


def test_route_is_visible_in_callbacks_and_events(serving, routes) -> None:
    class Names(BaseCallbackHandler):
        def __init__(self) -> None:
            self.names: list[str] = []
            self.events: list[dict] = []

        def on_chat_model_start(self, serialized, messages, *, run_id, name=None, **kw):
            self.names.append(name or "")

        def on_custom_event(self, name, data, *, run_id, **kw):
            self.events.append({"name": name, **data})

    handler = Names()
    router = EndpointRouter(routes=routes, select=lambda _: "general")
    router.invoke("x", config={"callbacks": [handler]})
    assert handler.events == [{"name": "databricks_route", "route": "general", "tried": []}]
    assert handler.names == ["route:general"]


async def test_astream_events_show_the_route(serving, routes) -> None:
    router = EndpointRouter(routes=routes, select=lambda _: "general")
    events = [e async for e in router.astream_events("hi", version="v2")]
    custom = [e for e in events if e["event"] == "on_custom_event"]
    assert custom[0]["name"] == "databricks_route" and custom[0]["data"]["route"] == "general"
    assert any(e["event"] == "on_chat_model_start" and e["name"] == "route:general" for e in events)


def test_bad_configuration_is_rejected(routes) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        EndpointRouter(routes=routes)
    with pytest.raises(ValueError, match="unknown routes"):
        EndpointRouter(
            routes=[Route(name="a", runnable=routes[0].runnable, fallbacks=["zz"])],
            select=lambda _: "a",
        )
    with pytest.raises(ValueError, match="not one of its routes"):
        EndpointRouter(routes=routes, select=lambda _: "nope").invoke("x")
