"""Chat-completions protocol: the stream decoder, fed one SSE ``data`` payload at a time.

Fixtures are written by hand from PROTOCOLS.md sections 2, 4, 5 and 7; each stream fixture
has the whole reply it is equivalent to, for the invariant "the sum of the chunks equals the
decoded whole reply".
"""

from __future__ import annotations

import contextlib
import itertools
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_core.language_models.chat_models import generate_from_stream
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.outputs import ChatGenerationChunk

from langchain_dbx_serving.errors import (
    AgentError,
    DatabricksServingError,
    MalformedResponseError,
    StreamInterruptedError,
)
from langchain_dbx_serving.protocols.chat_completions import StreamDecoder, decode_reply
from tests.support.strategies import json_values

CLAUDE = "us.anthropic.claude-3-7-sonnet-20250219-v1:0"
GPT = "gpt-4o-2024-08-06"
DONE = "[DONE]"


def decode_stream(events: list[Any]) -> list[AIMessageChunk]:
    decoder = StreamDecoder()
    chunks: list[AIMessageChunk] = []
    for event in events:
        chunks += decoder.feed(event if isinstance(event, str) else json.dumps(event))
    return chunks + decoder.finish()


def aggregate(chunks: list[AIMessageChunk]) -> AIMessageChunk:
    return chunks[0] + chunks[1:] if len(chunks) > 1 else chunks[0]


def reasoning_of(message: AIMessage) -> str:
    if isinstance(message.content, str):
        return ""
    return "".join(
        b.get("reasoning", "")
        for b in message.content
        if isinstance(b, dict) and b.get("type") == "reasoning"
    )


def blocks_of(message: AIMessage, kind: str) -> list[dict[str, Any]]:
    if isinstance(message.content, str):
        return []
    return [b for b in message.content if isinstance(b, dict) and b.get("type") == kind]


def chunk(delta: dict[str, Any], finish_reason: str | None = None, **top: Any) -> dict[str, Any]:
    event = {
        "id": "chatcmpl-b81c",
        "object": "chat.completion.chunk",
        "created": 1741000000,
        "model": GPT,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }
    event.update(top)
    return event


def fragment(
    index: int, arguments: str = "", *, call_id: str | None = None, name: str | None = None
) -> dict[str, Any]:
    """A streamed tool-call fragment; only the first one of a call has its id and name."""
    function: dict[str, Any] = {"arguments": arguments}
    frag: dict[str, Any] = {"index": index, "function": function}
    if call_id is not None:
        frag.update(id=call_id, type="function")
        function["name"] = name
    return frag


def wire_call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    """A whole tool call as it appears in a reply message."""
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": arguments},
    }


def claude_chunk(delta: dict[str, Any], finish: str | None = None, out: int | None = None) -> dict:
    # Databricks Claude: usage on every chunk, completion/total null until the last one.
    return {
        "id": "msg_bdrk_01XZ",
        "object": "chat.completion.chunk",
        "created": 1741000000,
        "model": CLAUDE,
        "choices": [{"index": 0, "delta": {"role": "assistant", **delta}, "finish_reason": finish}],
        "usage": {
            "prompt_tokens": 4982,
            "completion_tokens": out,
            "total_tokens": None if out is None else 4982 + out,
        },
    }


# ---------------------------------------------------------------------------------------------
# Stream fixtures and the whole replies they are equivalent to


PLAIN_STREAM = [
    chunk({"role": "assistant", "content": ""}),
    chunk({"content": "The capital"}),
    chunk({"content": " of France is"}),
    chunk({"content": " Paris."}),
    chunk({}, "stop"),
    chunk(
        {},
        None,
        choices=[],
        usage={"prompt_tokens": 14, "completion_tokens": 6, "total_tokens": 20},
    ),
    DONE,
]
PLAIN_REPLY = {
    "id": "chatcmpl-b81c",
    "object": "chat.completion",
    "model": GPT,
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "The capital of France is Paris."},
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 14, "completion_tokens": 6, "total_tokens": 20},
}

