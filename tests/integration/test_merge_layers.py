"""One merge rule for custom_inputs, databricks_options and context, on every class and path.

constructor < each bind (in order) < the request dict (AgentEndpoint) < call kwargs, merged key
by key, ``None`` removing a key; other body keys: last wins. Checked on the body the local
endpoint received over loopback.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from langchain_core.runnables import Runnable
from pydantic import BaseModel

from langchain_dbx_serving import AgentEndpoint, ChatDatabricksResponses, ChatDatabricksServing
from langchain_dbx_serving.testing import LocalEndpoint, Reply
from tests.support.calls import MODES, ask
from tests.support.serving import queue

CLASSES = ["serving", "responses"]
ALL_MODES = [*MODES, "batch", "abatch"]


@pytest.fixture
def build(serving: LocalEndpoint) -> Callable[..., Any]:
    """Build a chat model of either class on the local endpoint."""

    def make(kind: str, **fields: Any) -> ChatDatabricksServing | ChatDatabricksResponses:
        fields.setdefault("host", serving.host)
        fields.setdefault("token", serving.token)
        if kind == "serving":
            return ChatDatabricksServing(endpoint="chat", **fields)
        return ChatDatabricksResponses(endpoint="responder", **fields)

    return make


def answer(ep: LocalEndpoint, kind: str, *replies: Any) -> None:
    queue(ep, *replies, name="chat" if kind == "serving" else "responder")


async def call(llm: Runnable, mode: str, prompt: Any = "hi", **kwargs: Any) -> Any:
    if mode == "batch":
        return llm.batch([prompt], **kwargs)[0]
    if mode == "abatch":
        return (await llm.abatch([prompt], **kwargs))[0]
    return await ask(llm, prompt, mode, **kwargs)


# -- the examples, on every class and every path ----------------------------------------
@pytest.mark.parametrize("mode", ALL_MODES)
@pytest.mark.parametrize("kind", CLASSES)
def test_bound_and_call_custom_inputs_are_merged(serving, build, kind, mode) -> None:
    answer(serving, kind, Reply.text("ok"))
    llm = build(kind, custom_inputs={"tenant": "acme"}).bind(custom_inputs={"tier": "gold"})
    asyncio.run(call(llm, mode, custom_inputs={"session": "s-1"}))
    assert serving.last_request.body["custom_inputs"] == {
        "tenant": "acme",
        "tier": "gold",
        "session": "s-1",
    }


@pytest.mark.parametrize("mode", ALL_MODES)
@pytest.mark.parametrize("kind", CLASSES)
def test_every_merged_key_and_bind_twice(serving, build, kind, mode) -> None:
    answer(serving, kind, Reply.text("ok"))
    llm = (
        build(kind, databricks_options={"a": 1}, context={"user_id": "u"})
        .bind(databricks_options={"b": 2}, context={"conversation_id": "c1"})
        .bind(databricks_options={"c": 3})
    )
    asyncio.run(call(llm, mode, databricks_options={"d": 4}, context={"user_id": "u2"}))
    body = serving.last_request.body
    assert body["databricks_options"] == {"a": 1, "b": 2, "c": 3, "d": 4}
    assert body["context"] == {"user_id": "u2", "conversation_id": "c1"}


@pytest.mark.parametrize("kind", CLASSES)
def test_none_removes_a_key_at_any_layer(serving, build, kind) -> None:
    answer(serving, kind, Reply.text("ok"), Reply.text("ok"), Reply.text("ok"))
    base = build(kind, custom_inputs={"a": 1, "b": 2})
    base.bind(custom_inputs={"a": None}).invoke("hi")
    assert serving.last_request.body["custom_inputs"] == {"b": 2}
    # A removal in a bind still removes the constructor's key when the call adds others.
    base.bind(custom_inputs={"a": None}).bind(custom_inputs={"c": 3}).invoke("hi")
    assert serving.last_request.body["custom_inputs"] == {"b": 2, "c": 3}
    base.invoke("hi", custom_inputs={"a": None, "b": None})
    assert "custom_inputs" not in serving.last_request.body


@pytest.mark.parametrize("kind", CLASSES)
def test_later_layers_win_on_the_same_key(serving, build, kind) -> None:
    answer(serving, kind, Reply.text("ok"))
    llm = build(kind, custom_inputs={"k": "ctor"}, temperature=0.1)
    llm.bind(custom_inputs={"k": "bind"}, temperature=0.2).invoke(
        "hi", custom_inputs={"k": "call"}, temperature=0.3
    )
    body = serving.last_request.body
    assert body["custom_inputs"] == {"k": "call"}
    assert body["temperature"] == 0.3


@pytest.mark.parametrize("kind", CLASSES)
def test_binding_kwargs_show_the_merged_value(build, kind) -> None:
    bound = build(kind).bind(custom_inputs={"a": 1}).bind(custom_inputs={"b": 2})
    assert bound.kwargs["custom_inputs"] == {"a": 1, "b": 2}


# -- through bind_tools and with_structured_output ----------------------------------------------
class Weather(BaseModel):
    """The weather in a city."""

    city: str


def weather_call(kind: str) -> Reply:
    return Reply.tool_call("Weather", {"city": "Rome"})


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", CLASSES)
def test_through_bind_tools_both_orders(serving, build, kind, mode) -> None:
    answer(serving, kind, weather_call(kind), weather_call(kind))
    first = build(kind).bind(custom_inputs={"a": 1}).bind_tools([Weather])
    asyncio.run(call(first, mode, custom_inputs={"c": 3}))
    body = serving.last_request.body
    assert body["custom_inputs"] == {"a": 1, "c": 3}
    assert body["tools"]
    then = build(kind).bind_tools([Weather]).bind(custom_inputs={"b": 2})
    asyncio.run(call(then, mode, custom_inputs={"c": 3}))
    body = serving.last_request.body
    assert body["custom_inputs"] == {"b": 2, "c": 3}
    assert body["tools"]


@pytest.mark.parametrize("method", ["function_calling", "json_schema", "json_mode"])
@pytest.mark.parametrize("kind", CLASSES)
def test_through_with_structured_output(serving, build, kind, method) -> None:
    if method == "function_calling":
        answer(serving, kind, weather_call(kind))
    else:
        answer(serving, kind, Reply.text('{"city": "Rome"}'))
    llm = build(kind, custom_inputs={"a": 1}).bind(custom_inputs={"b": 2})
    structured = llm.with_structured_output(Weather, method=method)
    result = structured.invoke("weather?", custom_inputs={"c": 3})
    assert result == Weather(city="Rome")
    assert serving.last_request.body["custom_inputs"] == {"a": 1, "b": 2, "c": 3}


@pytest.mark.parametrize("kind", CLASSES)
def test_structured_output_then_bind(serving, build, kind) -> None:
    answer(serving, kind, weather_call(kind))
    structured = build(kind, custom_inputs={"a": 1}).with_structured_output(Weather)
    assert structured.bind(custom_inputs={"b": 2}).invoke("w?") == Weather(city="Rome")
    assert serving.last_request.body["custom_inputs"] == {"a": 1, "b": 2}


# -- AgentEndpoint: the request dict is a layer of its own ---------------------------------------
@pytest.fixture
def agent(serving: LocalEndpoint) -> AgentEndpoint:
    return AgentEndpoint(
        "responder", host=serving.host, token=serving.token, custom_inputs={"a": 1}
    )


REQUEST = {"input": [{"role": "user", "content": "hi"}], "custom_inputs": {"c": 3}}


def test_agent_request_inputs_survive_bind(serving, agent) -> None:
    # The example: without the fix, {"a": 1, "b": 2} was sent and "c" was lost.
    queue(serving, Reply.text("ok"), name="responder")
    agent.bind(custom_inputs={"b": 2}).invoke(REQUEST)
    assert serving.last_request.body["custom_inputs"] == {"a": 1, "b": 2, "c": 3}


@pytest.mark.parametrize("mode", ["invoke", "ainvoke", "stream", "astream", "batch", "abatch"])
def test_agent_layers_in_order_on_every_path(serving, agent, mode) -> None:
    queue(serving, Reply.text("ok"), name="responder")
    request = {**REQUEST, "custom_inputs": {"b": "request", "c": 3}, "temperature": 0.5}
    llm = agent.bind(custom_inputs={"b": "bind", "d": 4}, temperature=0.1)

    async def run() -> None:
        kwargs = {"custom_inputs": {"d": "call"}}
        if mode == "invoke":
            llm.invoke(request, **kwargs)
        elif mode == "ainvoke":
            await llm.ainvoke(request, **kwargs)
        elif mode == "stream":
            list(llm.stream(request, **kwargs))
        elif mode == "astream":
            [event async for event in llm.astream(request, **kwargs)]
        elif mode == "batch":
            llm.batch([request], **kwargs)
        else:
            await llm.abatch([request], **kwargs)

    asyncio.run(run())
    body = serving.last_request.body
    assert body["custom_inputs"] == {"a": 1, "b": "request", "c": 3, "d": "call"}
    assert body["temperature"] == 0.5  # request dict over bind, for plain keys too


def test_agent_without_bind_still_merges(serving, agent) -> None:
    queue(serving, Reply.text("ok"), name="responder")
    agent.invoke(REQUEST, custom_inputs={"d": 4})
    assert serving.last_request.body["custom_inputs"] == {"a": 1, "c": 3, "d": 4}


# -- client settings are not body keys -----------------------------------------------------------
@pytest.mark.parametrize("kind", CLASSES)
def test_stream_usage_call_kwarg_is_never_a_body_key(serving, build, kind) -> None:
    answer(serving, kind, Reply.text("ok", usage=(3, 1)))
    chunks = list(build(kind).stream("hi", stream_usage=True))
    assert "stream_usage" not in serving.last_request.body
    assert any(c.usage_metadata for c in chunks)


@pytest.mark.parametrize("setting", ["timeout", "max_retries", "host", "token"])
def test_client_settings_per_call_are_refused_not_sent(serving, build, setting) -> None:
    before = len(serving.requests)
    with pytest.raises(TypeError, match=f"{setting}.*set it on the model"):
        build("serving").invoke("hi", **{setting: 5})
    assert len(serving.requests) == before


def test_agent_bound_as_a_langgraph_node_sends_what_was_bound(serving, agent) -> None:
    queue(serving, Reply.text("ok"), Reply.text("ok"), name="responder")
    node = agent.bind(custom_inputs={"b": 2}).as_node()
    update = node.invoke({"messages": [("user", "hi")]})
    assert update["messages"][0].text == "ok"
    assert serving.last_request.body["custom_inputs"] == {"a": 1, "b": 2}
    asyncio.run(node.ainvoke({"messages": [("user", "hi")]}))
    assert serving.last_request.body["custom_inputs"] == {"a": 1, "b": 2}


@pytest.mark.parametrize(
    ("typo", "meant"),
    [
        ("custom_input", "custom_inputs"),
        ("return_traces", "return_trace"),
        ("max_token", "max_tokens"),
    ],
)
def test_near_miss_call_and_bind_kwargs_are_refused_not_sent(serving, build, typo, meant) -> None:
    before = len(serving.requests)
    with pytest.raises(TypeError, match=f"did you mean '{meant}'"):
        build("serving").invoke("hi", **{typo: {"a": 1}})
    with pytest.raises(TypeError, match=f"did you mean '{meant}'"):
        build("responses").bind(**{typo: {"a": 1}})
    assert len(serving.requests) == before


def test_other_body_keys_per_call_are_still_sent(serving, build) -> None:
    answer(serving, "serving", Reply.text("ok"))
    build("serving").invoke("hi", top_k=5, top_p=0.5, max_completion_tokens=9)
    body = serving.last_request.body
    assert (body["top_k"], body["top_p"], body["max_completion_tokens"]) == (5, 0.5, 9)


def test_callbacks_see_no_langchain_hints_in_the_bound_record(serving, build) -> None:
    from langchain_core.callbacks import BaseCallbackHandler

    seen: list[dict[str, Any]] = []

    class Spy(BaseCallbackHandler):
        def on_chat_model_start(self, serialized, messages, **kwargs: Any) -> None:
            seen.append(kwargs["invocation_params"])

    answer(serving, "serving", weather_call("serving"))
    structured = build("serving").with_structured_output(Weather)
    assert structured.invoke("w?", config={"callbacks": [Spy()]}) == Weather(city="Rome")
    assert "ls_structured_output_format" not in repr(seen)
    assert "ls_structured_output_format" not in serving.last_request.body


def test_a_pickled_binding_still_merges(serving, build) -> None:
    import pickle

    answer(serving, "serving", Reply.text("ok"))
    bound = build("serving", custom_inputs={"a": 1}).bind(custom_inputs={"b": 2})
    copy = pickle.loads(pickle.dumps(bound))  # as Spark ships it to executors
    copy.invoke("hi", custom_inputs={"c": 3})
    assert serving.last_request.body["custom_inputs"] == {"a": 1, "b": 2, "c": 3}


def test_agent_request_dict_steering_keys_are_not_body_keys(serving, agent) -> None:
    queue(serving, Reply.text("ok"), name="responder")
    agent.invoke({**REQUEST, "stream": True, "return_trace": True, "extra_body": {"k": 1}})
    body = serving.last_request.body
    assert body["databricks_options"] == {"return_trace": True}
    assert body["k"] == 1
    assert "return_trace" not in body and "extra_body" not in body
    assert body.get("stream") is not True  # a whole reply was asked for by invoke
