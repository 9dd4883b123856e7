"""ChatDatabricksServing against the local endpoint over loopback HTTP: calls, kwargs, metadata."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langchain_core.messages import HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool
from pydantic import BaseModel

from langchain_dbx_serving import ChatDatabricksServing
from langchain_dbx_serving.testing import Quirks, Reply, ToolStep
from tests.support.calls import aggregate
from tests.support.serving import queue


# -- the four call paths ------------------------------------------------------------------------
def test_invoke_returns_text_usage_and_metadata(serving, make_chat) -> None:
    queue(serving, Reply.text("Paris is sunny.", usage=(12, 4), model="upstream-model-id"))
    reply = make_chat().invoke([SystemMessage("be brief"), HumanMessage("weather?")])
    assert reply.text == "Paris is sunny."
    assert reply.usage_metadata == {"input_tokens": 12, "output_tokens": 4, "total_tokens": 16}
    assert reply.response_metadata["finish_reason"] == "stop"
    assert reply.response_metadata["model_name"] == "upstream-model-id"
    assert reply.response_metadata["id"]
    sent = serving.last_request
    assert sent.path == "/serving-endpoints/chat/invocations"
    assert sent.body == {
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "weather?"},
        ]
    }


async def test_ainvoke(serving, make_chat) -> None:
    queue(serving, Reply.text("async hello"))
    reply = await make_chat().ainvoke("hi")
    assert reply.text == "async hello"


def test_stream_yields_pieces_and_aggregates_like_invoke(serving, make_chat) -> None:
    queue(serving, Reply.text(["Hel", "lo ", "world"], usage=(5, 3)))
    chunks = list(make_chat().stream("hi"))
    assert [c.text for c in chunks if c.text] == ["Hel", "lo ", "world"]
    total = aggregate(chunks)
    assert total.text == "Hello world"
    assert total.usage_metadata == {"input_tokens": 5, "output_tokens": 3, "total_tokens": 8}
    assert total.response_metadata["finish_reason"] == "stop"
    assert serving.last_request.body["stream"] is True
    assert "stream_options" not in serving.last_request.body


async def test_astream(serving, make_chat) -> None:
    queue(serving, Reply.text(["a", "b", "c"]))
    chunks = [chunk async for chunk in make_chat().astream("hi")]
    assert aggregate(chunks).text == "abc"


def test_claude_stream_counts_usage_once(serving, make_chat) -> None:
    # Databricks Claude repeats usage on every chunk; the official package multiplies it.
    queue(
        serving,
        Reply.text(["one ", "two ", "three"], usage=(4982, 3), quirks=Quirks.databricks_claude()),
    )
    total = aggregate(list(make_chat().stream("count")))
    assert total.text == "one two three"
    assert total.usage_metadata["input_tokens"] == 4982
    assert total.usage_metadata["output_tokens"] == 3


def test_batch_and_abatch(serving) -> None:
    llm = ChatDatabricksServing(endpoint="echo", host=serving.host, token=serving.token)
    assert [m.text for m in llm.batch(["a", "b", "c"])] == ["a", "b", "c"]
    results = asyncio.run(llm.abatch(["x", "y"]))
    assert [m.text for m in results] == ["x", "y"]


def test_openai_compatible_route_sends_model(serving, make_chat) -> None:
    queue(serving, Reply.text("ok"))
    reply = make_chat(route="chat/completions").invoke("hi")
    assert reply.text == "ok"
    assert serving.last_request.path == "/serving-endpoints/chat/completions"
    assert serving.last_request.body["model"] == "chat"


def test_base_url_overrides_host(serving) -> None:
    queue(serving, Reply.text("via base_url"))
    llm = ChatDatabricksServing(
        endpoint="chat", base_url=serving.base_url + "/", token=serving.token
    )
    assert llm.invoke("hi").text == "via base_url"


def test_call_time_model_overrides_the_endpoint(serving, make_chat) -> None:
    reply = make_chat().invoke("mirror", model="echo")
    assert reply.text == "mirror"
    assert serving.last_request.path == "/serving-endpoints/echo/invocations"


# -- parameters and bound kwargs ----------------------------------------------------------------
def test_constructor_parameters_are_sent(serving, make_chat) -> None:
    queue(serving, Reply.text("ok"))
    make_chat(temperature=0.2, max_tokens=64, stop=["END"], n=1).invoke("hi")
    body = serving.last_request.body
    assert (body["temperature"], body["max_tokens"], body["stop"], body["n"]) == (
        0.2,
        64,
        ["END"],
        1,
    )


def test_databricks_options_are_never_sent_unless_asked(serving, make_chat) -> None:
    queue(serving, Reply.text("ok"))
    make_chat().invoke("hi")
    assert "databricks_options" not in serving.last_request.body
    assert "custom_inputs" not in serving.last_request.body


def test_bound_kwargs_merge_over_constructor_fields(serving, make_chat) -> None:
    queue(serving, Reply.text("ok", custom_outputs={"echo": True}))
    llm = make_chat(
        custom_inputs={"user": "ana", "team": "support"},
        extra_body={"priority": "low"},
        temperature=0.5,
    )
    bound = llm.bind(
        custom_inputs={"team": "sales"},
        databricks_options={"return_trace": False},
        extra_body={"priority": "high", "channel": "web"},
        temperature=0.0,
        seed=7,
    )
    reply = bound.invoke("hi")
    body = serving.last_request.body
    assert body["custom_inputs"] == {"user": "ana", "team": "sales"}
    assert body["databricks_options"] == {"return_trace": False}
    assert (body["priority"], body["channel"], body["seed"], body["temperature"]) == (
        "high",
        "web",
        7,
        0.0,
    )
    assert reply.response_metadata["custom_outputs"] == {"echo": True}


def test_invoke_kwargs_work_like_bind(serving, make_chat) -> None:
    queue(serving, Reply.text("ok"))
    make_chat().invoke("hi", custom_inputs={"k": 1}, databricks_options={"return_trace": True})
    body = serving.last_request.body
    assert body["custom_inputs"] == {"k": 1}
    assert body["databricks_options"] == {"return_trace": True}


def test_custom_inputs_reach_the_backend_and_outputs_survive_streaming(serving, make_chat) -> None:
    queue(serving, Reply.text(["a", "b"], custom_outputs={"source": "kb", "n": 2}))
    chunks = list(make_chat().bind(custom_inputs={"q": 1}).stream("hi"))
    total = aggregate(chunks)
    assert total.response_metadata["custom_outputs"] == {"source": "kb", "n": 2}
    assert serving.last_request.body["custom_inputs"] == {"q": 1}


# -- returned traces ----------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["field", "bind", "options"])
def test_return_trace_surfaces_trace_on_invoke(serving, make_chat, how: str) -> None:
    queue(serving, Reply.text("traced"))
    llm = make_chat(return_trace=True) if how == "field" else make_chat()
    if how == "bind":
        llm = llm.bind(return_trace=True)
    elif how == "options":
        llm = llm.bind(databricks_options={"return_trace": True})
    reply = llm.invoke("hi")
    assert serving.last_request.body["databricks_options"] == {"return_trace": True}
    meta = reply.response_metadata
    assert meta["trace"]["info"]["trace_id"] == meta["trace_id"]
    assert meta["trace_id"].startswith("tr-")
    assert meta["trace"]["data"]["spans"]
    assert meta["databricks_request_id"]


def test_return_trace_surfaces_trace_on_stream(serving, make_chat) -> None:
    queue(serving, Reply.text(["x", "y"]))
    total = aggregate(list(make_chat(return_trace=True).stream("hi")))
    assert total.text == "xy"
    assert total.response_metadata["trace_id"].startswith("tr-")
    assert (
        total.response_metadata["trace"]["info"]["trace_id"] == total.response_metadata["trace_id"]
    )


# -- reasoning and ChatAgent --------------------------------------------------------------------
def test_reasoning_stays_out_of_text(serving, make_chat) -> None:
    queue(serving, Reply.text("42", reasoning="Let me think about it."))
    reply = make_chat().invoke("answer?")
    assert reply.text == "42"
    reasoning = [b for b in reply.content if isinstance(b, dict) and b["type"] == "reasoning"]
    assert reasoning[0]["reasoning"] == "Let me think about it."

    queue(serving, Reply.text(["4", "2"], reasoning=["Let me ", "think."]))
    total = aggregate(list(make_chat().stream("answer?")))
    assert total.text == "42"
    blocks = [b for b in total.content if isinstance(b, dict) and b["type"] == "reasoning"]
    assert [b["reasoning"] for b in blocks] == ["Let me think."]


def test_chat_agent_endpoint_answers_without_leaking_internal_tool_calls(
    serving, make_chat
) -> None:
    step = ToolStep("lookup", {"q": "x"}, "found x")
    queue(
        serving, Reply.text("The answer is x.", steps=[step], custom_outputs={"k": 1}), name="agent"
    )
    reply = make_chat(endpoint="agent").invoke("q")
    assert reply.text.endswith("The answer is x.")
    assert reply.tool_calls == []
    assert reply.response_metadata["custom_outputs"] == {"k": 1}
    assert any(m.get("role") == "tool" for m in reply.response_metadata["messages"])

    queue(serving, Reply.text(["The ", "answer."], steps=[step]), name="agent")
    total = aggregate(list(make_chat(endpoint="agent").stream("q")))
    assert total.text.endswith("The answer.")
    assert total.tool_calls == []


# -- tools and structured output ----------------------------------------------------------------
@tool
def get_weather(city: str) -> str:
    """Get the weather for a city."""
    return f"sunny in {city}"


@pytest.mark.parametrize(
    ("choice", "sent"),
    [
        ("auto", "auto"),
        ("none", "none"),
        ("required", "required"),
        ("any", "required"),
        ("get_weather", {"type": "function", "function": {"name": "get_weather"}}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            {"type": "function", "function": {"name": "get_weather"}},
        ),
    ],
)
def test_bind_tools_sends_tools_and_tool_choice(serving, make_chat, choice: Any, sent: Any) -> None:
    queue(serving, Reply.text("ok"))
    make_chat().bind_tools([get_weather], tool_choice=choice).invoke("weather?")
    body = serving.last_request.body
    assert body["tool_choice"] == sent
    assert body["tools"][0]["function"]["name"] == "get_weather"
    assert body["tools"][0]["function"]["parameters"]["properties"]["city"]["type"] == "string"


def test_tool_calls_invoke_and_stream(serving, make_chat) -> None:
    llm = make_chat().bind_tools([get_weather])
    queue(serving, Reply.tool_call("get_weather", {"city": "Paris"}, id="call_1"))
    reply = llm.invoke("weather?")
    assert reply.tool_calls == [
        {"name": "get_weather", "args": {"city": "Paris"}, "id": "call_1", "type": "tool_call"}
    ]
    assert reply.response_metadata["finish_reason"] == "tool_calls"

    queue(serving, Reply.tool_call("get_weather", {"city": "Oslo"}, id="call_2", text="Checking. "))
    total = aggregate(list(llm.stream("weather?")))
    assert total.text == "Checking. "
    assert [(c["name"], c["args"], c["id"]) for c in total.tool_calls] == [
        ("get_weather", {"city": "Oslo"}, "call_2")
    ]


def test_zero_argument_tool_with_empty_arguments_in_stream(serving, make_chat) -> None:
    queue(serving, Reply.tool_call("get_time", quirks=Quirks(empty_arguments_for_no_args=True)))
    total = aggregate(list(make_chat().stream("time?")))
    assert [(c["name"], c["args"]) for c in total.tool_calls] == [("get_time", {})]


@pytest.mark.parametrize("streaming", [False, True])
def test_multi_turn_tool_loop(serving, make_chat, streaming: bool) -> None:
    llm = make_chat(streaming=streaming).bind_tools([get_weather])
    queue(
        serving,
        Reply.tool_call("get_weather", {"city": "Paris"}, id="call_9"),
        Reply.text("It is sunny in Paris."),
    )
    history: list[Any] = [HumanMessage("weather in Paris?")]
    first = llm.invoke(history)
    history.append(first)
    for call in first.tool_calls:
        history.append(ToolMessage(get_weather.invoke(call["args"]), tool_call_id=call["id"]))
    final = llm.invoke(history)
    assert final.text == "It is sunny in Paris."
    sent = serving.last_request.body["messages"]
    assert sent[1]["role"] == "assistant"
    assert sent[1]["tool_calls"][0]["id"] == "call_9"
    assert sent[1]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert sent[2] == {"role": "tool", "tool_call_id": "call_9", "content": "sunny in Paris"}


class Weather(BaseModel):
    city: str
    degrees: int


def test_structured_output_function_calling(serving, make_chat) -> None:
    queue(serving, Reply.tool_call("Weather", {"city": "Rome", "degrees": 21}))
    result = make_chat().with_structured_output(Weather).invoke("weather?")
    assert result == Weather(city="Rome", degrees=21)
    assert serving.last_request.body["tool_choice"] == {
        "type": "function",
        "function": {"name": "Weather"},
    }


def test_structured_output_json_schema(serving, make_chat) -> None:
    queue(serving, Reply.text('{"city": "Rome", "degrees": 21}'))
    result = (
        make_chat().with_structured_output(Weather, method="json_schema", strict=True).invoke("w")
    )
    assert result == Weather(city="Rome", degrees=21)
    fmt = serving.last_request.body["response_format"]
    assert fmt["type"] == "json_schema"
    assert fmt["json_schema"]["name"] == "Weather"
    assert fmt["json_schema"]["strict"] is True
    assert set(fmt["json_schema"]["schema"]["properties"]) == {"city", "degrees"}


def test_structured_output_json_mode_and_include_raw(serving, make_chat) -> None:
    queue(serving, Reply.text('{"city": "Rome"}'))
    result = (
        make_chat().with_structured_output(None, method="json_mode", include_raw=True).invoke("w")
    )
    assert result["parsed"] == {"city": "Rome"}
    assert result["raw"].text == '{"city": "Rome"}'
    assert result["parsing_error"] is None
    assert serving.last_request.body["response_format"] == {"type": "json_object"}

    queue(serving, Reply.text("not json"))
    bad = (
        make_chat()
        .with_structured_output(Weather, method="json_mode", include_raw=True)
        .invoke("w")
    )
    assert bad["parsed"] is None
    assert bad["parsing_error"] is not None