CLAUDE_TOOL_STREAM = [
    claude_chunk({"content": "Let me check"}),
    claude_chunk({"content": " the weather."}),
    # Text came first, so the first tool call has index 1; only its first fragment has id/name.
    claude_chunk(
        {"content": "", "tool_calls": [fragment(1, call_id="toolu_bdrk_01A", name="get_weather")]}
    ),
    claude_chunk({"content": "", "tool_calls": [fragment(1, '{"city": ')]}),
    claude_chunk({"content": "", "tool_calls": [fragment(1, '"Oslo\tNO"}')]}),
    # A zero-argument tool whose arguments stay "" for the whole stream.
    claude_chunk(
        {"content": "", "tool_calls": [fragment(2, call_id="toolu_bdrk_01B", name="get_time")]}
    ),
    claude_chunk({"content": ""}, "tool_calls", out=57),
    DONE,
]
CLAUDE_TOOL_REPLY = {
    "id": "msg_bdrk_01XZ",
    "object": "chat.completion",
    "model": CLAUDE,
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Let me check the weather.",
                "tool_calls": [
                    wire_call("toolu_bdrk_01A", "get_weather", '{"city": "Oslo\tNO"}'),
                    wire_call("toolu_bdrk_01B", "get_time", ""),
                ],
            },
            "finish_reason": "tool_calls",
        }
    ],
    "usage": {"prompt_tokens": 4982, "completion_tokens": 57, "total_tokens": 5039},
}


def reasoning_part(text: str, signature: str | None = None) -> dict[str, Any]:
    summary: dict[str, Any] = {"type": "summary_text", "text": text}
    if signature:
        summary["signature"] = signature
    return {"type": "reasoning", "summary": [summary]}


REASONING_STREAM = [
    claude_chunk({"content": [reasoning_part("The user asks 2+2.")]}),
    claude_chunk({"content": [reasoning_part(" Basic arithmetic.")]}),
    claude_chunk({"content": [reasoning_part("", "EqoBCkgIARAB")]}),
    claude_chunk({"content": "2 + 2"}),
    claude_chunk({"content": [{"type": "text", "text": " = 4."}]}),
    claude_chunk({"content": ""}, "stop", out=31),
    DONE,
]
REASONING_REPLY = {
    "id": "msg_bdrk_01XZ",
    "model": CLAUDE,
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": [
                    reasoning_part("The user asks 2+2. Basic arithmetic.", "EqoBCkgIARAB"),
                    {"type": "text", "text": "2 + 2 = 4."},
                ],
            },
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 4982, "completion_tokens": 31, "total_tokens": 5013},
}

TRACE = {
    "info": {"trace_id": "tr-7d3c5a0e9b1f4c2a8e6d4b2a0c8e6f4d", "state": "OK"},
    "data": {"spans": [{"name": "agent", "span_id": "a1b2c3d4e5f60718"}]},
}
DATABRICKS_OUTPUT = {"trace": TRACE, "databricks_request_id": "2f5e8a10-req"}

AGENT_TOOL_CALL = {
    "role": "assistant",
    "content": "",
    "id": "run-1a",
    "tool_calls": [wire_call("call_7", "uc_lookup", '{"sku": "A-12"}')],
}
AGENT_TOOL_RESULT = {
    "role": "tool",
    "content": '{"stock": 3}',
    "id": "run-1b",
    "name": "uc_lookup",
    "tool_call_id": "call_7",
}
AGENT_USAGE = {"prompt_tokens": 310, "completion_tokens": 25, "total_tokens": 335}
AGENT_STREAM = [
    {"delta": AGENT_TOOL_CALL},
    {"delta": AGENT_TOOL_RESULT, "custom_outputs": {"route": "draft"}},
    {"delta": {"role": "assistant", "content": "There are 3", "id": "run-1c"}},
    {"delta": {"role": "assistant", "content": " units in stock.", "id": "run-1c"}},
    {
        "delta": {"role": "assistant", "content": "", "id": "run-1c"},
        "finish_reason": "stop",
        "custom_outputs": {"route": "inventory"},
        "usage": AGENT_USAGE,
        "databricks_output": DATABRICKS_OUTPUT,
    },
    DONE,
]
AGENT_REPLY = {
    "messages": [
        AGENT_TOOL_CALL,
        AGENT_TOOL_RESULT,
        {"role": "assistant", "content": "There are 3 units in stock.", "id": "run-1c"},
    ],
    "finish_reason": "stop",
    "custom_outputs": {"route": "inventory"},
    "usage": AGENT_USAGE,
    "databricks_output": DATABRICKS_OUTPUT,
}

