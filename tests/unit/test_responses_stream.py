"""The responses protocol, streamed: SSE event payloads in, ``AIMessageChunk``s out.

The central invariant: the sum of the chunks of a stream reads the same as ``decode_reply`` of
the equivalent whole reply (text, tool calls, reasoning, usage, response_metadata).
"""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage

from langchain_dbx_serving.errors import (
    AgentError,
    MalformedResponseError,
    StreamInterruptedError,
)
from langchain_dbx_serving.protocols.responses import (
    StreamDecoder,
    decode_reply,
    encode_request,
)

TRACE = {"info": {"trace_id": "tr-77", "state": "OK"}, "data": {"spans": []}}
USAGE = {"input_tokens": 5, "output_tokens": 7, "total_tokens": 12}


def run(
    events: list[Any],
    decoder: StreamDecoder | None = None,
    client_tools: Collection[str] = (),
) -> list[AIMessageChunk]:
    decoder = decoder or StreamDecoder(client_tools=client_tools)
    chunks: list[AIMessageChunk] = []
    for event in events:
        chunks += decoder.feed(event if isinstance(event, str) else json.dumps(event))
    return chunks + decoder.finish()


def total(chunks: list[AIMessageChunk]) -> AIMessageChunk:
    return chunks[0] + chunks[1:] if len(chunks) > 1 else chunks[0]


def reasoning_texts(message: BaseMessage) -> list[str]:
    if isinstance(message.content, str):
        return []
    return [
        b.get("reasoning", "")
        for b in message.content
        if isinstance(b, dict) and b.get("type") == "reasoning"
    ]


def server_blocks(message: BaseMessage) -> list[dict]:
    if isinstance(message.content, str):
        return []
    return [
        b
        for b in message.content
        if isinstance(b, dict) and b.get("type") in ("server_tool_call", "server_tool_result")
    ]


def assert_equivalent(streamed: AIMessageChunk, whole: AIMessage) -> None:
    assert streamed.text == whole.text
    assert streamed.tool_calls == whole.tool_calls
    assert server_blocks(streamed) == server_blocks(whole)
    assert [(c["id"], c["name"], c["args"]) for c in streamed.invalid_tool_calls] == [
        (c["id"], c["name"], c["args"]) for c in whole.invalid_tool_calls
    ]
    assert reasoning_texts(streamed) == reasoning_texts(whole)
    assert streamed.usage_metadata == whole.usage_metadata
    assert streamed.response_metadata == whole.response_metadata
    assert streamed.id == whole.id


def whole_of(body: dict, client_tools: Collection[str] = ()) -> AIMessage:
    result = decode_reply(body, client_tools=client_tools)
    return result.generations[0].message  # type: ignore[return-value]


def text_item(text: str, item_id: str = "msg_1", annotations: list | None = None) -> dict:
    part = {"type": "output_text", "text": text, "annotations": annotations or []}
    return {"type": "message", "id": item_id, "role": "assistant", "content": [part]}


def done(item: dict, output_index: int | None = None, **extra: Any) -> dict:
    event = {"type": "response.output_item.done", "item": item, **extra}
    if output_index is not None:
        event["output_index"] = output_index
    return event


def text_delta(delta: str, item_id: str = "msg_1", **extra: Any) -> dict:
    return {"type": "response.output_text.delta", "item_id": item_id, "delta": delta, **extra}


