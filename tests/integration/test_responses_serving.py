"""ChatDatabricksResponses against the local endpoint over loopback HTTP: calls, body, metadata."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.runnables import Runnable
from langchain_core.tools import tool
from pydantic import BaseModel

from langchain_dbx_serving import (
    AgentError,
    ChatDatabricksResponses,
    EndpointNotFoundError,
    RateLimitError,
)
from langchain_dbx_serving.testing import LocalEndpoint, Quirks, RawReply, Reply, ToolStep
from langchain_dbx_serving.transport import client as transport_client
from tests.support.calls import MODES, aggregate, ask
from tests.support.serving import queue

TRACE_HEADER = "x-mlflow-return-trace-id"


def blocks(message: BaseMessage, kind: str) -> list[dict[str, Any]]:
    return [b for b in message.content if isinstance(b, dict) and b.get("type") == kind]


def reply(ep: LocalEndpoint, *replies: Any) -> None:
    queue(ep, *replies, name="responder")


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep exponential backoff but scale it down, so retry tests take milliseconds."""
    monkeypatch.setattr(transport_client, "_INITIAL_BACKOFF", 0.001)


@pytest.fixture
def make_agent(serving: LocalEndpoint) -> Callable[..., ChatDatabricksResponses]:
    """Build a ``ChatDatabricksResponses`` on the local endpoint's ``responder``."""

    def make(**fields: Any) -> ChatDatabricksResponses:
        fields.setdefault("endpoint", "responder")
        fields.setdefault("host", serving.host)
        fields.setdefault("token", serving.token)
        return ChatDatabricksResponses(**fields)

    return make


# -- the call paths -----------------------------------------------------------------------------
def test_invoke_returns_text_usage_and_metadata(serving, make_agent) -> None:
    reply(serving, Reply.text("Paris is sunny.", usage=(12, 4), custom_outputs={"src": "kb"}))
    answer = make_agent().invoke([SystemMessage("be brief"), HumanMessage("weather?")])
    assert answer.text == "Paris is sunny."
    assert answer.tool_calls == []
    assert answer.usage_metadata == {"input_tokens": 12, "output_tokens": 4, "total_tokens": 16}
    meta = answer.response_metadata
    assert meta["custom_outputs"] == {"src": "kb"}
    assert meta["status"] == "completed"
    assert meta["id"].startswith("resp_")
    assert [item["type"] for item in meta["output"]] == ["message"]
    assert "trace_id" not in meta and "trace" not in meta
    sent = serving.last_request
    assert (sent.method, sent.path) == ("POST", "/serving-endpoints/responses")
    assert TRACE_HEADER not in sent.headers
    assert sent.body == {
        "model": "responder",
        "input": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "weather?"},
        ],
    }


async def test_ainvoke(serving, make_agent) -> None:
    reply(serving, Reply.text("async hello", usage=(3, 2)))
    answer = await make_agent().ainvoke("hi")
    assert answer.text == "async hello"
    assert answer.usage_metadata == {"input_tokens": 3, "output_tokens": 2, "total_tokens": 5}
    assert serving.last_request.body == {
        "model": "responder",
        "input": [{"role": "user", "content": "hi"}],
    }


def test_stream_yields_pieces_and_aggregates_like_invoke(serving, make_agent) -> None:
    reply(serving, Reply.text(["Hel", "lo ", "world"], usage=(5, 3), custom_outputs={"n": 2}))
    chunks = list(make_agent().stream("hi"))
    assert [c.text for c in chunks if c.text] == ["Hel", "lo ", "world"]
    total = aggregate(chunks)
    assert total.text == "Hello world"
    assert total.usage_metadata == {"input_tokens": 5, "output_tokens": 3, "total_tokens": 8}
    assert total.response_metadata["custom_outputs"] == {"n": 2}
    assert total.response_metadata["status"] == "completed"
    assert [item["type"] for item in total.response_metadata["output"]] == ["message"]
    assert serving.last_request.body == {
        "model": "responder",
        "input": [{"role": "user", "content": "hi"}],
        "stream": True,
    }


