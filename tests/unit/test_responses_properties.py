"""Properties of the responses protocol decoders, checked with Hypothesis.

- any fragmentation of the answer across delta events aggregates to the same message;
- arbitrary JSON fed as events or as a reply gives a result or our typed errors, never a crash;
- well-formed events in any order never fail, and chunk addition never hits a merge conflict.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.messages import AIMessageChunk

from langchain_dbx_serving.errors import DatabricksServingError
from langchain_dbx_serving.protocols.responses import (
    StreamDecoder,
    decode_output_items,
    decode_reply,
)
from tests.unit.test_responses_stream import (
    USAGE,
    assert_equivalent,
    done,
    run,
    text_delta,
    text_item,
    total,
    whole_of,
)


def fragments(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts} | {0, len(text)})
    return [text[a:b] for a, b in itertools.pairwise(points)]


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(
    text=st.text(min_size=1, max_size=60),
    cuts=st.lists(st.integers(min_value=0, max_value=60), max_size=12),
    with_done=st.booleans(),
    with_completed=st.booleans(),
    delta_ids=st.sampled_from(["same", "differ"]),
)
def test_any_fragmentation_of_the_text_aggregates_to_the_same_message(
    text: str, cuts: list[int], with_done: bool, with_completed: bool, delta_ids: str
) -> None:
    item = text_item(text, "msg_1")
    delta_id = "msg_1" if delta_ids == "same" else "other-id"
    events: list[Any] = [
        {
            "type": "response.output_item.added",
            "item": {"type": "message", "id": "msg_1", "content": []},
        }
    ]
    events += [text_delta(piece, item_id=delta_id) for piece in fragments(text, cuts)]
    if with_done:
        events.append(done(item))
    body = {"object": "response", "id": "r", "output": [item], "usage": USAGE}
    events.append({"type": "response.completed", "response": body} if with_completed else "[DONE]")
    streamed = total(run(events))
    assert streamed.content == text
    if with_completed:
        assert_equivalent(streamed, whole_of(body))


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
EVENT_TYPES = st.sampled_from(
    [
        "response.created",
        "response.output_item.added",
        "response.output_item.done",
        "response.output_text.delta",
        "response.output_text.annotation.added",
        "response.function_call_arguments.delta",
        "response.reasoning_summary_text.delta",
        "response.completed",
        "function_call_output",
        "message",
        "reasoning",
        "function_call",
    ]
)
ITEMS = st.fixed_dictionaries(
    {
        "type": st.sampled_from(
            ["message", "function_call", "reasoning", "function_call_output", "x"]
        )
    },
    optional={
        "id": st.sampled_from(["a", "b"]) | JSON,
        "call_id": st.sampled_from(["c1", "c2"]) | JSON,
        "name": st.text(max_size=3) | JSON,
        "arguments": st.sampled_from(["", "{}", '{"a":1}', "{"]) | JSON,
        "content": st.lists(
            st.fixed_dictionaries(
                {"type": st.just("output_text"), "text": st.text(max_size=4)},
                optional={"annotations": JSON},
            ),
            max_size=2,
        )
        | JSON,
        "summary": st.lists(st.fixed_dictionaries({"text": st.text(max_size=4)}), max_size=2)
        | JSON,
    },
)
PLAUSIBLE_EVENTS = st.fixed_dictionaries(
    {"type": EVENT_TYPES},
    optional={
        "item_id": st.sampled_from(["a", "b", None]) | JSON,
        "output_index": st.integers(0, 2) | JSON,
        "summary_index": st.integers(0, 1),
        "delta": st.text(max_size=4) | JSON,
        "item": ITEMS | JSON,
        "annotation": JSON,
        "response": st.fixed_dictionaries(
            {},
            optional={
                "id": st.text(max_size=3),
                "output": st.lists(ITEMS, max_size=2),
                "usage": JSON,
                "status": JSON,
            },
        )
        | JSON,
        "custom_outputs": JSON,
        "databricks_output": JSON,
        "id": JSON,
        "call_id": JSON,
        "output": JSON,
    },
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    events=st.lists(JSON | PLAUSIBLE_EVENTS | st.just("[DONE]"), max_size=8),
    client_tools=st.sets(st.text(max_size=3), max_size=3),
)
def test_arbitrary_events_give_chunks_or_typed_errors(
    events: list[Any], client_tools: set[str]
) -> None:
    decoder = StreamDecoder(client_tools=client_tools)
    chunks: list[AIMessageChunk] = []
    try:
        for event in events:
            chunks += decoder.feed(event if isinstance(event, str) else json.dumps(event))
        chunks += decoder.finish()
    except DatabricksServingError:
        return
    streamed = total(chunks)
    assert isinstance(streamed.text, str)
    assert streamed.chunk_position == "last"
    assert isinstance(decoder.output_items, list)


@settings(max_examples=200)
@given(
    body=JSON
    | st.fixed_dictionaries(
        {"output": st.lists(ITEMS | JSON, max_size=3)},
        optional={"id": JSON, "usage": JSON, "error": JSON, "status": JSON},
    ),
    client_tools=st.sets(st.text(max_size=3), max_size=3),
)
def test_arbitrary_bodies_give_a_result_or_typed_errors(body: Any, client_tools: set[str]) -> None:
    try:
        result = decode_reply(body, client_tools=client_tools)
    except DatabricksServingError:
        return
    assert isinstance(result.generations[0].message.text, str)


IDS = st.sampled_from(["a", "b", "c"])
PARTS = st.lists(
    st.fixed_dictionaries(
        {"type": st.just("output_text"), "text": st.text(max_size=5)},
        optional={
            "annotations": st.lists(
                st.fixed_dictionaries({"type": st.just("url_citation"), "url": IDS}), max_size=1
            )
        },
    ),
    min_size=1,
    max_size=2,
)
GOOD_ITEMS = st.one_of(
    st.fixed_dictionaries(
        {"type": st.just("message"), "id": IDS, "role": st.just("assistant"), "content": PARTS}
    ),
    st.fixed_dictionaries(
        {
            "type": st.just("function_call"),
            "id": IDS,
            "call_id": IDS,
            "name": IDS,
            "arguments": st.sampled_from(["", "{}", '{"a": 1}', "{"]),
        }
    ),
    st.fixed_dictionaries(
        {
            "type": st.just("reasoning"),
            "id": IDS,
            "summary": st.lists(
                st.fixed_dictionaries(
                    {"type": st.just("summary_text"), "text": st.text(max_size=5)}
                ),
                max_size=2,
            ),
        }
    ),
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(["function_call_output", "mcp_approval_request"]),
            "call_id": IDS,
            "output": st.text(max_size=3),
        }
    ),
)
INDEX = st.none() | st.integers(0, 2)
GOOD_EVENTS = st.one_of(
    st.builds(
        lambda i, o, d: {
            "type": "response.output_text.delta",
            "item_id": i,
            "output_index": o,
            "delta": d,
        },
        IDS,
        INDEX,
        st.text(max_size=5),
    ),
    st.builds(
        lambda i, o, d: {
            "type": "response.function_call_arguments.delta",
            "item_id": i,
            "output_index": o,
            "delta": d,
        },
        IDS,
        INDEX,
        st.sampled_from(['{"a', '": 1', "}", ""]),
    ),
    st.builds(
        lambda i, s, d: {
            "type": "response.reasoning_summary_text.delta",
            "item_id": i,
            "summary_index": s,
            "delta": d,
        },
        IDS,
        st.integers(0, 1),
        st.text(max_size=5),
    ),
    st.builds(
        lambda i, u: {
            "type": "response.output_text.annotation.added",
            "item_id": i,
            "annotation_index": 0,
            "annotation": {"type": "url_citation", "url": u},
        },
        IDS,
        IDS,
    ),
    st.builds(
        lambda item, o: {"type": "response.output_item.added", "item": item, "output_index": o},
        GOOD_ITEMS,
        INDEX,
    ),
    st.builds(
        lambda item, o: {"type": "response.output_item.done", "item": item, "output_index": o},
        GOOD_ITEMS,
        INDEX,
    ),
    st.builds(
        lambda i: {
            "type": "response.created",
            "response": {"id": i, "status": "in_progress", "output": []},
        },
        IDS,
    ),
    st.builds(
        lambda i, out: {
            "type": "response.completed",
            "response": {"id": i, "status": None, "output": out, "usage": USAGE},
        },
        IDS,
        st.lists(GOOD_ITEMS, max_size=2),
    ),
    GOOD_ITEMS,
    st.builds(lambda c: {"custom_outputs": {"n": c}}, st.integers()),
    st.builds(lambda t: {"trace_id": t}, IDS),
)


def _server_blocks(message: Any) -> list[str]:
    """The server tool blocks of a message, as a sorted multiset (order may differ: a held call
    is shown right before the result that answered it)."""
    content = message.content if isinstance(message.content, list) else []
    return sorted(
        json.dumps(b, sort_keys=True)
        for b in content
        if isinstance(b, dict) and b.get("type") in ("server_tool_call", "server_tool_result")
    )


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(events=st.lists(GOOD_EVENTS, max_size=12), client_tools=st.sets(IDS))
def test_well_formed_events_in_any_order_never_fail(
    events: list[dict], client_tools: set[str]
) -> None:
    decoder = StreamDecoder(client_tools=client_tools)
    chunks = run([*events, "[DONE]"], decoder)
    streamed = total(chunks)  # chunk addition must not hit a merge conflict
    assert [c.chunk_position for c in chunks].count("last") == 1
    assert streamed.response_metadata["output"] == decoder.output_items
    # Only the caller's tools are ever tool calls.
    assert {c["name"] for c in streamed.tool_calls} <= client_tools
    if not any(e.get("type", "").endswith((".delta", ".added")) for e in events):
        # With no deltas, every item arrives whole: the stream reads like its item list.
        whole = decode_output_items(decoder.output_items, client_tools=client_tools)
        assert streamed.text == whole.text
        # LangChain parses aggregated chunk arguments leniently (parse_partial_json turns "{"
        # into {}), decode_reply strictly: compare which calls were made, not their validity.
        calls = [(c["id"], c["name"]) for c in streamed.tool_calls + streamed.invalid_tool_calls]
        assert sorted(calls) == sorted(
            (c["id"], c["name"]) for c in whole.tool_calls + whole.invalid_tool_calls
        )
        assert _server_blocks(streamed) == _server_blocks(whole)