TRACED_STREAM = [
    chunk({"role": "assistant", "content": "Done"}, custom_outputs={"step": 1}),
    chunk({"content": "."}, "stop"),
    # The trace arrives on an event that also has choices.
    chunk({}, None, databricks_output=DATABRICKS_OUTPUT, custom_outputs={"step": 2}),
    DONE,
]
TRACED_REPLY = {
    "id": "chatcmpl-b81c",
    "model": GPT,
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "Done."}, "finish_reason": "stop"}
    ],
    "custom_outputs": {"step": 2},
    "databricks_output": DATABRICKS_OUTPUT,
}

EQUIVALENT = {
    "plain": (PLAIN_STREAM, PLAIN_REPLY),
    "claude-tool-calls": (CLAUDE_TOOL_STREAM, CLAUDE_TOOL_REPLY),
    "reasoning": (REASONING_STREAM, REASONING_REPLY),
    "chat-agent": (AGENT_STREAM, AGENT_REPLY),
    "trace-and-custom-outputs": (TRACED_STREAM, TRACED_REPLY),
}


def assert_same_message(streamed: AIMessage, whole: AIMessage) -> None:
    assert streamed.text == whole.text
    assert streamed.tool_calls == whole.tool_calls
    assert streamed.invalid_tool_calls == whole.invalid_tool_calls
    assert reasoning_of(streamed) == reasoning_of(whole)
    assert streamed.usage_metadata == whole.usage_metadata
    assert streamed.response_metadata == whole.response_metadata
    assert streamed.additional_kwargs == whole.additional_kwargs


@pytest.mark.parametrize(("events", "body"), EQUIVALENT.values(), ids=EQUIVALENT.keys())
def test_aggregate_of_a_stream_equals_the_decoded_whole_reply(events: list, body: dict) -> None:
    streamed = aggregate(decode_stream(events))
    whole = decode_reply(body).generations[0].message

    assert_same_message(streamed, whole)


@pytest.mark.parametrize(("events", "body"), EQUIVALENT.values(), ids=EQUIVALENT.keys())
def test_langchain_generate_from_stream_gives_the_decoded_whole_reply(
    events: list, body: dict
) -> None:
    # What BaseChatModel does when invoke() is served by streaming.
    result = generate_from_stream(ChatGenerationChunk(message=c) for c in decode_stream(events))
    message = result.generations[0].message

    assert isinstance(message, AIMessage)
    assert_same_message(message, decode_reply(body).generations[0].message)


@pytest.mark.parametrize(("events", "body"), EQUIVALENT.values(), ids=EQUIVALENT.keys())
def test_a_whole_reply_fed_once_decodes_as_if_streamed(events: list, body: dict) -> None:
    # The transport feeds a plain-JSON answer to a stream request as one event, no [DONE].
    decoder = StreamDecoder()
    chunks = decoder.feed(json.dumps(body)) + decoder.finish()

    assert_same_message(aggregate(chunks), decode_reply(body).generations[0].message)


@pytest.mark.parametrize(("events", "body"), EQUIVALENT.values(), ids=EQUIVALENT.keys())
def test_metadata_and_usage_come_once_on_the_last_chunk(events: list, body: dict) -> None:
    chunks = decode_stream(events)

    *body_chunks, last = chunks
    assert last.chunk_position == "last"
    assert last.content == ""
    assert all(c.response_metadata == {} for c in body_chunks)
    assert all(c.usage_metadata is None for c in body_chunks)
    assert all(c.chunk_position is None for c in body_chunks)