# An OpenAI-style stream with every event kind, and the whole reply it amounts to.
REASONING = {
    "type": "reasoning",
    "id": "rs_1",
    "summary": [{"type": "summary_text", "text": "think hard"}],
}
CALL = {
    "type": "function_call",
    "id": "fc_1",
    "call_id": "call_1",
    "name": "f",
    "arguments": '{"x":1}',
}
CITATION = {
    "type": "url_citation",
    "url": "https://d",
    "title": "D",
    "start_index": 0,
    "end_index": 5,
}
ANSWER = text_item("Hello", annotations=[CITATION])
FULL_RESPONSE = {
    "object": "response",
    "id": "resp_1",
    "model": "gpt-x",
    "status": "completed",
    "created_at": 1712.5,
    "output": [REASONING, ANSWER, CALL],
    "usage": USAGE,
}
OPENAI_STREAM = [
    {
        "type": "response.created",
        "sequence_number": 0,
        "response": {**FULL_RESPONSE, "status": "in_progress", "output": []},
    },
    {
        "type": "response.output_item.added",
        "output_index": 0,
        "item": {"type": "reasoning", "id": "rs_1", "summary": []},
    },
    {
        "type": "response.reasoning_summary_text.delta",
        "item_id": "rs_1",
        "output_index": 0,
        "summary_index": 0,
        "delta": "think ",
    },
    {
        "type": "response.reasoning_summary_text.delta",
        "item_id": "rs_1",
        "output_index": 0,
        "summary_index": 0,
        "delta": "hard",
    },
    done(REASONING, 0),
    {
        "type": "response.output_item.added",
        "output_index": 1,
        "item": {"type": "message", "id": "msg_1", "role": "assistant", "content": []},
    },
    {
        "type": "response.content_part.added",
        "item_id": "msg_1",
        "output_index": 1,
        "content_index": 0,
        "part": {"type": "output_text", "text": ""},
    },
    text_delta("Hel", output_index=1, content_index=0),
    text_delta("lo", output_index=1, content_index=0),
    {
        "type": "response.output_text.annotation.added",
        "item_id": "msg_1",
        "output_index": 1,
        "content_index": 0,
        "annotation_index": 0,
        "annotation": CITATION,
    },
    {"type": "response.output_text.done", "item_id": "msg_1", "output_index": 1, "text": "Hello"},
    done(ANSWER, 1),
    {"type": "response.output_item.added", "output_index": 2, "item": {**CALL, "arguments": ""}},
    {
        "type": "response.function_call_arguments.delta",
        "item_id": "fc_1",
        "output_index": 2,
        "delta": '{"x"',
    },
    {
        "type": "response.function_call_arguments.delta",
        "item_id": "fc_1",
        "output_index": 2,
        "delta": ":1}",
    },
    {
        "type": "response.function_call_arguments.done",
        "item_id": "fc_1",
        "output_index": 2,
        "arguments": '{"x":1}',
    },
    done(CALL, 2),
    {"type": "response.completed", "response": FULL_RESPONSE},
]


def test_openai_style_stream_equals_the_whole_reply() -> None:
    chunks = run(OPENAI_STREAM, client_tools={"f"})
    streamed = total(chunks)
    assert_equivalent(streamed, whole_of(FULL_RESPONSE, client_tools={"f"}))
    assert streamed.text == "Hello"
    assert reasoning_texts(streamed) == ["think hard"]
    assert streamed.tool_calls == [
        {"type": "tool_call", "id": "call_1", "name": "f", "args": {"x": 1}}
    ]
    assert server_blocks(streamed) == []


def test_openai_style_stream_of_an_agents_own_call_equals_the_whole_reply() -> None:
    chunks = run(OPENAI_STREAM, client_tools={"some_other_tool"})
    streamed = total(chunks)
    assert_equivalent(streamed, whole_of(FULL_RESPONSE, client_tools={"some_other_tool"}))
    assert streamed.tool_calls == [] and streamed.tool_call_chunks == []
    assert server_blocks(streamed) == [
        {
            "type": "server_tool_call",
            "id": "call_1",
            "name": "f",
            "args": {"x": 1},
            "extras": {"item_id": "fc_1"},
        }
    ]


def test_callers_tool_call_streams_live_as_tool_call_chunks() -> None:
    decoder = StreamDecoder(client_tools={"f", "g"})
    per_event = [decoder.feed(json.dumps(e)) for e in OPENAI_STREAM]
    added = OPENAI_STREAM.index(
        next(e for e in OPENAI_STREAM if e.get("item", {}).get("type") == "function_call")
    )
    pieces = [c.tool_call_chunks for chunks in per_event[added : added + 3] for c in chunks]
    # The call opens with its id and name, then each argument delta is its own live chunk.
    assert pieces == [
        [{"type": "tool_call_chunk", "id": "call_1", "name": "f", "args": "", "index": 0}],
        [{"type": "tool_call_chunk", "id": None, "name": None, "args": '{"x"', "index": 0}],
        [{"type": "tool_call_chunk", "id": None, "name": None, "args": ":1}", "index": 0}],
    ]


