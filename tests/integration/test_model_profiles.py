"""Model profiles over loopback: ``with_structured_output`` and ``create_agent`` pick native
structured output (``response_format``) where Databricks documents it, function calling
elsewhere; ``response_format`` where the real service refuses it raises before sending, and
the local endpoint refuses it too."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from langchain_core.messages import HumanMessage
from pydantic import BaseModel

from langchain_dbx_serving import (
    BadRequestError,
    ChatDatabricksResponses,
    ChatDatabricksServing,
    ModelRuleError,
)
from langchain_dbx_serving.testing import LocalEndpoint, Reply, ScriptedBackend

GPT5 = "databricks-gpt-5"
GPT_OSS = "databricks-gpt-oss-120b"
CLAUDE = "databricks-claude-sonnet-4-5"
CLAUDE55 = "databricks-claude-sonnet-5-5"
GATEWAY_CLAUDE = "system.ai.claude-sonnet-4-5"
CUSTOM = "my-endpoint"
NAMES = (GPT5, GPT_OSS, CLAUDE, CLAUDE55, GATEWAY_CLAUDE, CUSTOM)
MODES = ["invoke", "ainvoke", "stream", "astream"]


class Weather(BaseModel):
    """The weather in a city."""

    city: str
    unit: str | None = None


@pytest.fixture(scope="module")
def _profiles_ep() -> Iterator[LocalEndpoint]:
    with LocalEndpoint({name: ScriptedBackend() for name in NAMES}) as ep:
        yield ep


@pytest.fixture
def ep(_profiles_ep: LocalEndpoint) -> LocalEndpoint:
    for name in NAMES:
        backend = _profiles_ep.backend(name)
        assert isinstance(backend, ScriptedBackend)
        backend.clear()
    _profiles_ep.requests.clear()
    return _profiles_ep


def chat(ep: LocalEndpoint, endpoint: str, **fields: Any) -> ChatDatabricksServing:
    fields.setdefault("max_retries", 0)
    return ChatDatabricksServing(endpoint=endpoint, host=ep.host, token=ep.token, **fields)


def queue(ep: LocalEndpoint, name: str, *replies: Any) -> None:
    backend = ep.backend(name)
    assert isinstance(backend, ScriptedBackend)
    backend.add(*replies)


async def run(structured: Any, mode: str) -> Any:
    """One structured call through ``mode`` (a stream's last parsed value is the answer)."""
    if mode == "invoke":
        return structured.invoke("weather in Rome?")
    if mode == "ainvoke":
        return await structured.ainvoke("weather in Rome?")
    if mode == "stream":
        return list(structured.stream("weather in Rome?"))[-1]
    return [chunk async for chunk in structured.astream("weather in Rome?")][-1]


# -- with_structured_output: the default method follows the profile ---------------------------
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("endpoint", "strict"),
    [(GPT5, True), (GPT_OSS, True), (CLAUDE, None), (GATEWAY_CLAUDE, None)],
)
async def test_documented_models_get_native_structured_output(ep, endpoint, strict, mode) -> None:
    reasoning = "The user asks about Rome." if endpoint == GPT_OSS else None
    queue(ep, endpoint, Reply.text('{"city": "Rome", "unit": "C"}', reasoning=reasoning))
    llm = chat(ep, endpoint)
    assert llm.profile is not None and llm.profile["structured_output"] is True

    result = await run(llm.with_structured_output(Weather), mode)

    assert result == Weather(city="Rome", unit="C")
    body = ep.requests[-1].body
    assert "tools" not in body and "tool_choice" not in body
    spec = body["response_format"]["json_schema"]
    assert body["response_format"]["type"] == "json_schema"
    assert spec["name"] == "Weather"
    assert spec.get("strict") is strict


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("endpoint", [CLAUDE55, CUSTOM])
async def test_other_models_get_function_calling(ep, endpoint, mode) -> None:
    queue(ep, endpoint, Reply.tool_call("Weather", {"city": "Oslo"}))
    llm = chat(ep, endpoint)

    result = await run(llm.with_structured_output(Weather), mode)

    assert result == Weather(city="Oslo")
    body = ep.requests[-1].body
    assert "response_format" not in body
    assert [t["function"]["name"] for t in body["tools"]] == ["Weather"]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "Weather"}}


@pytest.mark.parametrize("mode", MODES)
async def test_response_format_on_claude_5_5_raises_before_sending(ep, mode) -> None:
    # Documented: these Claude models answer response_format with a 400. The profile's "no"
    # keeps the default call on function calling; asking for json_schema anyway is refused
    # here, with the rule and its source, and nothing reaches the endpoint.
    llm = chat(ep, CLAUDE55)
    assert llm.profile is not None and llm.profile["structured_output"] is False
    with pytest.raises(ModelRuleError) as caught:
        await run(llm.with_structured_output(Weather, method="json_schema"), mode)
    assert "response_format" in str(caught.value) and "function_calling" in str(caught.value)
    assert "query-anthropic-messages" in str(caught.value)
    assert ep.requests == []
    # model_family="other" turns the client's checks off: the request goes as written, and
    # the endpoint (like the real service) answers it with the 400 the check saved.
    other = chat(ep, CLAUDE55, model_family="other")
    with pytest.raises(BadRequestError, match="response_format is not supported"):
        other.with_structured_output(Weather, method="json_schema").invoke("w")
    assert len(ep.requests) == 1