# ---------------------------------------------------------------------------------------------
# Chat-completion streams


def test_plain_text_stream() -> None:
    chunks = decode_stream(PLAIN_STREAM)
    message = aggregate(chunks)

    assert [c.content for c in chunks[:-1]] == ["The capital", " of France is", " Paris."]
    assert message.content == "The capital of France is Paris."
    assert message.id == "chatcmpl-b81c"
    assert message.response_metadata == {
        "finish_reason": "stop",
        "model_name": GPT,
        "id": "chatcmpl-b81c",
    }
    assert message.usage_metadata == {"input_tokens": 14, "output_tokens": 6, "total_tokens": 20}


def test_claude_usage_on_every_chunk_is_counted_once() -> None:
    message = aggregate(decode_stream(CLAUDE_TOOL_STREAM))

    # The official client reports 4982 x number-of-chunks input tokens here.
    assert message.usage_metadata == {
        "input_tokens": 4982,
        "output_tokens": 57,
        "total_tokens": 5039,
    }
    assert message.response_metadata["model_name"] == CLAUDE


def test_tool_call_fragments_after_text_start_at_index_one() -> None:
    chunks = decode_stream(CLAUDE_TOOL_STREAM)
    message = aggregate(chunks)

    assert message.text == "Let me check the weather."
    assert [(c["id"], c["name"], c["args"]) for c in message.tool_calls] == [
        ("toolu_bdrk_01A", "get_weather", {"city": "Oslo\tNO"}),
        ("toolu_bdrk_01B", "get_time", {}),
    ]
    fragments = [tc for c in chunks for tc in c.tool_call_chunks]
    assert [f["name"] for f in fragments] == ["get_weather", None, None, "get_time"]


def test_parallel_tool_calls_interleaved_by_index() -> None:
    events = [
        chunk(
            {
                "role": "assistant",
                "tool_calls": [
                    fragment(0, call_id="call_a", name="add"),
                    fragment(1, call_id="call_b", name="mul"),
                ],
            }
        ),
        chunk({"tool_calls": [fragment(1, '{"x": 2, ')]}),
        chunk({"tool_calls": [fragment(0, '{"x": 1, "y": 1}')]}),
        chunk({"tool_calls": [fragment(1, '"y": 3}')]}),
        chunk({}, "tool_calls"),
        DONE,
    ]

    message = aggregate(decode_stream(events))

    assert [(c["id"], c["args"]) for c in message.tool_calls] == [
        ("call_a", {"x": 1, "y": 1}),
        ("call_b", {"x": 2, "y": 3}),
    ]


def test_tool_call_whose_first_fragment_is_an_empty_object_then_real_arguments() -> None:
    events = [
        chunk({"tool_calls": [fragment(0, "{}", call_id="c1", name="f")]}),
        chunk({"tool_calls": [fragment(0, '{"q": 1}')]}),
        chunk({}, "tool_calls"),
    ]

    assert aggregate(decode_stream(events)).tool_calls[0]["args"] == {"q": 1}


def test_repeated_id_and_name_on_every_fragment_are_not_concatenated() -> None:
    events = [
        chunk({"tool_calls": [fragment(0, '{"q"', call_id="c1", name="search")]}),
        chunk({"tool_calls": [fragment(0, ': "x"}', call_id="c1", name="search")]}),
        chunk({}, "tool_calls"),
    ]

    [call] = aggregate(decode_stream(events)).tool_calls

    assert (call["id"], call["name"], call["args"]) == ("c1", "search", {"q": "x"})


def test_unparseable_streamed_arguments_become_an_invalid_tool_call() -> None:
    events = [
        chunk({"tool_calls": [fragment(0, "[1, 2]", call_id="c1", name="f")]}),
        chunk({}, "tool_calls"),
    ]

    message = aggregate(decode_stream(events))

    assert message.tool_calls == []
    assert message.invalid_tool_calls[0]["args"] == "[1, 2]"


