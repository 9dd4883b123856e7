"""Bad input meets a typed error at the edge where it enters.

Going out: request values JSON cannot carry are a ``RequestEncodingError`` (a ``ValueError``)
naming the field, and nothing is sent. Coming in: replies nested too deeply, or with fields of
the wrong type, are a ``MalformedResponseError`` naming the endpoint and request id; SSE line
shapes cannot hold more memory than ``max_event_bytes``. Hosts: no scheme, a
``/serving-endpoints`` suffix, the same for every class.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import re
import tracemalloc
from typing import Any

import pytest
from langchain_core.messages import HumanMessage

from langchain_dbx_serving import (
    AgentEndpoint,
    ChatDatabricksResponses,
    ChatDatabricksServing,
    DatabricksServingEmbeddings,
)
from langchain_dbx_serving.errors import (
    ConfigurationError,
    MalformedResponseError,
    RequestEncodingError,
)
from langchain_dbx_serving.testing import LocalEndpoint, Reply
from langchain_dbx_serving.transport.sse import SSEDecoder
from tests.reliability.raw_server import HOLD, http_head
from tests.support.serving import queue

TOKEN = "bad-input-token-0123456789"


def call(model: Any, mode: str, prompt: Any) -> Any:
    if mode == "invoke":
        return model.invoke(prompt)
    if mode == "ainvoke":
        return asyncio.run(model.ainvoke(prompt))
    return list(model.stream(prompt))


# -- request values JSON cannot carry ------------------------------------------------------------
BAD_VALUES = [
    ({"custom_inputs": {"score": float("nan")}}, "custom_inputs.score", "nan"),
    ({"custom_inputs": {"limit": float("inf")}}, "custom_inputs.limit", "inf"),
    ({"custom_inputs": {"when": datetime.datetime(2026, 1, 1)}}, "custom_inputs.when", "datetime"),
    ({"custom_inputs": {"ids": {1, 2}}}, "custom_inputs.ids", "set"),
    ({"custom_inputs": {1: "one"}}, "custom_inputs", "int key"),
    ({"custom_inputs": {"deep": [{"x": b"raw"}]}}, "custom_inputs.deep[0].x", "bytes"),
    ({"custom_inputs": {"name": "caf\udce9"}}, "custom_inputs.name", "surrogate"),
]


@pytest.mark.parametrize("mode", ["invoke", "ainvoke", "stream"])
@pytest.mark.parametrize(("kwargs", "field", "what"), BAD_VALUES, ids=[b[2] for b in BAD_VALUES])
def test_request_values_json_cannot_carry_are_refused_before_sending(
    serving: LocalEndpoint, mode: str, kwargs: dict[str, Any], field: str, what: str
) -> None:
    model = ChatDatabricksServing(endpoint="chat", host=serving.host, token=serving.token)
    with pytest.raises(RequestEncodingError) as info:
        call(model.bind(**kwargs), mode, "hi")
    assert isinstance(info.value, ValueError)
    assert info.value.field == field and field in str(info.value)
    assert serving.requests == [], "nothing may be sent"


@pytest.mark.parametrize("mode", ["invoke", "stream"])
def test_a_lone_surrogate_in_a_message_names_the_message(serving: LocalEndpoint, mode: str) -> None:
    model = ChatDatabricksServing(endpoint="chat", host=serving.host, token=serving.token)
    with pytest.raises(RequestEncodingError) as info:
        call(model, mode, [HumanMessage("ok"), HumanMessage("bad \ud800 text")])
    assert info.value.field == "messages[1].content"
    assert "surrogate" in str(info.value)
    assert serving.requests == []


def test_agent_endpoint_custom_inputs_are_checked_too(serving: LocalEndpoint) -> None:
    agent = AgentEndpoint("responder", host=serving.host, token=serving.token)
    with pytest.raises(RequestEncodingError) as info:
        agent.invoke({"input": "hi", "custom_inputs": {"at": datetime.date(2026, 1, 1)}})
    assert info.value.field == "custom_inputs.at"
    assert serving.requests == []


# -- replies of the wrong shape ------------------------------------------------------------------
def whole(body: bytes) -> bytes:
    return http_head(Content_Length=str(len(body)), X_Request_Id="req-42") + body


@pytest.mark.parametrize("depth", [300, 100_000])
@pytest.mark.parametrize("mode", ["invoke", "ainvoke"])
def test_deeply_nested_replies_are_malformed_not_recursion(
    raw_servers: Any, depth: int, mode: str
) -> None:
    deep = b"[" * depth + b"]" * depth
    body = b'{"choices": [{"index": 0, "message": {"content": "x", "extra": ' + deep + b"}}]}"
    srv = raw_servers([whole(body)])
    model = ChatDatabricksServing(endpoint="m", host=srv.url, token=TOKEN)
    with pytest.raises(MalformedResponseError) as info:
        call(model, mode, "hi")
    assert info.value.endpoint == "m" and info.value.request_id == "req-42"


def test_a_deeply_nested_stream_event_is_malformed(raw_servers: Any) -> None:
    deep = b"[" * 50_000 + b"]" * 50_000
    event = b'data: {"choices": [{"index": 0, "delta": {"content": ' + deep + b"}}]}\n\n"
    head = http_head(content_type="text/event-stream", X_Request_Id="req-43")
    srv = raw_servers([head + event, HOLD])
    model = ChatDatabricksServing(endpoint="m", host=srv.url, token=TOKEN, timeout=10)
    with pytest.raises(MalformedResponseError) as info:
        list(model.stream("hi"))
    assert info.value.endpoint == "m" and info.value.request_id == "req-43"


@pytest.mark.parametrize("mode", ["invoke", "ainvoke", "stream"])
def test_a_content_part_whose_type_is_a_list_is_malformed(raw_servers: Any, mode: str) -> None:
    item = {"type": "message", "id": "m1", "role": "assistant"}
    item["content"] = [{"type": [], "text": "x"}]
    if mode == "stream":
        event = {"type": "response.output_item.done", "item": item}
        reply = http_head(content_type="text/event-stream", X_Request_Id="req-44")
        reply += b"data: " + json.dumps(event).encode() + b"\n\n"
    else:
        reply = whole(json.dumps({"output": [item]}).encode()).replace(b"req-42", b"req-44")
    srv = raw_servers([reply])
    model = ChatDatabricksResponses(endpoint="m", host=srv.url, token=TOKEN)
    with pytest.raises(MalformedResponseError) as info:
        call(model, mode, "hi")
    assert "`type`" in str(info.value)
    assert info.value.endpoint == "m" and info.value.request_id == "req-44"


@pytest.mark.parametrize("mode", ["invoke", "ainvoke", "stream"])
def test_a_tool_call_named_7_is_malformed_not_nameless(raw_servers: Any, mode: str) -> None:
    call_7 = {"id": "c1", "type": "function", "function": {"name": 7, "arguments": "{}"}}
    if mode == "stream":
        event = {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, **call_7}]}}]}
        reply = http_head(content_type="text/event-stream", X_Request_Id="req-42")
        reply += b"data: " + json.dumps(event).encode() + b"\n\n"
    else:
        body = {"choices": [{"index": 0, "message": {"tool_calls": [call_7]}}]}
        reply = whole(json.dumps(body).encode())
    srv = raw_servers([reply])
    model = ChatDatabricksServing(endpoint="m", host=srv.url, token=TOKEN)
    with pytest.raises(MalformedResponseError) as info:
        call(model, mode, "hi")
    assert "tool_calls[0].function.name" in str(info.value)
    assert info.value.endpoint == "m" and info.value.request_id == "req-42"


# -- SSE line shapes and memory ------------------------------------------------------------------
@pytest.mark.parametrize(
    "line",
    [b"data:xy\n", b"data:\n", b"data: xy\r\n", b"data:xy\r", b"x" * 1000, b"data" + b"z" * 100],
    ids=["tiny-data", "empty-data", "crlf", "cr", "one-long-line", "long-field-name"],
)
def test_no_sse_line_shape_holds_more_than_the_event_bound(line: bytes) -> None:
    bound = 1024 * 1024
    decoder = SSEDecoder(max_event_bytes=bound)
    block = line * (64 * 1024 // len(line) + 1)
    tracemalloc.start()
    try:
        with pytest.raises(MalformedResponseError):
            for _ in range(20 * 1024 * 1024 // len(block)):  # up to 20 MB fed, no blank line
                decoder.feed(block)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * bound, f"held {peak} bytes under a {bound}-byte event bound"


def test_comment_floods_hold_nothing() -> None:
    decoder = SSEDecoder(max_event_bytes=1024)
    for _ in range(1000):
        assert decoder.feed(b": PROCESSING\n" * 100) == []


# -- hosts ----------------------------------------------------------------------------------------
CLASSES = [
    lambda **kw: ChatDatabricksServing(endpoint="chat", **kw),
    lambda **kw: ChatDatabricksResponses(endpoint="responder", **kw),
    lambda **kw: AgentEndpoint("responder", **kw).chat,
    lambda **kw: DatabricksServingEmbeddings(endpoint="e", **kw),
]


@pytest.mark.parametrize("make", CLASSES, ids=["chat", "responses", "agent", "embeddings"])
def test_a_host_without_scheme_says_which_scheme_to_add(make: Any) -> None:
    model = make(host="127.0.0.1:8080", token=TOKEN)
    with pytest.raises(ConfigurationError) as info:
        model._root_url()
    assert "'http://127.0.0.1:8080'" in str(info.value)
    gateway = make(host="gateway.example.com", token=TOKEN)
    with pytest.raises(ConfigurationError, match=re.escape("'https://gateway.example.com'")):
        gateway._root_url()


@pytest.mark.parametrize("make", CLASSES, ids=["chat", "responses", "agent", "embeddings"])
def test_workspace_domains_get_https(make: Any) -> None:
    model = make(host="adb-123.4.azuredatabricks.net/", token=TOKEN)
    assert model._root_url() == "https://adb-123.4.azuredatabricks.net/serving-endpoints"


@pytest.mark.parametrize("suffix", ["/serving-endpoints", "/serving-endpoints/"])
def test_a_host_ending_in_serving_endpoints_is_the_base_url(
    serving: LocalEndpoint, suffix: str
) -> None:
    queue(serving, Reply.text(["right endpoint"]))
    model = ChatDatabricksServing(endpoint="chat", host=serving.host + suffix, token=serving.token)
    assert model.invoke("hi").text == "right endpoint"
    queue(serving, Reply.text(["agent"]), name="responder")
    agent = AgentEndpoint("responder", host=serving.host + suffix, token=serving.token)
    assert agent.invoke("hi").text == "agent"