async def test_astream(serving, make_agent) -> None:
    reply(serving, Reply.text(["a", "b", "c"], usage=(1, 3)))
    chunks = [chunk async for chunk in make_agent().astream("hi")]
    assert [c.text for c in chunks if c.text] == ["a", "b", "c"]
    total = aggregate(chunks)
    assert total.text == "abc"
    assert total.usage_metadata == {"input_tokens": 1, "output_tokens": 3, "total_tokens": 4}


def test_batch_and_abatch(serving, make_agent) -> None:
    llm = make_agent(endpoint="echo")
    assert [m.text for m in llm.batch(["a", "b", "c"])] == ["a", "b", "c"]
    results = asyncio.run(llm.abatch(["x", "y"]))
    assert [m.text for m in results] == ["x", "y"]
    assert {r.body["model"] for r in serving.requests} == {"echo"}


# -- routes -------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
async def test_invocations_route_names_the_endpoint_in_the_path(
    serving, make_agent, mode: str
) -> None:
    reply(serving, Reply.text("via invocations"))
    answer = await ask(make_agent(route="invocations"), "hi", mode)
    assert answer.text == "via invocations"
    sent = serving.last_request
    assert sent.path == "/serving-endpoints/responder/invocations"
    assert "model" not in sent.body
    assert sent.body["input"] == [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize("mode", MODES)
async def test_base_url_of_an_agent_app_posts_its_root_responses_route(serving, mode: str) -> None:
    reply(serving, Reply.text("from the app"))
    app = ChatDatabricksResponses(endpoint="responder", base_url=serving.host, token=serving.token)
    answer = await ask(app, "hi", mode)
    assert answer.text == "from the app"
    assert serving.last_request.path == "/responses"


def test_call_time_model_overrides_the_endpoint(serving, make_agent) -> None:
    assert make_agent().invoke("mirror", model="echo").text == "mirror"
    assert serving.last_request.body["model"] == "echo"


# -- the request body ---------------------------------------------------------------------------
def test_parameters_context_and_custom_inputs_merge_into_the_body(serving, make_agent) -> None:
    reply(serving, Reply.text("a cat"))
    llm = make_agent(
        temperature=0.2,
        max_tokens=64,
        stop=["END"],
        context={"conversation_id": "conv-1", "user_id": "u-1"},
        custom_inputs={"team": "support", "lang": "en"},
    )
    bound = llm.bind(
        context={"user_id": "ana"},
        custom_inputs={"lang": "fr"},
        reasoning={"effort": "low", "summary": "auto"},
    )
    png = "iVBORw0KGgo="
    question = HumanMessage(
        [
            {"type": "text", "text": "what is this?"},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}},
            {"type": "image", "base64": png, "mime_type": "image/png"},
        ]
    )
    assert bound.invoke([question]).text == "a cat"
    assert serving.last_request.body == {
        "model": "responder",
        "input": [
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "what is this?"},
                    {"type": "input_image", "image_url": f"data:image/png;base64,{png}"},
                    {"type": "input_image", "image_url": f"data:image/png;base64,{png}"},
                ],
            }
        ],
        "temperature": 0.2,
        "max_output_tokens": 64,
        "stop": ["END"],
        "context": {"conversation_id": "conv-1", "user_id": "ana"},
        "custom_inputs": {"team": "support", "lang": "fr"},
        "reasoning": {"effort": "low", "summary": "auto"},
    }
    assert TRACE_HEADER not in serving.last_request.headers


def test_invoke_kwargs_work_like_bind_and_reasoning_effort_maps(serving, make_agent) -> None:
    reply(serving, Reply.text("ok"))
    make_agent().invoke(
        "hi", custom_inputs={"k": 1}, reasoning_effort="high", max_tokens=5, temperature=0
    )
    assert serving.last_request.body == {
        "model": "responder",
        "input": [{"role": "user", "content": "hi"}],
        "custom_inputs": {"k": 1},
        "reasoning": {"effort": "high"},
        "max_output_tokens": 5,
        "temperature": 0,
    }