def test_agents_own_call_is_one_whole_server_block_never_partial() -> None:
    decoder = StreamDecoder(client_tools={"weather"})
    per_event = [decoder.feed(json.dumps(e)) for e in OPENAI_STREAM]
    emitted = [(i, c) for i, chunks in enumerate(per_event) for c in chunks]
    assert all(not c.tool_call_chunks for _i, c in emitted)
    server = [(i, b) for i, c in emitted for b in server_blocks(c)]
    # One block, on the call's done event, with parsed arguments.
    assert [(OPENAI_STREAM[i]["type"], b["args"]) for i, b in server] == [
        ("response.output_item.done", {"x": 1})
    ]


def test_metadata_and_usage_appear_once_on_the_last_chunk() -> None:
    chunks = run(OPENAI_STREAM)
    assert [c.chunk_position for c in chunks].count("last") == 1
    assert chunks[-1].chunk_position == "last"
    assert all(not c.response_metadata and c.usage_metadata is None for c in chunks[:-1])
    assert chunks[-1].usage_metadata == {"input_tokens": 5, "output_tokens": 7, "total_tokens": 12}
    assert chunks[-1].response_metadata["model_name"] == "gpt-x"


def test_streamed_text_is_not_repeated_by_its_done_item() -> None:
    events = [text_delta("Hi "), text_delta("there"), done(text_item("Hi there")), "[DONE]"]
    assert total(run(events)).content == "Hi there"


def test_done_item_completes_text_that_was_only_partly_streamed() -> None:
    events = [text_delta("Hi "), done(text_item("Hi there")), "[DONE]"]
    assert total(run(events)).content == "Hi there"


def test_item_that_arrives_only_as_done_is_emitted_in_full() -> None:
    events = [done(text_item("whole answer")), "[DONE]"]
    chunks = run(events)
    assert chunks[0].content == "whole answer"
    assert total(chunks).content == "whole answer"


def test_item_ids_may_differ_between_added_delta_and_done() -> None:
    events = [
        {
            "type": "response.output_item.added",
            "item": {"type": "message", "id": "msg_A", "role": "assistant", "content": []},
        },
        text_delta("Par", item_id="run-B"),
        text_delta("is", item_id="run-B"),
        done(text_item("Paris", item_id="msg_C")),
        "[DONE]",
    ]
    decoder = StreamDecoder()
    streamed = total(run(events, decoder))
    assert streamed.text == "Paris"
    assert decoder.output_items == [text_item("Paris", item_id="msg_C")]


def test_same_id_done_items_without_deltas_are_each_emitted() -> None:
    # MLflow's LangChain-message converter gives every emitted message the same id.
    events = [done(text_item("one ", "run-1")), done(text_item("two", "run-1")), "[DONE]"]
    decoder = StreamDecoder()
    assert total(run(events, decoder)).text == "one two"
    assert len(decoder.output_items) == 2


WEATHER_CALL = {
    "type": "function_call",
    "id": "fc_1",
    "call_id": "call_9",
    "name": "weather",
    "arguments": '{"city": "Paris"}',
}
WEATHER_DELTAS = [
    {"type": "response.function_call_arguments.delta", "item_id": "fc_1", "delta": '{"ci'},
    {"type": "response.function_call_arguments.delta", "item_id": "fc_1", "delta": 'ty": "Paris"}'},
]


def test_function_call_argument_deltas_aggregate_into_a_tool_call() -> None:
    added = {"type": "response.output_item.added", "item": {**WEATHER_CALL, "arguments": ""}}
    events = [added, *WEATHER_DELTAS, done(WEATHER_CALL), "[DONE]"]
    chunks = run(events, client_tools={"weather"})
    assert [c.tool_call_chunks[0]["args"] for c in chunks[:3]] == ["", '{"ci', 'ty": "Paris"}']
    streamed = total(chunks)
    assert streamed.tool_calls == [
        {"type": "tool_call", "id": "call_9", "name": "weather", "args": {"city": "Paris"}}
    ]


@pytest.mark.parametrize("client_tools", [{"weather"}, set()])
def test_deltas_of_a_call_whose_name_is_not_known_yet_wait_for_its_done_item(
    client_tools: set[str],
) -> None:
    # No `added` event: whose call this is is known only when it is done.
    decoder = StreamDecoder(client_tools=client_tools)
    # Never a partial call: the delta events give nothing.
    assert [decoder.feed(json.dumps(e)) for e in WEATHER_DELTAS] == [[], []]
    streamed = total(run([done(WEATHER_CALL), "[DONE]"], decoder))
    if client_tools:
        assert streamed.tool_calls == [
            {"type": "tool_call", "id": "call_9", "name": "weather", "args": {"city": "Paris"}}
        ]
        assert server_blocks(streamed) == []
    else:
        assert streamed.tool_calls == []
        [block] = server_blocks(streamed)
        assert (block["id"], block["args"]) == ("call_9", {"city": "Paris"})


