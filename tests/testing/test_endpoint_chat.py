"""The chat-completions wire shape, whole and streamed, checked with plain httpx."""

from __future__ import annotations

import json
from unittest.mock import ANY

import httpx

from langchain_dbx_serving.testing import LocalEndpoint, Quirks, Reply, ToolCall
from tests.testing.helpers import chat, parse_sse, script

URL = "/serving-endpoints/chat/completions"


def _stream(client: httpx.Client, body: dict) -> tuple[httpx.Response, list]:
    response = client.post(URL, json={**body, "stream": True})
    return response, parse_sse(response.text)


def _deltas(events: list) -> list[dict]:
    return [e["choices"][0]["delta"] for e in events[:-1] if e.get("choices")]


def test_whole_text_reply_is_a_chat_completion(ep: LocalEndpoint, client: httpx.Client) -> None:
    script(ep, Reply.text("Hello there!", usage=(12, 3)))

    response = client.post(URL, json=chat())

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-request-id"]
    assert response.json() == {
        "id": ANY,
        "object": "chat.completion",
        "created": ANY,
        "model": "chat",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello there!"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15},
    }
    assert response.json()["id"].startswith("chatcmpl-")


def test_whole_reply_with_reasoning_uses_databricks_list_content(
    ep: LocalEndpoint, client: httpx.Client
) -> None:
    script(ep, Reply.text("42", reasoning="6 times 7", reasoning_signature="sig"))

    message = client.post(URL, json=chat()).json()["choices"][0]["message"]

    assert message["content"] == [
        {
            "type": "reasoning",
            "summary": [{"type": "summary_text", "text": "6 times 7", "signature": "sig"}],
        },
        {"type": "text", "text": "42"},
    ]


def test_whole_tool_calls_have_null_content_and_json_arguments(
    ep: LocalEndpoint, client: httpx.Client
) -> None:
    script(
        ep,
        Reply.text(
            "", tool_calls=[ToolCall("get_weather", {"city": "Paris"}, "c1"), ToolCall("now")]
        ),
    )

    choice = client.post(URL, json=chat()).json()["choices"][0]

    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    calls = choice["message"]["tool_calls"]
    assert calls[0] == {
        "id": "c1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
    }
    assert calls[1]["function"] == {"name": "now", "arguments": "{}"}
    assert calls[1]["id"].startswith("call_")


def test_stream_sends_role_then_text_deltas_then_finish_and_done(
    ep: LocalEndpoint, client: httpx.Client
) -> None:
    script(ep, Reply.text("Hello brave world", usage=(4, 3)))

    response, events = _stream(client, chat())

    assert response.headers["content-type"].startswith("text/event-stream")
    assert events[-1] == "[DONE]"
    assert {e["object"] for e in events[:-1]} == {"chat.completion.chunk"}
    assert len({e["id"] for e in events[:-1]}) == 1
    deltas = _deltas(events)
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert [d["content"] for d in deltas[1:-1]] == ["Hello ", "brave ", "world"]
    last = events[-2]
    assert last["choices"][0] == {"index": 0, "delta": {}, "finish_reason": "stop"}
    assert last["usage"] == {"prompt_tokens": 4, "completion_tokens": 3, "total_tokens": 7}
    assert all("usage" not in e for e in events[:-2])


def test_stream_tool_call_fragments_accumulate_by_index(
    ep: LocalEndpoint, client: httpx.Client
) -> None:
    args = {"city": "Paris", "unit": "celsius", "days": 3}
    script(ep, Reply.tool_call("get_weather", args, id="call_9"))

    _, events = _stream(client, chat())

    fragments = [f for d in _deltas(events) for f in d.get("tool_calls", [])]
    assert fragments[0] == {
        "index": 0,
        "id": "call_9",
        "type": "function",
        "function": {"name": "get_weather", "arguments": ""},
    }
    assert len(fragments) > 2  # the arguments really arrive in pieces
    assert all("id" not in f and "name" not in f["function"] for f in fragments[1:])
    assert json.loads("".join(f["function"]["arguments"] for f in fragments)) == args
    assert events[-2]["choices"][0]["finish_reason"] == "tool_calls"