def test_assistant_history_is_sent_as_output_message_items(serving, make_agent) -> None:
    reply(serving, Reply.text("fine"))
    history = [
        HumanMessage("hi"),
        AIMessage("Hello! How can I help?", id="msg_prev"),
        HumanMessage([{"type": "text", "text": "how "}, {"type": "text", "text": "are you?"}]),
    ]
    assert make_agent().invoke(history).text == "fine"
    assert serving.last_request.body["input"] == [
        {"role": "user", "content": "hi"},
        {
            "type": "message",
            "role": "assistant",
            "id": "msg_prev",
            "content": [
                {"type": "output_text", "text": "Hello! How can I help?", "annotations": []}
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "input_text", "text": "how "},
                {"type": "input_text", "text": "are you?"},
            ],
        },
    ]


def test_databricks_options_are_sent_only_when_asked(serving, make_agent) -> None:
    reply(serving, Reply.text("one"), Reply.text("two"))
    make_agent().invoke("hi")
    assert "databricks_options" not in serving.last_request.body
    assert "custom_inputs" not in serving.last_request.body
    assert "context" not in serving.last_request.body
    make_agent(databricks_options={"client_request_id": "req-1"}).invoke("hi")
    assert serving.last_request.body["databricks_options"] == {"client_request_id": "req-1"}
    assert TRACE_HEADER not in serving.last_request.headers


# -- returned traces ----------------------------------------------------------------------------
def assert_trace_metadata(meta: dict[str, Any]) -> None:
    assert meta["trace_id"].startswith("tr-")
    assert meta["trace"]["info"]["trace_id"] == meta["trace_id"]
    assert meta["trace"]["data"]["spans"]
    assert isinstance(meta["databricks_request_id"], str) and meta["databricks_request_id"]


@pytest.mark.parametrize("how", ["field", "bind", "options"])
def test_return_trace_sends_the_header_and_options_and_surfaces_the_trace(
    serving, make_agent, how: str
) -> None:
    reply(serving, Reply.text("traced"))
    llm: Runnable = make_agent(return_trace=True) if how == "field" else make_agent()
    if how == "bind":
        llm = llm.bind(return_trace=True)
    elif how == "options":
        llm = llm.bind(databricks_options={"return_trace": True})
    answer = llm.invoke("hi")
    assert answer.text == "traced"
    sent = serving.last_request
    assert sent.headers[TRACE_HEADER] == "true"
    assert sent.body["databricks_options"] == {"return_trace": True}
    assert_trace_metadata(answer.response_metadata)


@pytest.mark.parametrize("mode", ["stream", "astream"])
async def test_return_trace_surfaces_the_trace_on_the_aggregated_stream(
    serving, make_agent, mode: str
) -> None:
    reply(serving, Reply.text(["x", "y"], custom_outputs={"k": 1}))
    total = await ask(make_agent(return_trace=True), "hi", mode)
    assert total.text == "xy"
    assert serving.last_request.headers[TRACE_HEADER] == "true"
    assert serving.last_request.body["databricks_options"] == {"return_trace": True}
    assert_trace_metadata(total.response_metadata)
    assert total.response_metadata["custom_outputs"] == {"k": 1}


def test_return_trace_false_at_call_time_turns_it_off(serving, make_agent) -> None:
    reply(serving, Reply.text("untraced"))
    answer = make_agent(return_trace=True).invoke("hi", return_trace=False)
    assert TRACE_HEADER not in serving.last_request.headers
    assert serving.last_request.body["databricks_options"] == {"return_trace": False}
    assert "trace_id" not in answer.response_metadata


# -- reasoning and the agent's own tool steps ---------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
async def test_reasoning_stays_out_of_text(serving, make_agent, mode: str) -> None:
    reply(serving, Reply.text(["4", "2"], reasoning=["Six times ", "seven."]))
    answer = await ask(make_agent(), "answer?", mode)
    assert answer.text == "42"
    assert [b["reasoning"] for b in blocks(answer, "reasoning")] == ["Six times seven."]