def test_zero_argument_call_and_several_calls_get_their_own_index() -> None:
    events = [
        {
            "type": "response.output_item.added",
            "output_index": 0,
            "item": {
                "type": "function_call",
                "id": "fc_1",
                "call_id": "c1",
                "name": "now",
                "arguments": "",
            },
        },
        done(
            {
                "type": "function_call",
                "id": "fc_1",
                "call_id": "c1",
                "name": "now",
                "arguments": "",
            },
            0,
        ),
        done(
            {
                "type": "function_call",
                "id": "fc_2",
                "call_id": "c2",
                "name": "f",
                "arguments": '{"a":2}',
            },
            1,
        ),
        "[DONE]",
    ]
    chunks = run(events, client_tools={"now", "f"})
    assert [c.tool_call_chunks[0]["index"] for c in chunks[:-1]] == [0, 1]
    assert total(chunks).tool_calls == [
        {"type": "tool_call", "id": "c1", "name": "now", "args": {}},
        {"type": "tool_call", "id": "c2", "name": "f", "args": {"a": 2}},
    ]


def test_reasoning_deltas_merge_into_blocks_and_stay_out_of_text() -> None:
    events = [
        {
            "type": "response.reasoning_summary_text.delta",
            "item_id": "rs_1",
            "summary_index": 0,
            "delta": "a",
        },
        {
            "type": "response.reasoning_summary_text.delta",
            "item_id": "rs_1",
            "summary_index": 0,
            "delta": "b",
        },
        {
            "type": "response.reasoning_summary_text.delta",
            "item_id": "rs_1",
            "summary_index": 1,
            "delta": "c",
        },
        done(
            {
                "type": "reasoning",
                "id": "rs_1",
                "summary": [
                    {"type": "summary_text", "text": "ab"},
                    {"type": "summary_text", "text": "cd"},
                ],
                "encrypted_content": "enc",
            }
        ),
        text_delta("answer"),
        "[DONE]",
    ]
    streamed = total(run(events))
    assert streamed.text == "answer"
    assert reasoning_texts(streamed) == ["ab", "cd"]
    first = streamed.content[0]
    assert first["id"] == "rs_1" and first["extras"] == {"encrypted_content": "enc"}


def test_annotation_added_events_are_kept() -> None:
    events = [
        text_delta("See D"),
        {
            "type": "response.output_text.annotation.added",
            "item_id": "msg_1",
            "annotation_index": 0,
            "annotation": CITATION,
        },
        done(text_item("See D", annotations=[CITATION])),
        "[DONE]",
    ]
    streamed = total(run(events))
    annotations = [
        a for b in streamed.content if isinstance(b, dict) for a in b.get("annotations", [])
    ]
    assert annotations == [CITATION]  # streamed once, not repeated by the done item
    assert streamed.text == "See D"


# ---- Model Serving shapes (PROTOCOLS.md section 7) ---------------------------------------


def model_serving_stream() -> list[Any]:
    """No created/completed, a top-level id on each event, two agent turns, a bare
    function_call_output between them, databricks_output on the last event."""
    call = {
        "type": "function_call",
        "id": "fc-1",
        "call_id": "toolu_1",
        "name": "lookup",
        "arguments": '{"q": "x"}',
    }
    result = {"type": "function_call_output", "call_id": "toolu_1", "output": "found x"}
    return [
        {
            "type": "response.output_text.delta",
            "item_id": "a1",
            "delta": "Let me look. ",
            "id": "req-1",
        },
        {
            "type": "response.output_item.done",
            "item": text_item("Let me look. ", "a1"),
            "id": "req-1",
        },
        {"type": "response.output_item.done", "item": call, "id": "req-1"},
        result,
        {"type": "response.output_item.done", "item": result, "id": "req-1"},
        {"type": "response.output_text.delta", "item_id": "a2", "delta": "It is ", "id": "req-1"},
        {"type": "response.output_text.delta", "item_id": "a2", "delta": "x.", "id": "req-1"},
        {
            "type": "response.output_item.done",
            "item": text_item("It is x.", "a2"),
            "id": "req-1",
            "databricks_output": {"trace": TRACE, "databricks_request_id": "req-1"},
        },
        "[DONE]",
    ]