def test_reasoning_deltas_aggregate_into_one_reasoning_and_one_text_block() -> None:
    message = aggregate(decode_stream(REASONING_STREAM))

    assert message.text == "2 + 2 = 4."
    [reasoning] = blocks_of(message, "reasoning")
    [text] = blocks_of(message, "text")
    assert reasoning["reasoning"] == "The user asks 2+2. Basic arithmetic."
    assert reasoning["extras"] == {"signature": "EqoBCkgIARAB"}
    assert text["text"] == "2 + 2 = 4."
    assert len(message.content) == 2


def test_reasoning_content_deltas() -> None:
    events = [
        chunk({"role": "assistant", "reasoning_content": "Think"}),
        chunk({"reasoning_content": "ing..."}),
        chunk({"content": "Answer"}),
        chunk({"content": "."}, "stop"),
        DONE,
    ]

    message = aggregate(decode_stream(events))

    assert message.text == "Answer."
    assert reasoning_of(message) == "Thinking..."
    assert len(message.content) == 2


def test_a_second_signed_reasoning_segment_stays_a_separate_block() -> None:
    events = [
        claude_chunk({"content": [reasoning_part("First.", "sig-1")]}),
        claude_chunk({"content": [reasoning_part("Second.", "sig-2")]}),
        claude_chunk({"content": "Done."}, "stop", out=9),
    ]

    message = aggregate(decode_stream(events))

    assert [b["extras"]["signature"] for b in blocks_of(message, "reasoning")] == [
        "sig-1",
        "sig-2",
    ]


def test_usage_on_the_last_chunk_with_choices() -> None:
    events = [
        chunk({"content": "Hi"}),
        chunk({}, "stop", usage={"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}),
        DONE,
    ]

    assert aggregate(decode_stream(events)).usage_metadata == {
        "input_tokens": 3,
        "output_tokens": 1,
        "total_tokens": 4,
    }


def test_a_stream_without_usage_has_no_usage_metadata() -> None:
    events = [chunk({"content": "Hi"}), chunk({}, "stop"), DONE]

    assert aggregate(decode_stream(events)).usage_metadata is None


def test_only_the_first_choice_is_streamed_when_n_is_greater_than_one() -> None:
    event = chunk({"content": "Red"})
    event["choices"].append({"index": 1, "delta": {"content": "Blue"}, "finish_reason": None})

    message = aggregate(decode_stream([event, chunk({}, "stop"), DONE]))

    assert message.text == "Red"


def test_custom_outputs_seen_on_several_events_keep_the_latest() -> None:
    message = aggregate(decode_stream(TRACED_STREAM))

    assert message.response_metadata["custom_outputs"] == {"step": 2}


def test_trace_on_a_chunk_that_also_has_choices() -> None:
    events = [
        chunk({"content": "Done."}, "stop", databricks_output=DATABRICKS_OUTPUT),
        DONE,
    ]

    chunks = decode_stream(events)
    meta = aggregate(chunks).response_metadata

    assert meta["trace"] == TRACE
    assert meta["trace_id"] == "tr-7d3c5a0e9b1f4c2a8e6d4b2a0c8e6f4d"
    assert meta["databricks_request_id"] == "2f5e8a10-req"
    assert chunks[0].response_metadata == {}


def test_bare_trace_id_event_from_mlflow_agent_server() -> None:
    events = [chunk({"content": "ok"}, "stop"), {"trace_id": "tr-123"}, DONE]

    assert aggregate(decode_stream(events)).response_metadata["trace_id"] == "tr-123"


def test_unknown_fields_and_event_types_are_ignored() -> None:
    events = [
        {"type": "ping"},
        chunk({"content": "Hi", "audio": None, "annotations": []}, system_fingerprint="fp_1"),
        {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {}, "extra": 1}]},
        chunk({}, "stop"),
        DONE,
    ]

    assert aggregate(decode_stream(events)).text == "Hi"