@pytest.mark.parametrize("mode", MODES)
async def test_agent_tool_steps_are_server_blocks_not_tool_calls(
    serving, make_agent, mode: str
) -> None:
    step = ToolStep("lookup", {"q": "refunds"}, "5 days", id="call_lk")
    reply(serving, Reply.text(["Refunds take ", "5 days."], steps=[step]))
    answer = await ask(make_agent(), "refunds?", mode)
    assert answer.text == "Refunds take 5 days."
    assert answer.tool_calls == [] and answer.invalid_tool_calls == []
    (call,) = blocks(answer, "server_tool_call")
    assert (call["id"], call["name"], call["args"]) == ("call_lk", "lookup", {"q": "refunds"})
    (result,) = blocks(answer, "server_tool_result")
    assert (result["tool_call_id"], result["output"]) == ("call_lk", "5 days")
    kinds = [item["type"] for item in answer.response_metadata["output"]]
    assert kinds == ["function_call", "function_call_output", "message"]


def test_agent_answering_a_bound_tool_itself_is_not_a_tool_call(serving, make_agent) -> None:
    # The agent ran a tool that has the name of one the caller bound, and answered it itself.
    step = ToolStep("get_weather", {"city": "Rome"}, "21C", id="call_own")
    reply(serving, Reply.text("21C in Rome.", steps=[step]))
    answer = make_agent().bind_tools([get_weather]).invoke("weather?")
    assert answer.tool_calls == []
    assert [b["id"] for b in blocks(answer, "server_tool_call")] == ["call_own"]
    assert answer.text == "21C in Rome."


def test_server_blocks_go_back_as_items_in_the_next_turn(serving, make_agent) -> None:
    step = ToolStep("lookup", {"q": "refunds"}, "5 days", id="call_lk")
    reply(serving, Reply.text("Refunds take 5 days.", steps=[step]), Reply.text("You're welcome."))
    llm = make_agent()
    first = llm.invoke("refunds?")
    assert llm.invoke(["refunds?", first, "thanks"]).text == "You're welcome."
    sent = serving.last_request.body["input"]
    assert sent[0] == {"role": "user", "content": "refunds?"}
    assert [(i.get("type"), i.get("role")) for i in sent[1:]] == [
        ("function_call", None),
        ("function_call_output", None),
        ("message", "assistant"),
        (None, "user"),
    ]
    assert (sent[1]["call_id"], sent[1]["name"], json.loads(sent[1]["arguments"])) == (
        "call_lk",
        "lookup",
        {"q": "refunds"},
    )
    assert (sent[2]["call_id"], sent[2]["output"]) == ("call_lk", "5 days")
    assert sent[3]["content"][0]["text"] == "Refunds take 5 days."


# -- Model Serving style streams ----------------------------------------------------------------
def test_model_serving_agent_stream_without_lifecycle_events(serving, make_agent) -> None:
    step = ToolStep("lookup", {"q": "refunds"}, "5 days", id="call_lk")
    quirky = Reply.text(
        ["Refunds take ", "5 days."],
        steps=[step],
        custom_outputs={"source": "kb"},
        quirks=Quirks.model_serving_agent(),
    )
    reply(serving, quirky)
    chunks = list(make_agent().stream("refunds?"))
    assert [c.text for c in chunks if c.text] == ["Refunds take ", "5 days."]
    total = aggregate(chunks)
    assert total.text == "Refunds take 5 days."
    assert total.tool_calls == []
    assert [b["id"] for b in blocks(total, "server_tool_call")] == ["call_lk"]
    assert [b["output"] for b in blocks(total, "server_tool_result")] == ["5 days"]
    assert total.response_metadata["custom_outputs"] == {"source": "kb"}
    kinds = [item["type"] for item in total.response_metadata["output"]]
    assert kinds == ["function_call", "function_call_output", "message"]


REQUEST_ID = "req-7f3a"
SEARCH_CALL = {
    "type": "function_call",
    "id": "fc_a",
    "call_id": "call_a",
    "name": "search_docs",
    "arguments": '{"q": "refunds"}',
    "status": "completed",
}
ANSWER = {
    "type": "message",
    "id": "msg_y",
    "role": "assistant",
    "status": "completed",
    "content": [{"type": "output_text", "text": "Refunds take 5 days.", "annotations": []}],
}


def lifecycle(response_id: str, created_at: float) -> dict[str, Any]:
    return {"id": response_id, "object": "response", "created_at": created_at, "status": None}