MODEL_SERVING_REPLY = {
    "id": "req-1",
    "object": "response",
    "output": [
        text_item("Let me look. ", "a1"),
        {
            "type": "function_call",
            "id": "fc-1",
            "call_id": "toolu_1",
            "name": "lookup",
            "arguments": '{"q": "x"}',
        },
        {"type": "function_call_output", "call_id": "toolu_1", "output": "found x"},
        text_item("It is x.", "a2"),
    ],
    "databricks_output": {"trace": TRACE, "databricks_request_id": "req-1"},
}


@pytest.mark.parametrize("client_tools", [set(), {"weather"}, {"lookup"}])
def test_model_serving_stream_with_two_lifecycles(client_tools: set[str]) -> None:
    # The agent ran its own `lookup` tool: never a tool call, even when the caller bound a tool
    # of the same name (its result in the same stream shows whose call it was).
    decoder = StreamDecoder(client_tools=client_tools)
    streamed = total(run(model_serving_stream(), decoder))
    assert streamed.text == "Let me look. It is x."
    assert streamed.tool_calls == [] and streamed.tool_call_chunks == []
    # The bare tool-result event and its done event are one result, shown once.
    assert server_blocks(streamed) == [
        {
            "type": "server_tool_call",
            "id": "toolu_1",
            "name": "lookup",
            "args": {"q": "x"},
            "extras": {"item_id": "fc-1"},
        },
        {
            "type": "server_tool_result",
            "tool_call_id": "toolu_1",
            "status": "success",
            "output": "found x",
        },
    ]
    meta = streamed.response_metadata
    assert meta["id"] == "req-1"
    assert meta["trace_id"] == "tr-77" and meta["trace"] == TRACE
    assert meta["databricks_request_id"] == "req-1"
    assert decoder.trace == TRACE and decoder.trace_id == "tr-77" and decoder.response_id == "req-1"
    assert decoder.output_items == MODEL_SERVING_REPLY["output"]
    assert_equivalent(streamed, whole_of(MODEL_SERVING_REPLY, client_tools=client_tools))


def agent_then_caller_stream() -> tuple[list[Any], dict]:
    """Model-Serving style: the agent runs its own UC function in a first lifecycle, then asks
    for the caller's `ask_user` tool in a second; the whole reply it amounts to."""
    own = {
        "type": "function_call",
        "id": "fc-uc",
        "call_id": "toolu_uc",
        "name": "main__default__lookup",
        "arguments": '{"id": 7}',
    }
    result = {"type": "function_call_output", "call_id": "toolu_uc", "output": '{"row": 7}'}
    ask = {
        "type": "function_call",
        "id": "fc-ask",
        "call_id": "toolu_ask",
        "name": "ask_user",
        "arguments": '{"q": "sure?"}',
    }

    def lifecycle(resp_id: str, *output: dict) -> list[dict]:
        response = {"id": resp_id, "status": "completed", "output": list(output), "usage": USAGE}
        return [
            {"type": "response.created", "response": {"id": resp_id, "output": []}},
            *[done(item, index, id="req-9") for index, item in enumerate(output)],
            {"type": "response.completed", "response": response, "id": "req-9"},
        ]

    events = [
        *lifecycle("r1", text_item("Checking. ", "m1"), own),
        result,
        {"type": "response.output_item.done", "item": result, "id": "req-9"},
        *lifecycle("r2", text_item("Found row 7.", "m2"), ask),
        "[DONE]",
    ]
    reply = {
        "id": "r2",
        "object": "response",
        "status": "completed",
        "output": [
            text_item("Checking. ", "m1"),
            own,
            result,
            text_item("Found row 7.", "m2"),
            ask,
        ],
        "usage": {"input_tokens": 10, "output_tokens": 14, "total_tokens": 24},
    }
    return events, reply


