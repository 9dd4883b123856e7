"""The responses wire shape (ResponsesAgent endpoints), whole and streamed, with plain httpx."""

from __future__ import annotations

import json
from unittest.mock import ANY

import httpx

from langchain_dbx_serving.testing import (
    BackendRequest,
    LocalEndpoint,
    Quirks,
    RawReply,
    Reply,
    ToolStep,
)
from tests.testing.helpers import capture, parse_sse, responses, script

URL = "/serving-endpoints/responses"


def _stream(client: httpx.Client, body: dict, **headers: str) -> list:
    response = client.post(URL, json={**body, "stream": True}, headers=headers)
    assert response.headers["content-type"].startswith("text/event-stream")
    return parse_sse(response.text)


def test_whole_reply_has_output_items_and_responses_usage(
    ep: LocalEndpoint, client: httpx.Client
) -> None:
    script(ep, Reply.text("Hi!", usage=(10, 2), custom_outputs={"source": "kb"}))

    body = client.post(URL, json=responses()).json()

    assert body == {
        "id": ANY,
        "object": "response",
        "created_at": ANY,
        "model": "chat",
        "status": "completed",
        "output": [
            {
                "type": "message",
                "id": ANY,
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": "Hi!", "annotations": []}],
            }
        ],
        "usage": {
            "input_tokens": 10,
            "output_tokens": 2,
            "total_tokens": 12,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens_details": {"reasoning_tokens": 0},
        },
        "custom_outputs": {"source": "kb"},
    }


def test_whole_reply_orders_agent_steps_reasoning_text_and_function_calls(
    ep: LocalEndpoint, client: httpx.Client
) -> None:
    step = ToolStep("lookup", {"q": "x"}, output="found", id="call_a")
    script(
        ep,
        Reply.tool_call(
            "send", {"to": "bob"}, id="call_b", text="Sending.", reasoning="plan", steps=[step]
        ),
    )

    output = client.post(URL, json=responses()).json()["output"]

    assert [item["type"] for item in output] == [
        "function_call",
        "function_call_output",
        "reasoning",
        "message",
        "function_call",
    ]
    assert output[0] | {"id": None} == {
        "type": "function_call",
        "id": None,
        "call_id": "call_a",
        "name": "lookup",
        "arguments": '{"q": "x"}',
        "status": "completed",
    }
    assert output[1] == {"type": "function_call_output", "call_id": "call_a", "output": "found"}
    assert output[2]["summary"] == [{"type": "summary_text", "text": "plan"}]
    assert output[4]["call_id"] == "call_b"
    assert json.loads(output[4]["arguments"]) == {"to": "bob"}