def event(kind: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "id": REQUEST_ID, **fields}


# Two agent turns in one HTTP stream, as Model Serving relays a tool-using agent: a request id
# on every event, float created_at, null status, the tool result as a bare item between the two
# lifecycles, item ids differing between `added` and the deltas, databricks_output at the end.
TWO_LIFECYCLES = [
    event("response.created", response={**lifecycle("resp_a", 1.5), "output": []}),
    event(
        "response.output_item.added",
        output_index=0,
        item={**SEARCH_CALL, "arguments": "", "status": "in_progress"},
    ),
    event("response.function_call_arguments.delta", item_id="fc_a", output_index=0, delta='{"q": '),
    event(
        "response.function_call_arguments.delta",
        item_id="fc_a",
        output_index=0,
        delta='"refunds"}',
    ),
    event("response.output_item.done", output_index=0, item=SEARCH_CALL),
    event(
        "response.completed",
        response={
            **lifecycle("resp_a", 1.5),
            "output": [SEARCH_CALL],
            "usage": {"input_tokens": 10, "output_tokens": 5, "total_tokens": 15},
        },
    ),
    {"type": "function_call_output", "call_id": "call_a", "output": "Refunds take 5 days."},
    event("response.created", response={**lifecycle("resp_b", 2.5), "output": []}),
    event(
        "response.output_item.added",
        output_index=0,
        item={"type": "message", "id": "msg_x", "role": "assistant", "content": []},
    ),
    event(
        "response.output_text.delta",
        item_id="msg_y",
        output_index=0,
        content_index=0,
        delta="Refunds take ",
    ),
    event(
        "response.output_text.delta",
        item_id="msg_y",
        output_index=0,
        content_index=0,
        delta="5 days.",
    ),
    event("response.output_item.done", output_index=0, item=ANSWER),
    event(
        "response.completed",
        response={
            **lifecycle("resp_b", 2.5),
            "output": [ANSWER],
            "usage": {"input_tokens": 20, "output_tokens": 6, "total_tokens": 26},
        },
        custom_outputs={"turns": 2},
        databricks_output={"databricks_request_id": REQUEST_ID},
    ),
]


@pytest.mark.parametrize("mode", ["stream", "astream"])
async def test_stream_with_two_lifecycles_is_decoded_once(serving, make_agent, mode: str) -> None:
    reply(serving, RawReply(events=TWO_LIFECYCLES))
    total = await ask(make_agent(), "refunds?", mode)
    assert total.text == "Refunds take 5 days."
    assert total.tool_calls == [] and total.tool_call_chunks == []
    (call,) = blocks(total, "server_tool_call")
    assert (call["id"], call["name"], call["args"]) == ("call_a", "search_docs", {"q": "refunds"})
    (result,) = blocks(total, "server_tool_result")
    assert (result["tool_call_id"], result["output"]) == ("call_a", "Refunds take 5 days.")
    assert total.usage_metadata == {"input_tokens": 30, "output_tokens": 11, "total_tokens": 41}
    meta = total.response_metadata
    assert meta["custom_outputs"] == {"turns": 2}
    assert meta["databricks_request_id"] == REQUEST_ID
    assert meta["output"] == [
        SEARCH_CALL,
        {"type": "function_call_output", "call_id": "call_a", "output": "Refunds take 5 days."},
        ANSWER,
    ]


# -- tools and structured output ----------------------------------------------------------------
@tool
def get_weather(city: str) -> str:
    """Get the weather for a city."""
    return f"sunny in {city}"


WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Get the weather for a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


@pytest.mark.parametrize(
    ("choice", "sent"),
    [
        ("auto", "auto"),
        ("none", "none"),
        ("required", "required"),
        ("any", "required"),
        (True, "required"),
        ("get_weather", {"type": "function", "name": "get_weather"}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            {"type": "function", "name": "get_weather"},
        ),
    ],
)
def test_bind_tools_sends_responses_tools_and_tool_choice(
    serving, make_agent, choice: Any, sent: Any
) -> None:
    reply(serving, Reply.text("ok"))
    make_agent().bind_tools([get_weather], tool_choice=choice).invoke("weather?")
    assert serving.last_request.body == {
        "model": "responder",
        "input": [{"role": "user", "content": "weather?"}],
        "tools": [WEATHER_TOOL],
        "tool_choice": sent,
    }