def test_agent_tool_then_callers_tool_stream_equals_the_whole_reply() -> None:
    events, reply = agent_then_caller_stream()
    tools = {"ask_user", "weather"}
    streamed = total(run(events, client_tools=tools))
    assert_equivalent(streamed, whole_of(reply, client_tools=tools))
    assert [c["name"] for c in streamed.tool_calls] == ["ask_user"]
    assert [b["type"] for b in server_blocks(streamed)] == [
        "server_tool_call",
        "server_tool_result",
    ]
    assert streamed.text == "Checking. Found row 7."


def test_a_held_call_answered_later_in_the_stream_becomes_the_agents_own() -> None:
    call = {"type": "function_call", "call_id": "c1", "name": "search", "arguments": "{}"}
    result = {"type": "function_call_output", "call_id": "c1", "output": "hit"}
    chunks = run([done(call), result, done(text_item("ok")), "[DONE]"], client_tools={"search"})
    streamed = total(chunks)
    assert streamed.tool_calls == []
    # The call is shown right before the result that answered it, in one chunk.
    assert [b["type"] for b in server_blocks(chunks[0])] == [
        "server_tool_call",
        "server_tool_result",
    ]


def test_an_agent_call_cut_off_before_its_done_item_is_shown_whole_at_the_end() -> None:
    events = [
        {
            "type": "response.output_item.added",
            "item": {"type": "function_call", "id": "fc", "call_id": "c", "name": "uc_fn"},
        },
        {"type": "response.function_call_arguments.delta", "item_id": "fc", "delta": '{"a": 1}'},
        "[DONE]",
    ]
    decoder = StreamDecoder(client_tools={"other"})
    chunks = run(events, decoder)
    assert all(not server_blocks(c) for c in chunks[:-2])
    streamed = total(chunks)
    assert streamed.tool_calls == []
    assert server_blocks(streamed) == [
        {
            "type": "server_tool_call",
            "id": "c",
            "name": "uc_fn",
            "args": {"a": 1},
            "extras": {"item_id": "fc"},
        }
    ]
    assert server_blocks(streamed) == server_blocks(
        whole_of({"output": decoder.output_items}, client_tools={"other"})
    )


def test_two_full_lifecycles_reuse_output_index_and_sum_usage() -> None:
    def lifecycle(resp_id: str, text: str) -> list[dict]:
        response = {
            "id": resp_id,
            "status": "completed",
            "output": [text_item(text, f"m-{resp_id}")],
            "usage": USAGE,
        }
        return [
            {"type": "response.created", "response": {"id": resp_id, "status": None, "output": []}},
            {
                "type": "response.output_item.added",
                "output_index": 0,
                "item": {"type": "message", "id": f"m-{resp_id}", "content": []},
            },
            text_delta(text, item_id=f"m-{resp_id}", output_index=0),
            done(text_item(text, f"m-{resp_id}"), 0),
            {"type": "response.completed", "response": response},
        ]

    tool_result = {"type": "function_call_output", "call_id": "c", "output": "1"}
    decoder = StreamDecoder()
    streamed = total(
        run([*lifecycle("r1", "first. "), tool_result, *lifecycle("r2", "second.")], decoder)
    )
    assert streamed.text == "first. second."
    assert streamed.usage_metadata == {"input_tokens": 10, "output_tokens": 14, "total_tokens": 24}
    assert [i["type"] for i in decoder.output_items] == [
        "message",
        "function_call_output",
        "message",
    ]
    assert streamed.response_metadata["id"] == "r2"


def test_completed_with_float_created_at_and_null_status() -> None:
    events = [
        text_delta("ok"),
        {
            "type": "response.completed",
            "response": {
                "id": "r",
                "created_at": 17.25,
                "status": None,
                "output": [text_item("ok")],
            },
        },
    ]
    streamed = total(run(events))
    assert streamed.text == "ok"
    assert "status" not in streamed.response_metadata
    assert streamed.response_metadata["output"] == [text_item("ok")]


@pytest.mark.parametrize("client_tools", [set(), {"f"}])
def test_output_only_in_response_completed_is_emitted(client_tools: set[str]) -> None:
    events = [{"type": "response.completed", "response": FULL_RESPONSE}]
    streamed = total(run(events, client_tools=client_tools))
    assert_equivalent(streamed, whole_of(FULL_RESPONSE, client_tools=client_tools))