# ---------------------------------------------------------------------------------------------
# ChatAgent streams


def test_chat_agent_stream_streams_only_assistant_text() -> None:
    chunks = decode_stream(AGENT_STREAM)
    message = aggregate(chunks)

    assert [c.content for c in chunks[:-1]] == ["There are 3", " units in stock."]
    assert message.tool_calls == []
    assert message.tool_call_chunks == []
    assert [m["id"] for m in message.response_metadata["messages"]] == [
        "run-1a",
        "run-1b",
        "run-1c",
    ]
    assert message.response_metadata["messages"][2]["content"] == "There are 3 units in stock."


def test_chat_agent_custom_outputs_and_trace_survive_aggregation() -> None:
    meta = aggregate(decode_stream(AGENT_STREAM)).response_metadata

    assert meta["custom_outputs"] == {"route": "inventory"}
    assert meta["trace_id"] == "tr-7d3c5a0e9b1f4c2a8e6d4b2a0c8e6f4d"


def test_chat_agent_texts_of_successive_messages_are_separated() -> None:
    events = [
        {"delta": {"role": "assistant", "content": "Looking it up.", "id": "a"}},
        {"delta": {"role": "assistant", "content": "It is", "id": "b"}},
        {"delta": {"role": "assistant", "content": " 42.", "id": "b"}},
        DONE,
    ]

    assert aggregate(decode_stream(events)).text == "Looking it up.\n\nIt is 42."


# ---------------------------------------------------------------------------------------------
# Errors and interrupted streams


def test_malformed_json_event_raises_our_error_naming_the_event() -> None:
    decoder = StreamDecoder()
    decoder.feed(json.dumps(chunk({"content": "Hi"})))

    with pytest.raises(MalformedResponseError) as caught:
        decoder.feed('{"choices": [{"delta": {"content": "oops"')

    assert '{"choices": [{"delta"' in str(caught.value)
    assert caught.value.event is not None and caught.value.event.startswith('{"choices"')


@pytest.mark.parametrize(
    "event",
    [
        "[1, 2, 3]",
        '"just a string"',
        json.dumps({"choices": {"index": 0}}),
        json.dumps({"choices": [{"index": 0, "delta": {"content": 12}}]}),
        json.dumps({"delta": "text"}),
    ],
)
def test_events_of_an_impossible_shape_raise_malformed_response_error(event: str) -> None:
    with pytest.raises(MalformedResponseError):
        StreamDecoder().feed(event)


@pytest.mark.parametrize(
    ("event", "code", "text"),
    [
        (
            {"error_code": "INTERNAL_ERROR", "message": "Model crashed mid-generation"},
            "INTERNAL_ERROR",
            "Model crashed mid-generation",
        ),
        (
            {"error": {"code": 503, "message": "upstream overloaded", "type": "server_error"}},
            "503",
            "upstream overloaded",
        ),
        ({"error": "generator raised ValueError"}, None, "generator raised ValueError"),
    ],
)
def test_error_event_inside_the_stream_raises_agent_error(
    event: dict, code: Any, text: str
) -> None:
    decoder = StreamDecoder()
    decoder.feed(json.dumps(chunk({"content": "Partial"})))

    with pytest.raises(AgentError) as caught:
        decoder.feed(json.dumps(event))

    assert caught.value.error_code == code
    assert text in str(caught.value)


def test_truncated_stream_raises_stream_interrupted_with_the_partial_reply() -> None:
    decoder = StreamDecoder()
    for event in PLAIN_STREAM[:3]:  # cut before the finish reason and [DONE]
        decoder.feed(json.dumps(event))

    with pytest.raises(StreamInterruptedError) as caught:
        decoder.finish()

    partial = caught.value.partial
    assert isinstance(partial, AIMessageChunk)
    assert partial.text == "The capital of France is"


def test_truncated_tool_call_stream_keeps_the_fragments_in_partial() -> None:
    decoder = StreamDecoder()
    for event in CLAUDE_TOOL_STREAM[:4]:
        decoder.feed(json.dumps(event))

    with pytest.raises(StreamInterruptedError) as caught:
        decoder.finish()

    assert caught.value.partial.tool_call_chunks[0]["name"] == "get_weather"


