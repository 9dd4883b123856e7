"""Every door over loopback: serving-endpoint routes, AI Gateway (unified and OpenAI), Apps."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from langchain_dbx_serving import (
    ChatDatabricksResponses,
    ChatDatabricksServing,
    ConfigurationError,
    EndpointNotFoundError,
)
from langchain_dbx_serving.chat_models import _routes
from langchain_dbx_serving.testing import LocalEndpoint, Reply, ScriptedBackend
from tests.support.calls import MODES, ask

MODEL = "system.ai.claude-sonnet-4-5"
AGENT = "support-agent"


@pytest.fixture(scope="module")
def _routes_ep() -> Iterator[LocalEndpoint]:
    backends = {MODEL: ScriptedBackend(), "chat": ScriptedBackend(), AGENT: ScriptedBackend()}
    with LocalEndpoint(backends, root=AGENT) as ep:
        yield ep


@pytest.fixture
def ep(_routes_ep: LocalEndpoint) -> LocalEndpoint:
    for backend in _routes_ep._app.endpoints.values():  # type: ignore[union-attr]
        backend.clear()
    _routes_ep.requests.clear()
    _routes._APP_URLS.clear()
    return _routes_ep


def queue(ep: LocalEndpoint, name: str, reply: Reply) -> None:
    backend = ep.backend(name)
    assert isinstance(backend, ScriptedBackend)
    backend.add(reply)


@pytest.mark.parametrize(
    ("route", "path"),
    [
        ("invocations", f"/serving-endpoints/{MODEL}/invocations"),
        ("chat/completions", "/serving-endpoints/chat/completions"),
        ("ai-gateway", "/ai-gateway/mlflow/v1/chat/completions"),
        ("ai-gateway/openai", "/ai-gateway/openai/v1/chat/completions"),
    ],
)
@pytest.mark.parametrize("mode", MODES)
async def test_chat_routes(ep, route: str, path: str, mode: str) -> None:
    queue(ep, MODEL, Reply.text(["Hi ", "there."]))
    llm = ChatDatabricksServing(endpoint=MODEL, host=ep.host, token=ep.token, route=route)
    reply = await ask(llm, "hello", mode)
    assert reply.text == "Hi there."
    sent = ep.last_request
    assert sent.path == path
    assert sent.body.get("model") == (None if route == "invocations" else MODEL)


@pytest.mark.parametrize(
    ("route", "path"),
    [
        ("responses", "/serving-endpoints/responses"),
        ("invocations", f"/serving-endpoints/{MODEL}/invocations"),
        ("ai-gateway", "/ai-gateway/mlflow/v1/responses"),
        ("ai-gateway/openai", "/ai-gateway/openai/v1/responses"),
    ],
)
@pytest.mark.parametrize("mode", MODES)
async def test_responses_routes(ep, route: str, path: str, mode: str) -> None:
    queue(ep, MODEL, Reply.text("Done."))
    llm = ChatDatabricksResponses(endpoint=MODEL, host=ep.host, token=ep.token, route=route)
    reply = await ask(llm, "hello", mode)
    assert reply.text == "Done."
    assert ep.last_request.path == path
    assert "input" in ep.last_request.body


@pytest.mark.parametrize("mode", MODES)
async def test_an_app_by_name_is_resolved_once_and_called(ep, mode: str) -> None:
    queue(ep, AGENT, Reply.text("From the app."))
    queue(ep, AGENT, Reply.text("Again."))
    llm = ChatDatabricksResponses(endpoint=f"apps/{AGENT}", host=ep.host, token=ep.token)
    assert (await ask(llm, "hi", mode)).text == "From the app."
    assert (await ask(llm, "hi", mode)).text == "Again."
    paths = [(r.method, r.path) for r in ep.requests]
    # One lookup (cached), then the AgentServer route at the App's root, with our credentials.
    assert paths == [
        ("GET", f"/api/2.0/apps/{AGENT}"),
        ("POST", "/responses"),
        ("POST", "/responses"),
    ]
    assert all(r.headers["authorization"] == "Bearer ***" for r in ep.requests)


def test_app_field_and_invocations_route(ep) -> None:
    queue(ep, AGENT, Reply.text("ok"))
    llm = ChatDatabricksResponses(
        endpoint=AGENT, app=AGENT, host=ep.host, token=ep.token, route="invocations"
    )
    assert llm.invoke("hi").text == "ok"
    assert ep.last_request.path == "/invocations"


def test_an_unknown_app_is_a_typed_error(ep) -> None:
    llm = ChatDatabricksResponses(endpoint="apps/nope", host=ep.host, token=ep.token)
    with pytest.raises(EndpointNotFoundError, match="Databricks App 'nope'") as caught:
        llm.invoke("hi")
    assert caught.value.status_code == 404
    assert [r.method for r in ep.requests] == ["GET"]  # nothing was posted anywhere


# -- responses options ----------------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
async def test_responses_options_are_typed_fields_and_kwargs(ep, mode: str) -> None:
    queue(ep, MODEL, Reply.text("ok"))
    llm = ChatDatabricksResponses(
        endpoint=MODEL,
        host=ep.host,
        token=ep.token,
        include=["reasoning.encrypted_content"],
        store=False,
        truncation="auto",
        context_management=[{"type": "compaction", "compact_threshold": 20000}],
        reasoning={"effort": "low", "summary": "auto"},
        model_family="openai",
    )
    await ask(llm, "hi", mode, store=True)  # a call kwarg wins over the field
    body = ep.last_request.body
    assert body["include"] == ["reasoning.encrypted_content"]
    assert body["store"] is True
    assert body["truncation"] == "auto"
    assert body["context_management"] == [{"type": "compaction", "compact_threshold": 20000}]
    assert body["reasoning"] == {"effort": "low", "summary": "auto"}
    assert "previous_response_id" not in body and "use_previous_response_id" not in body


@pytest.mark.parametrize("mode", MODES)
async def test_use_previous_response_id_sends_only_the_new_items(ep, mode: str) -> None:
    queue(ep, MODEL, Reply.text("First."))
    queue(ep, MODEL, Reply.text("Second."))
    llm = ChatDatabricksResponses(
        endpoint=MODEL, host=ep.host, token=ep.token, use_previous_response_id=True
    )
    first = await ask(llm, "one", mode)
    response_id = first.response_metadata["id"]
    assert response_id.startswith("resp_")
    from langchain_core.messages import HumanMessage

    await ask(llm, [HumanMessage("one"), first, HumanMessage("two")], mode)
    body = ep.last_request.body
    assert body["previous_response_id"] == response_id
    assert body["input"] == [{"role": "user", "content": "two"}]


def test_an_explicit_previous_response_id_keeps_the_whole_input(ep) -> None:
    queue(ep, MODEL, Reply.text("ok"))
    llm = ChatDatabricksResponses(endpoint=MODEL, host=ep.host, token=ep.token)
    llm.invoke("hi", previous_response_id="resp_abc", use_previous_response_id=True)
    body = ep.last_request.body
    assert body["previous_response_id"] == "resp_abc"
    assert body["input"] == [{"role": "user", "content": "hi"}]
    assert "use_previous_response_id" not in body


def test_gateway_route_from_a_serving_endpoints_base_url(ep) -> None:
    queue(ep, MODEL, Reply.text("ok"))
    llm = ChatDatabricksServing(
        endpoint=MODEL, base_url=ep.base_url, token=ep.token, route="ai-gateway"
    )
    assert llm.invoke("hi").text == "ok"
    assert ep.last_request.path == "/ai-gateway/mlflow/v1/chat/completions"


def test_reasoning_settings_are_part_of_the_identity() -> None:
    # LangChain's cache keys on the identifying params: different knobs, different entries.
    a = ChatDatabricksServing(endpoint="e", host="https://h.example", token="t")
    b = ChatDatabricksServing(
        endpoint="e", host="https://h.example", token="t", reasoning_effort="high"
    )
    assert a._identifying_params != b._identifying_params


# -- routes no class serves: a clear error at construction, naming the ones it does ------------
@pytest.mark.parametrize(
    ("cls", "supported"),
    [
        (ChatDatabricksServing, ("invocations", "chat/completions", "ai-gateway")),
        (ChatDatabricksResponses, ("responses", "invocations", "ai-gateway")),
    ],
)
@pytest.mark.parametrize(
    "route", ["ai-gateway/anthropic", "ai-gateway/gemini", "/ai-gateway/anthropic/"]
)
def test_a_provider_native_route_is_refused_with_the_supported_ones(
    ep, cls, supported, route
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        cls(endpoint=MODEL, host=ep.host, token=ep.token, route=route)
    message = str(caught.value)
    assert f"{cls.__name__} has no route {route!r}" in message
    assert all(repr(name) in message for name in (*supported, "ai-gateway/openai"))
    assert "provider-native" in message and "route='ai-gateway'" in message
    assert ep.requests == []  # nothing was sent


@pytest.mark.parametrize("route", ["ai_gateway", "AI-GATEWAY", "", None, 3])
def test_an_unknown_route_is_refused(ep, route) -> None:
    with pytest.raises(ConfigurationError, match=r"has no route .*use one of 'invocations'"):
        ChatDatabricksServing(endpoint="chat", host=ep.host, token=ep.token, route=route)


def test_the_unified_route_the_error_points_to_serves_the_model(ep) -> None:
    queue(ep, MODEL, Reply.text("from the gateway"))
    llm = ChatDatabricksServing(endpoint=MODEL, host=ep.host, token=ep.token, route="ai-gateway")
    assert llm.invoke("hi").text == "from the gateway"
    assert ep.requests[-1].path == "/ai-gateway/mlflow/v1/chat/completions"