@pytest.mark.parametrize("client_tools", [set(), {"f"}, {"lookup"}])
@pytest.mark.parametrize("body", [FULL_RESPONSE, MODEL_SERVING_REPLY], ids=["openai", "agent"])
def test_a_whole_reply_fed_as_one_event_decodes_like_a_stream(
    body: dict, client_tools: set[str]
) -> None:
    streamed = total(run([body], client_tools=client_tools))
    assert_equivalent(streamed, whole_of(body, client_tools=client_tools))


# ---- metadata events ---------------------------------------------------------------------


def test_custom_outputs_latest_wins_and_survive_chunk_addition() -> None:
    events = [
        {**text_delta("a"), "custom_outputs": {"step": 1}},
        {**done(text_item("a")), "custom_outputs": {"step": 2, "sources": ["x"]}},
        "[DONE]",
    ]
    decoder = StreamDecoder()
    chunks = run(events, decoder)
    assert total(chunks).response_metadata["custom_outputs"] == {"step": 2, "sources": ["x"]}
    assert decoder.custom_outputs == {"step": 2, "sources": ["x"]}


def test_agent_server_bare_trace_id_event() -> None:
    events = [done(text_item("hi")), {"trace_id": "tr-server"}, "[DONE]"]
    decoder = StreamDecoder()
    assert total(run(events, decoder)).response_metadata["trace_id"] == "tr-server"
    assert decoder.trace_id == "tr-server"


def test_databricks_output_on_an_event_that_also_has_a_type() -> None:
    events = [
        text_delta("a"),
        {**done(text_item("a")), "databricks_output": {"trace": TRACE}},
        "[DONE]",
    ]
    assert total(run(events)).response_metadata["trace"] == TRACE


# ---- errors ------------------------------------------------------------------------------


def test_agent_server_error_event_raises_agent_error_with_its_message() -> None:
    decoder = StreamDecoder()
    decoder.feed(json.dumps(text_delta("partial")))
    with pytest.raises(AgentError, match="ValueError: the vector index is offline"):
        decoder.feed(json.dumps({"error": "ValueError: the vector index is offline"}))


def test_agent_error_mid_stream_carries_the_request_id() -> None:
    decoder = StreamDecoder()
    decoder.feed(json.dumps({**text_delta("a"), "id": "req-42"}))
    with pytest.raises(AgentError) as caught:
        decoder.feed(json.dumps({"type": "error", "message": "boom", "id": "req-42"}))
    assert caught.value.request_id == "req-42"
    assert "req-42" in str(caught.value)


def test_error_event_and_response_failed() -> None:
    with pytest.raises(AgentError, match="context too long") as caught:
        StreamDecoder().feed(
            json.dumps(
                {"type": "error", "code": "context_length_exceeded", "message": "context too long"}
            )
        )
    assert caught.value.error_code == "context_length_exceeded"
    failed = {
        "type": "response.failed",
        "response": {
            "id": "r",
            "status": "failed",
            "error": {"code": "server_error", "message": "died"},
        },
    }
    with pytest.raises(AgentError, match="died") as caught:
        StreamDecoder().feed(json.dumps(failed))
    assert caught.value.error_code == "server_error"


@pytest.mark.parametrize(
    ("payload", "named"),
    [
        ("{not json", "{not json"),
        ("[1, 2]", "not a JSON object"),
        (
            json.dumps({"type": "response.output_text.delta", "item_id": "m", "delta": 5}),
            "response.output_text.delta",
        ),
        (
            json.dumps({"type": "response.output_item.done", "item": "text"}),
            "response.output_item.done",
        ),
        (json.dumps({"type": 3}), "type is not a string"),
        (json.dumps({"choices": [{"delta": {"content": "hi"}}]}), "chat-completions chunk"),
    ],
)
def test_malformed_event_raises_naming_it(payload: str, named: str) -> None:
    with pytest.raises(MalformedResponseError, match=named) as caught:
        StreamDecoder().feed(payload)
    assert caught.value.event


def test_unknown_event_types_and_fields_are_ignored() -> None:
    events = [
        {"type": "response.in_progress", "response": {}},
        {"type": "response.web_search_call.searching", "item_id": "ws"},
        {"type": "response.something_new", "weird": [1]},
        {**text_delta("ok"), "sequence_number": 3, "obfuscation": "zz"},
        "[DONE]",
    ]
    assert total(run(events)).content == "ok"


# ---- completion ----------------------------------------------------------------------------