def test_an_empty_stream_is_interrupted() -> None:
    with pytest.raises(StreamInterruptedError):
        StreamDecoder().finish()


def test_done_without_finish_reason_is_complete() -> None:
    message = aggregate(decode_stream([chunk({"content": "Hi"}), DONE]))

    assert message.text == "Hi"


def test_finish_reason_without_done_is_complete() -> None:
    message = aggregate(decode_stream([chunk({"content": "Hi"}, "stop")]))

    assert message.response_metadata["finish_reason"] == "stop"


# ---------------------------------------------------------------------------------------------
# Properties


def split_text(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts})
    bounds = [0, *points, len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


@settings(max_examples=150, deadline=None)
@given(
    text=st.text(min_size=1, max_size=60),
    reasoning=st.text(max_size=30),
    text_cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=8),
    reasoning_cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=5),
    as_parts=st.booleans(),
)
def test_any_split_of_the_text_aggregates_to_the_same_message(
    text: str, reasoning: str, text_cuts: list[int], reasoning_cuts: list[int], as_parts: bool
) -> None:
    events: list[Any] = [
        claude_chunk({"content": [reasoning_part(piece)]})
        for piece in split_text(reasoning, reasoning_cuts)
        if reasoning
    ]
    for piece in split_text(text, text_cuts):
        content = [{"type": "text", "text": piece}] if as_parts else piece
        events.append(claude_chunk({"content": content}))
    events += [claude_chunk({"content": ""}, "stop", out=5), DONE]
    whole_content: list[Any] = [reasoning_part(reasoning)] if reasoning else []
    whole_content.append({"type": "text", "text": text})
    body = {
        "id": "msg_bdrk_01XZ",
        "model": CLAUDE,
        "choices": [{"index": 0, "message": {"content": whole_content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 4982, "completion_tokens": 5, "total_tokens": 4987},
    }

    streamed = aggregate(decode_stream(events))

    assert_same_message(streamed, decode_reply(body).generations[0].message)
    assert len(blocks_of(streamed, "reasoning")) == (1 if reasoning else 0)


@settings(max_examples=100, deadline=None)
@given(
    arguments=st.dictionaries(st.text(max_size=6), st.text(max_size=6) | st.integers(), max_size=4),
    cuts=st.lists(st.integers(min_value=0, max_value=300), max_size=10),
    first_index=st.integers(min_value=0, max_value=3),
)
def test_any_split_of_tool_arguments_aggregates_to_the_same_call(
    arguments: dict[str, Any], cuts: list[int], first_index: int
) -> None:
    raw = json.dumps(arguments)
    pieces = split_text(raw, cuts)
    events: list[Any] = [
        chunk({"tool_calls": [fragment(first_index, pieces[0], call_id="c1", name="f")]})
    ]
    events += [chunk({"tool_calls": [fragment(first_index, p)]}) for p in pieces[1:]]
    events += [chunk({}, "tool_calls"), DONE]

    [call] = aggregate(decode_stream(events)).tool_calls

    assert (call["id"], call["name"], call["args"]) == ("c1", "f", arguments)


wire_keys = st.sampled_from(
    ["content", "role", "tool_calls", "reasoning_content", "function", "arguments", "name", "id",
     "index", "type", "text", "summary", "signature", "delta", "finish_reason", "usage",
     "custom_outputs", "databricks_output", "trace", "messages", "error"]
)  # fmt: skip
wire_like = st.recursive(
    json_values,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(wire_keys, inner, max_size=4),
    max_leaves=16,
)


def maybe(strategy: st.SearchStrategy) -> st.SearchStrategy:
    """Mostly values of the expected kind, sometimes any JSON value."""
    return st.one_of(strategy, strategy, strategy, json_values)


# Well-shaped events carrying odd values, so that decoding (not just validation) is exercised.
summary_items = st.fixed_dictionaries(
    {"type": st.just("summary_text"), "text": maybe(st.text(max_size=5))},
    optional={"signature": maybe(st.sampled_from(["sig-1", "sig-2", ""]))},
)
content_parts = st.one_of(
    st.text(max_size=5),
    st.fixed_dictionaries(
        {"type": st.just("text"), "text": maybe(st.text(max_size=5))},
        optional={"citations": json_values},
    ),
    st.fixed_dictionaries(
        {"type": st.just("reasoning"), "summary": maybe(st.lists(summary_items, max_size=2))}
    ),
    wire_like,
)
tool_fragments = st.fixed_dictionaries(
    {},
    optional={
        "index": maybe(st.integers(min_value=0, max_value=2)),
        "id": maybe(st.sampled_from(["call_a", "call_b", ""])),
        "function": maybe(
            st.fixed_dictionaries(
                {},
                optional={
                    "name": maybe(st.sampled_from(["f", "g", ""])),
                    "arguments": maybe(st.sampled_from(['{"a"', ": 1}", "", "{}", "[1]", "\x01"])),
                },
            )
        ),
        "thought_signature": maybe(st.just("ts-1")),
    },
)
deltas = st.fixed_dictionaries(
    {},
    optional={
        "role": maybe(st.sampled_from(["assistant", "tool"])),
        "content": st.none() | st.text(max_size=5) | st.lists(content_parts, max_size=3),
        "tool_calls": st.none() | st.lists(tool_fragments, max_size=2),
        "reasoning_content": maybe(st.text(max_size=5)),
        "refusal": maybe(st.text(max_size=5)),
        "id": maybe(st.sampled_from(["m1", "m2"])),
        "name": json_values,
    },
)
event_tops = {
    "id": maybe(st.just("chatcmpl-1")),
    "model": maybe(st.just("m")),
    "usage": maybe(
        st.fixed_dictionaries(
            {},
            optional={
                "prompt_tokens": maybe(st.integers(0, 50)),
                "completion_tokens": maybe(st.integers(0, 50)),
                "total_tokens": maybe(st.integers(0, 100)),
            },
        )
    ),
    "custom_outputs": json_values,
    "databricks_output": maybe(st.fixed_dictionaries({}, optional={"trace": wire_like})),
    "finish_reason": maybe(st.just("stop")),
}
choices = st.fixed_dictionaries(
    {"delta": deltas},
    optional={
        "index": maybe(st.integers(min_value=0, max_value=1)),
        "finish_reason": maybe(st.sampled_from(["stop", "tool_calls"])),
        "logprobs": maybe(st.fixed_dictionaries({"content": st.lists(json_values, max_size=2)})),
    },
)
completion_events = st.fixed_dictionaries(
    {"choices": st.lists(choices, max_size=2)}, optional=event_tops
)
agent_events = st.fixed_dictionaries({"delta": deltas}, optional=event_tops)
events_strategy = st.lists(
    completion_events | agent_events | wire_like,
    max_size=6,
)


@settings(max_examples=300, deadline=None)
@given(events=events_strategy, done=st.booleans())
def test_arbitrary_json_events_give_chunks_or_one_of_our_errors(
    events: list[Any], done: bool
) -> None:
    decoder = StreamDecoder()
    chunks: list[AIMessageChunk] = []
    try:
        for event in events:
            chunks += decoder.feed(json.dumps(event))
        if done:
            chunks += decoder.feed(DONE)
        chunks += decoder.finish()
    except DatabricksServingError:
        return
    assert all(isinstance(c, AIMessageChunk) for c in chunks)
    assert chunks[-1].chunk_position == "last"
    aggregate(chunks)  # and the chunks add up without error


@settings(max_examples=100, deadline=None)
@given(data=st.text(max_size=40))
def test_arbitrary_text_payloads_give_chunks_or_one_of_our_errors(data: str) -> None:
    with contextlib.suppress(DatabricksServingError):
        StreamDecoder().feed(data)