def test_the_local_endpoint_refuses_response_format_on_claude_5_5(ep) -> None:
    body = {
        "messages": [{"role": "user", "content": "w"}],
        "response_format": {"type": "json_object"},
    }
    headers = {"Authorization": f"Bearer {ep.token}"}
    reply = httpx.post(ep.invocations_url(CLAUDE55), json=body, headers=headers)
    assert reply.status_code == 400
    assert reply.json()["error_code"] == "BAD_REQUEST"
    assert "response_format is not supported" in reply.json()["message"]
    # The same body is fine on a Claude model that takes structured outputs.
    queue(ep, CLAUDE, Reply.text("{}"))
    assert httpx.post(ep.invocations_url(CLAUDE), json=body, headers=headers).status_code == 200


@pytest.mark.parametrize(
    ("endpoint", "profile", "sent"),
    [
        (CUSTOM, {"structured_output": True}, "response_format"),  # the user's profile wins
        (GPT5, {"structured_output": False}, "tools"),
        (GPT5, {"max_input_tokens": 9}, "tools"),  # a profile that says nothing: no guess
    ],
)
def test_a_profile_given_to_the_constructor_decides(ep, endpoint, profile, sent) -> None:
    if sent == "tools":
        queue(ep, endpoint, Reply.tool_call("Weather", {"city": "Rome"}))
    else:
        queue(ep, endpoint, Reply.text('{"city": "Rome"}'))
    llm = chat(ep, endpoint, profile=profile)
    assert llm.profile == profile
    assert llm.with_structured_output(Weather).invoke("w") == Weather(city="Rome")
    assert sent in ep.requests[-1].body


@pytest.mark.parametrize(
    ("endpoint", "method", "sent"),
    [(GPT5, "function_calling", "tools"), (CUSTOM, "json_schema", "response_format")],
)
def test_an_explicit_method_wins_over_the_profile(ep, endpoint, method, sent) -> None:
    reply = Reply.tool_call("Weather", {"city": "Rome"}) if sent == "tools" else None
    queue(ep, endpoint, reply or Reply.text('{"city": "Rome"}'))
    structured = chat(ep, endpoint).with_structured_output(Weather, method=method)
    assert structured.invoke("w") == Weather(city="Rome")
    assert sent in ep.requests[-1].body


def test_include_raw_keeps_the_profile_default(ep) -> None:
    queue(ep, GPT5, Reply.text('{"city": "Rome"}'))
    out = chat(ep, GPT5).with_structured_output(Weather, include_raw=True).invoke("w")
    assert out["parsed"] == Weather(city="Rome") and out["parsing_error"] is None
    assert out["raw"].text == '{"city": "Rome"}'
    assert "response_format" in ep.requests[-1].body


def test_responses_class_has_no_structured_output_profile() -> None:
    # Databricks documents response_format for chat completions; nothing is claimed for the
    # responses protocol, so ChatDatabricksResponses keeps function calling by default.
    llm = ChatDatabricksResponses(
        endpoint=GPT5, host="https://example.cloud.databricks.com", token="t"
    )
    assert llm.profile == {"reasoning_effort_default": "minimal", "max_input_tokens": 128_000}
    assert "tools" in llm.with_structured_output(Weather).first.kwargs  # type: ignore[attr-defined]


# -- create_agent: ProviderStrategy where the profile says so, ToolStrategy elsewhere -------------
def test_create_agent_uses_native_structured_output_where_documented(ep) -> None:
    from langchain.agents import create_agent

    queue(ep, GPT5, Reply.text('{"city": "Rome", "unit": "C"}'))
    agent = create_agent(chat(ep, GPT5), tools=[], response_format=Weather)

    state = agent.invoke({"messages": [HumanMessage("weather in Rome?")]})

    assert state["structured_response"] == Weather(city="Rome", unit="C")
    body = ep.requests[-1].body
    assert body["response_format"]["type"] == "json_schema"
    assert not body.get("tools")  # no structured-output tool (create_agent binds tools=[])


def test_create_agent_uses_a_tool_where_native_output_is_refused(ep) -> None:
    from langchain.agents import create_agent

    queue(ep, CLAUDE55, Reply.tool_call("Weather", {"city": "Oslo"}))
    agent = create_agent(chat(ep, CLAUDE55), tools=[], response_format=Weather)

    state = agent.invoke({"messages": [HumanMessage("weather in Oslo?")]})

    assert state["structured_response"] == Weather(city="Oslo")
    body = ep.requests[0].body
    assert "response_format" not in body
    assert [t["function"]["name"] for t in body["tools"]] == ["Weather"]