def test_truncated_stream_raises_with_the_partial_reply() -> None:
    decoder = StreamDecoder()
    decoder.feed(json.dumps(text_delta("The answer is")))
    with pytest.raises(StreamInterruptedError) as caught:
        decoder.finish()
    assert caught.value.partial.text == "The answer is"


def test_stream_that_ends_mid_item_after_done_items_is_interrupted() -> None:
    decoder = StreamDecoder()
    for event in [done(text_item("first. ", "m1")), text_delta("second is cut", item_id="m2")]:
        decoder.feed(json.dumps(event))
    with pytest.raises(StreamInterruptedError):
        decoder.finish()


@pytest.mark.parametrize(
    "ending",
    [["[DONE]"], [{"type": "response.completed", "response": {"id": "r", "output": []}}], []],
    ids=["done-marker", "completed-no-done-marker", "only-done-items"],
)
def test_any_completion_marker_is_enough(ending: list[Any]) -> None:
    streamed = total(run([text_delta("a"), done(text_item("a")), *ending]))
    assert streamed.text == "a"


def test_empty_stream_is_interrupted() -> None:
    with pytest.raises(StreamInterruptedError):
        StreamDecoder().finish()


def test_deltas_only_stream_with_done_marker_synthesizes_output_items() -> None:
    events = [
        text_delta("hi"),
        {"type": "response.function_call_arguments.delta", "item_id": "fc", "delta": "{}"},
        "[DONE]",
    ]
    decoder = StreamDecoder()
    run(events, decoder)
    assert decoder.output_items == [
        {
            "type": "message",
            "id": "msg_1",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "hi", "annotations": []}],
        },
        {"type": "function_call", "id": "fc", "call_id": None, "name": None, "arguments": "{}"},
    ]


# ---- real producers: MLflow's own converters ---------------------------------------------


def test_stream_produced_by_mlflow_from_chat_completion_chunks() -> None:
    responses = pytest.importorskip("mlflow.types.responses")
    cc_chunks = [
        {"id": "cc1", "choices": [{"delta": {"content": "Hi "}}]},
        {"id": "cc1", "choices": [{"delta": {"content": "there"}}]},
        {
            "id": "cc1",
            "choices": [
                {
                    "delta": {
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": "call_1",
                                "function": {"name": "f", "arguments": '{"a"'},
                            }
                        ]
                    }
                }
            ],
        },
        {
            "id": "cc1",
            "choices": [
                {"delta": {"tool_calls": [{"index": 0, "function": {"arguments": ": 1}"}}]}}
            ],
        },
    ]
    events = [
        e.model_dump(exclude_none=True)
        for e in responses.output_to_responses_items_stream(iter(cc_chunks))
    ]
    decoder = StreamDecoder(client_tools={"f"})
    streamed = total(run([*events, "[DONE]"], decoder))
    # The converter gives the text and the function call the same item id: they stay apart.
    assert streamed.text == "Hi there"
    assert streamed.tool_calls == [
        {"type": "tool_call", "id": "call_1", "name": "f", "args": {"a": 1}}
    ]
    reducer = responses.responses_agent_output_reducer(events)
    assert decoder.output_items == reducer["output"]


def test_stream_output_round_trips_through_encode_request() -> None:
    streamed = total(run(OPENAI_STREAM, client_tools={"f"}))
    history = AIMessage(content=streamed.content, tool_calls=streamed.tool_calls, id=streamed.id)
    body = encode_request([HumanMessage("q"), history], {}, stream=False)
    assert [i["type"] for i in body["input"][1:]] == ["reasoning", "message", "function_call"]
    assert body["input"][2]["content"] == [
        {"type": "output_text", "text": "Hello", "annotations": [CITATION]}
    ]


def test_streamed_agent_tool_turns_round_trip_through_encode_request() -> None:
    streamed = total(run(model_serving_stream(), client_tools={"lookup"}))
    history = AIMessage(content=streamed.content, tool_calls=streamed.tool_calls, id=streamed.id)
    body = encode_request([HumanMessage("q"), history], {}, stream=False)
    sent = body["input"][1:]
    assert [i["type"] for i in sent] == [
        "message",
        "function_call",
        "function_call_output",
        "message",
    ]
    assert sent[1:3] == MODEL_SERVING_REPLY["output"][1:3]