def test_tool_call_on_invoke(serving, make_agent) -> None:
    reply(serving, Reply.tool_call("get_weather", {"city": "Paris"}, id="call_1"))
    answer = make_agent().bind_tools([get_weather]).invoke("weather?")
    assert answer.tool_calls == [
        {"name": "get_weather", "args": {"city": "Paris"}, "id": "call_1", "type": "tool_call"}
    ]
    assert answer.text == ""
    assert blocks(answer, "server_tool_call") == []


@pytest.mark.parametrize("mode", ["stream", "astream"])
async def test_tool_call_arguments_stream_as_deltas_and_aggregate(
    serving, make_agent, mode: str
) -> None:
    city = "Llanfairpwllgwyngyll, Wales"
    reply(serving, Reply.tool_call("get_weather", {"city": city}, id="call_2", text="Checking. "))
    llm = make_agent().bind_tools([get_weather])
    if mode == "stream":
        chunks = list(llm.stream("weather?"))
    else:
        chunks = [chunk async for chunk in llm.astream("weather?")]
    pieces = [piece for chunk in chunks for piece in chunk.tool_call_chunks]
    assert len(pieces) >= 3  # the name first, then several argument fragments
    assert (pieces[0]["name"], pieces[0]["id"]) == ("get_weather", "call_2")
    assert "".join(piece["args"] or "" for piece in pieces) == json.dumps({"city": city})
    total = aggregate(chunks)
    assert total.text == "Checking. "
    assert total.tool_calls == [
        {"name": "get_weather", "args": {"city": city}, "id": "call_2", "type": "tool_call"}
    ]


@pytest.mark.parametrize("streaming", [False, True])
def test_multi_turn_tool_loop(serving, make_agent, streaming: bool) -> None:
    llm = make_agent(streaming=streaming).bind_tools([get_weather])
    reply(
        serving,
        Reply.tool_call("get_weather", {"city": "Paris"}, id="call_9", text="Let me check. "),
        Reply.text("It is sunny in Paris."),
    )
    history: list[BaseMessage] = [HumanMessage("weather in Paris?")]
    first = llm.invoke(history)
    assert [(c["name"], c["args"], c["id"]) for c in first.tool_calls] == [
        ("get_weather", {"city": "Paris"}, "call_9")
    ]
    history.append(first)
    for call in first.tool_calls:
        history.append(ToolMessage(get_weather.invoke(call["args"]), tool_call_id=call["id"]))
    final = llm.invoke(history)
    assert final.text == "It is sunny in Paris."
    assert final.tool_calls == []
    body = serving.last_request.body
    assert body["tools"] == [WEATHER_TOOL]
    user, said, call, output = body["input"]
    assert user == {"role": "user", "content": "weather in Paris?"}
    assert (said["type"], said["role"], said["content"]) == (
        "message",
        "assistant",
        [{"type": "output_text", "text": "Let me check. ", "annotations": []}],
    )
    assert isinstance(said["id"], str) and said["id"]
    assert call == {
        "type": "function_call",
        "call_id": "call_9",
        "name": "get_weather",
        "arguments": '{"city": "Paris"}',
    }
    assert output == {
        "type": "function_call_output",
        "call_id": "call_9",
        "output": "sunny in Paris",
    }


class Weather(BaseModel):
    """The weather in a city."""

    city: str
    degrees: int


WEATHER_SCHEMA = {
    "title": "Weather",
    "description": "The weather in a city.",
    "type": "object",
    "properties": {"city": {"type": "string"}, "degrees": {"type": "integer"}},
    "required": ["city", "degrees"],
}


def test_structured_output_function_calling(serving, make_agent) -> None:
    reply(serving, Reply.tool_call("Weather", {"city": "Rome", "degrees": 21}))
    result = make_agent().with_structured_output(Weather).invoke("weather?")
    assert result == Weather(city="Rome", degrees=21)
    body = serving.last_request.body
    assert body["tool_choice"] == {"type": "function", "name": "Weather"}
    assert [(t["type"], t["name"]) for t in body["tools"]] == [("function", "Weather")]
    assert set(body["tools"][0]["parameters"]["properties"]) == {"city", "degrees"}