def test_stream_emits_realistic_lifecycle_events(ep: LocalEndpoint, client: httpx.Client) -> None:
    script(ep, Reply.tool_call("f", {"x": 1}, text="On it", reasoning="why", usage=(3, 4)))

    events = _stream(client, responses())

    assert events[-1] == "[DONE]"
    types = [e["type"] for e in events[:-1]]
    assert types == [
        "response.created",
        "response.output_item.added",
        "response.reasoning_summary_text.delta",
        "response.output_item.done",
        "response.output_item.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e["sequence_number"] for e in events[:-1]] == list(range(len(types)))
    text_deltas = [e for e in events[:-1] if e["type"] == "response.output_text.delta"]
    assert "".join(e["delta"] for e in text_deltas) == "On it"
    message_done = events[7]
    assert message_done["item"]["content"][0]["text"] == "On it"
    assert {e["item_id"] for e in text_deltas} == {message_done["item"]["id"]}
    call_done = events[10]["item"]
    assert (call_done["name"], call_done["arguments"], call_done["status"]) == (
        "f",
        '{"x": 1}',
        "completed",
    )
    completed = events[11]["response"]
    assert completed["status"] == "completed"
    assert completed["usage"]["total_tokens"] == 7
    assert [item["type"] for item in completed["output"]] == [
        "reasoning",
        "message",
        "function_call",
    ]


def test_stream_tool_results_arrive_as_output_item_done(
    ep: LocalEndpoint, client: httpx.Client
) -> None:
    script(ep, Reply.text("18C", steps=[ToolStep("weather", {"city": "Oslo"}, "18C", id="call_w")]))

    events = _stream(client, responses())

    done = [e["item"] for e in events[:-1] if e["type"] == "response.output_item.done"]
    assert done[0]["type"] == "function_call"
    assert done[1] == {"type": "function_call_output", "call_id": "call_w", "output": "18C"}
    assert done[2]["content"][0]["text"] == "18C"


def test_custom_outputs_on_the_last_event(ep: LocalEndpoint, client: httpx.Client) -> None:
    script(ep, Reply.text("ok", custom_outputs={"n": 1}))

    events = _stream(client, responses())

    assert events[-2]["type"] == "response.completed"
    assert events[-2]["custom_outputs"] == {"n": 1}
    assert all("custom_outputs" not in e for e in events[:-2])


def test_model_serving_agent_quirks_drop_lifecycle_and_tag_events_with_the_request_id(
    ep: LocalEndpoint, client: httpx.Client
) -> None:
    script(ep, Reply.text("hi there", quirks=Quirks.model_serving_agent(), custom_outputs={}))

    response = client.post(URL, json=responses(stream=True))
    events = parse_sse(response.text)

    types = [e["type"] for e in events[:-1]]
    assert "response.created" not in types and "response.completed" not in types
    assert all("sequence_number" not in e for e in events[:-1])
    assert {e["id"] for e in events[:-1]} == {response.headers["x-request-id"]}
    assert events[-2]["type"] == "response.output_item.done"
    assert events[-2]["custom_outputs"] == {}


def test_event_lines_and_no_done_quirks(ep: LocalEndpoint, client: httpx.Client) -> None:
    script(ep, Reply.text("x", quirks=Quirks(sse_event_lines=True, no_done=True)))

    text = client.post(URL, json=responses(stream=True)).text

    assert "event: response.created\ndata: {" in text
    assert "[DONE]" not in text


def test_stream_error_sends_error_then_response_failed(
    ep: LocalEndpoint, client: httpx.Client
) -> None:
    script(ep, Reply.text("partial", stream_error="model crashed", stream_error_code="MODEL_ERROR"))

    events = _stream(client, responses())

    assert events[-3] == {
        "type": "error",
        "code": "MODEL_ERROR",
        "message": "model crashed",
        "sequence_number": ANY,
    }
    failed = events[-2]
    assert failed["type"] == "response.failed"
    assert failed["response"]["error"] == {"code": "MODEL_ERROR", "message": "model crashed"}
    assert events[-1] == "[DONE]"


def test_trace_id_header_adds_metadata_or_a_bare_trace_event(
    ep: LocalEndpoint, client: httpx.Client
) -> None:
    script(ep, Reply.text("a"), Reply.text("b"))
    header = {"x-mlflow-return-trace-id": "true"}

    whole = client.post(URL, json=responses(), headers=header).json()
    events = _stream(client, responses(), **header)

    assert whole["metadata"]["trace_id"].startswith("tr-")
    assert list(events[-2]) == ["trace_id"]
    assert events[-2]["trace_id"].startswith("tr-")
    assert events[-3]["type"] == "response.completed"


def test_context_custom_inputs_and_tools_reach_the_backend(
    ep: LocalEndpoint, client: httpx.Client
) -> None:
    seen: list[BackendRequest] = []
    script(ep, capture(seen, Reply.text("ok")))
    tools = [{"type": "function", "name": "f", "parameters": {"type": "object"}}]
    body = responses(
        context={"conversation_id": "c1", "user_id": "u1"},
        custom_inputs={"mode": "fast"},
        tools=tools,
    )

    client.post(URL, json=body)

    (request,) = seen
    assert request.shape == "responses"
    assert request.context == {"conversation_id": "c1", "user_id": "u1"}
    assert request.custom_inputs == {"mode": "fast"}
    assert request.tools == [
        {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    ]
    assert request.messages[0].type == "human" and request.messages[0].text == "hi"


def test_length_finish_marks_the_response_incomplete(
    ep: LocalEndpoint, client: httpx.Client
) -> None:
    script(ep, Reply.text("trunc", finish_reason="length"))

    body = client.post(URL, json=responses()).json()

    assert body["status"] == "incomplete"
    assert body["incomplete_details"] == {"reason": "max_output_tokens"}


def test_raw_events_are_replayed_verbatim(ep: LocalEndpoint, client: httpx.Client) -> None:
    recorded = [
        {"type": "response.output_text.delta", "item_id": "a", "delta": "Hi", "id": "req"},
        {"type": "function_call_output", "call_id": "c1", "output": "1"},
        {"type": "response.output_text.delta", "item_id": "b", "delta": "!", "created_at": 1.5},
    ]
    script(ep, RawReply(events=recorded))

    events = _stream(client, responses())

    assert events == [*recorded, "[DONE]"]