def test_stream_reasoning_arrives_as_list_valued_content(
    ep: LocalEndpoint, client: httpx.Client
) -> None:
    script(ep, Reply.text("Yes.", reasoning=["Let me ", "think."]))

    _, events = _stream(client, chat())

    contents = [d["content"] for d in _deltas(events)[1:-1]]
    assert contents == [
        [{"type": "reasoning", "summary": [{"type": "summary_text", "text": "Let me "}]}],
        [{"type": "reasoning", "summary": [{"type": "summary_text", "text": "think."}]}],
        "Yes.",
    ]


def test_claude_quirks_repeat_usage_with_nulls_and_role_in_every_delta(
    ep: LocalEndpoint, client: httpx.Client
) -> None:
    quirks = Quirks.databricks_claude()
    script(ep, Reply.text("Hi there", usage=(50, 2), quirks=quirks, model="us.anthropic.claude"))

    _, events = _stream(client, chat())

    chunks = events[:-1]
    assert all(c["model"] == "us.anthropic.claude" for c in chunks)
    assert all(c["choices"][0]["delta"]["role"] == "assistant" for c in chunks)
    partial = {"prompt_tokens": 50, "completion_tokens": None, "total_tokens": None}
    assert all(c["usage"] == partial for c in chunks[:-1])
    assert chunks[-1]["usage"] == {"prompt_tokens": 50, "completion_tokens": 2, "total_tokens": 52}
    assert chunks[-1]["choices"][0]["delta"] == {"role": "assistant", "content": ""}


def test_tool_quirks_index_from_one_after_text_and_empty_arguments(
    ep: LocalEndpoint, client: httpx.Client
) -> None:
    quirks = Quirks(tool_index_from_1_after_text=True, empty_arguments_for_no_args=True)
    script(ep, Reply.tool_call("list_files", text="Checking.", quirks=quirks))

    _, events = _stream(client, chat())

    fragments = [f for d in _deltas(events) for f in d.get("tool_calls", [])]
    assert [f["index"] for f in fragments] == [1]
    assert fragments[0]["function"] == {"name": "list_files", "arguments": ""}


def test_sse_comments_and_usage_on_a_final_empty_choices_chunk(
    ep: LocalEndpoint, client: httpx.Client
) -> None:
    quirks = Quirks(sse_comments=True, usage_in_empty_choices_chunk=True)
    script(ep, Reply.text("ok", usage=(1, 1), quirks=quirks))

    response, events = _stream(client, chat())

    assert ": PROCESSING\n\n" in response.text
    assert events[-2]["choices"] == []
    assert events[-2]["usage"]["total_tokens"] == 2
    assert events[-3]["choices"][0]["finish_reason"] == "stop"
    assert "usage" not in events[-3]


def test_json_for_stream_quirk_answers_a_stream_request_with_plain_json(
    ep: LocalEndpoint, client: httpx.Client
) -> None:
    script(ep, Reply.text("whole", quirks=Quirks(json_for_stream=True)))

    response = client.post(URL, json=chat(stream=True))

    assert response.headers["content-type"] == "application/json"
    assert response.json()["choices"][0]["message"]["content"] == "whole"


def test_custom_outputs_top_level_when_whole_and_on_last_chunk_when_streamed(
    ep: LocalEndpoint, client: httpx.Client
) -> None:
    script(ep, Reply.text("a", custom_outputs={"k": 1}), Reply.text("b", custom_outputs={"k": 2}))

    whole = client.post(URL, json=chat()).json()
    _, events = _stream(client, chat())

    assert whole["custom_outputs"] == {"k": 1}
    assert events[-2]["custom_outputs"] == {"k": 2}
    assert all("custom_outputs" not in e for e in events[:-2])


def test_no_databricks_output_unless_a_trace_is_asked_for(
    ep: LocalEndpoint, client: httpx.Client
) -> None:
    script(ep, Reply.text("a"), Reply.text("b"))

    whole = client.post(URL, json=chat()).json()
    _, events = _stream(client, chat())

    assert "databricks_output" not in whole
    assert all("databricks_output" not in e for e in events[:-1])


def test_empty_text_stream_still_finishes(ep: LocalEndpoint, client: httpx.Client) -> None:
    script(ep, Reply.text(""))

    _, events = _stream(client, chat())

    assert _deltas(events) == [{"role": "assistant", "content": ""}, {}]
    assert events[-2]["choices"][0]["finish_reason"] == "stop"
    assert events[-1] == "[DONE]"