def test_structured_output_json_schema_sends_text_format(serving, make_agent) -> None:
    reply(serving, Reply.text('{"city": "Rome", "degrees": 21}'))
    structured = make_agent().with_structured_output(Weather, method="json_schema", strict=True)
    assert structured.invoke("weather?") == Weather(city="Rome", degrees=21)
    assert serving.last_request.body == {
        "model": "responder",
        "input": [{"role": "user", "content": "weather?"}],
        "text": {
            "format": {
                "type": "json_schema",
                "name": "Weather",
                # strict: the schema is made strict-compatible
                "schema": {**WEATHER_SCHEMA, "additionalProperties": False},
                "strict": True,
            }
        },
    }


def test_structured_output_json_mode(serving, make_agent) -> None:
    reply(serving, Reply.text('{"city": "Rome", "degrees": 21}'))
    result = make_agent().with_structured_output(Weather, method="json_mode").invoke("weather?")
    assert result == Weather(city="Rome", degrees=21)
    assert serving.last_request.body["text"] == {"format": {"type": "json_object"}}
    assert "response_format" not in serving.last_request.body


# -- errors -------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["stream", "astream"])
async def test_error_event_inside_a_stream_is_an_agent_error(
    serving, make_agent, mode: str
) -> None:
    reply(serving, Reply.text(["partial "], stream_error="guardrail blocked the answer"))
    received: list[str] = []
    with pytest.raises(AgentError) as info:
        if mode == "stream":
            received += [chunk.text for chunk in make_agent().stream("hi")]
        else:
            received += [chunk.text async for chunk in make_agent().astream("hi")]
    assert "guardrail blocked the answer" in str(info.value)
    assert info.value.error_code == "INTERNAL_ERROR"


def test_agentserver_error_event_after_partial_text_is_an_agent_error(serving, make_agent) -> None:
    partial = {"type": "response.output_text.delta", "item_id": "msg_1", "delta": "Partial "}
    reply(serving, RawReply(events=[partial, {"error": "agent exploded on purpose"}]))
    received: list[str] = []
    with pytest.raises(AgentError) as info:
        for chunk in make_agent().stream("hi"):
            received.append(chunk.text)
    assert "agent exploded on purpose" in str(info.value)
    assert received == ["Partial "]


def test_failed_whole_reply_is_an_agent_error(serving, make_agent) -> None:
    failed = {
        "object": "response",
        "id": "resp_f",
        "status": "failed",
        "output": [],
        "error": {"code": "server_error", "message": "the tool backend timed out"},
    }
    reply(serving, RawReply(body=failed))
    with pytest.raises(AgentError) as info:
        make_agent().invoke("hi")
    assert "the tool backend timed out" in str(info.value)
    assert info.value.error_code == "server_error"


def test_unknown_endpoint_names_the_endpoint(serving, make_agent) -> None:
    with pytest.raises(EndpointNotFoundError) as info:
        make_agent(endpoint="no-such-agent").invoke("hi")
    assert (info.value.status_code, info.value.endpoint) == (404, "no-such-agent")
    assert "no-such-agent" in str(info.value)


@pytest.mark.parametrize("mode", MODES)
async def test_rate_limit_is_retried(serving, make_agent, mode: str) -> None:
    limited = Reply.error(429, "REQUEST_LIMIT_EXCEEDED", "Too many requests", retry_after=0)
    reply(serving, limited, Reply.text(["final", "ly"]))
    assert (await ask(make_agent(), "hi", mode)).text == "finally"
    assert len(serving.requests) == 2


def test_rate_limit_without_retries_raises(serving, make_agent) -> None:
    reply(serving, Reply.error(429, "REQUEST_LIMIT_EXCEEDED", "Too many", retry_after=7))
    with pytest.raises(RateLimitError) as info:
        make_agent(max_retries=0).invoke("hi")
    assert info.value.retry_after == 7.0
    assert len(serving.requests) == 1
