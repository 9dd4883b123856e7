"""The server side of the responses protocol: input items -> messages -> output items.

``decode_input`` is the inverse of the request encoder: encoding what it returns gives the
items back. ``output_items`` names every item an output needs to name.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

from langchain_dbx_serving.protocols._responses_encode import encode_input
from langchain_dbx_serving.protocols._responses_input import decode_input
from langchain_dbx_serving.protocols._responses_output import encode_usage, output_items


def _text(text: str, item_id: str) -> dict[str, Any]:
    part = {"type": "output_text", "text": text, "annotations": []}
    return {"type": "message", "role": "assistant", "id": item_id, "content": [part]}


HISTORIES = {
    "plain": [{"role": "user", "content": "hi"}],
    "parts": [
        {"role": "system", "content": "be brief"},
        {"role": "developer", "content": "use tools"},
        {
            "role": "user",
            "content": [
                {"type": "input_text", "text": "what is this?"},
                {"type": "input_image", "image_url": "https://x/y.png", "detail": "low"},
                {"type": "input_file", "file_id": "f1"},
            ],
        },
    ],
    "tool turn": [
        {"role": "user", "content": "weather in Paris?"},
        {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "hm"}]},
        _text("Let me check.", "m1"),
        {"type": "function_call", "call_id": "c1", "name": "weather", "arguments": '{"c": 1}'},
        {"type": "function_call", "call_id": "c2", "name": "time", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "18 C"},
        {"type": "function_call_output", "call_id": "c2", "output": "noon"},
        _text("18 C at noon.", "m2"),
        {"role": "user", "content": "thanks"},
    ],
    "cited answer and unknown item": [
        {"role": "user", "content": "cite"},
        {
            "type": "message",
            "role": "assistant",
            "id": "m1",
            "content": [
                {"type": "output_text", "text": "See doc.", "annotations": [{"type": "url"}]}
            ],
        },
        {"type": "mcp_approval_request", "id": "a1", "name": "x", "arguments": "{}"},
    ],
}


@pytest.mark.parametrize("name", sorted(HISTORIES))
def test_encoding_the_decoded_input_gives_the_items_back(name: str) -> None:
    items = HISTORIES[name]
    assert encode_input(decode_input(items)) == items


def test_a_tool_turn_becomes_the_messages_a_react_graph_holds() -> None:
    messages = decode_input(HISTORIES["tool turn"])
    assert [type(m) for m in messages] == [
        HumanMessage,
        AIMessage,
        ToolMessage,
        ToolMessage,
        AIMessage,
        HumanMessage,
    ]
    first = messages[1]
    assert isinstance(first, AIMessage)
    assert [c["name"] for c in first.tool_calls] == ["weather", "time"]
    assert first.tool_calls[0]["args"] == {"c": 1}
    assert first.text == "Let me check."
    assert messages[2].tool_call_id == "c1"
    assert messages[4].id == "m2" and messages[4].content == "18 C at noon."


def test_roles_and_parts_become_langchain_messages_and_blocks() -> None:
    system, developer, user = decode_input(HISTORIES["parts"])
    assert isinstance(system, SystemMessage) and system.content == "be brief"
    assert developer.additional_kwargs == {"__openai_role__": "developer"}
    assert user.content[0] == {"type": "text", "text": "what is this?"}
    assert user.content[1] == {
        "type": "image_url",
        "image_url": {"url": "https://x/y.png", "detail": "low"},
    }


def test_a_string_input_is_one_user_message() -> None:
    assert decode_input("hello") == [HumanMessage("hello")]


@pytest.mark.parametrize("bad", [42, [1], ["text"], [{"role": "user", "content": 3}]])
def test_malformed_input_is_a_value_error_naming_it(bad: Any) -> None:
    with pytest.raises(ValueError, match=r"input|content"):
        decode_input(bad)


def test_arguments_that_are_not_json_become_an_invalid_tool_call() -> None:
    items = [{"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{oops"}]
    (message,) = decode_input(items)
    assert message.invalid_tool_calls[0]["args"] == "{oops"
    assert encode_input([message]) == items


def test_output_items_name_calls_and_unnamed_reasoning() -> None:
    message = AIMessage(
        content=[{"type": "reasoning", "reasoning": "why"}, {"type": "text", "text": "ok"}],
        tool_calls=[{"name": "f", "args": {"x": 1}, "id": "c9"}],
        id="run-1",
    )
    items = output_items([HumanMessage("ignored"), message, ToolMessage("2", tool_call_id="c9")])
    assert [i["type"] for i in items] == [
        "reasoning",
        "message",
        "function_call",
        "function_call_output",
    ]
    assert items[0]["id"] == "rs_run-1"
    assert items[1]["id"] == "run-1"
    assert items[2]["id"] == "fc_c9"


def test_usage_is_summed_in_responses_naming() -> None:
    usage = encode_usage(
        [
            {"input_tokens": 3, "output_tokens": 2, "total_tokens": 5},
            None,
            {
                "input_tokens": 4,
                "output_tokens": 1,
                "total_tokens": 5,
                "input_token_details": {"cache_read": 2},
                "output_token_details": {"reasoning": 1},
            },
        ]
    )
    assert usage == {
        "input_tokens": 7,
        "output_tokens": 3,
        "total_tokens": 10,
        "input_tokens_details": {"cached_tokens": 2},
        "output_tokens_details": {"reasoning_tokens": 1},
    }
    assert encode_usage([None]) is None


def test_reasoning_of_other_providers_is_sent_as_reasoning() -> None:
    message = AIMessage(
        content=[
            {"type": "thinking", "thinking": "anthropic style", "signature": "s"},
            {"type": "reasoning", "id": "rs_9", "summary": [{"type": "summary_text", "text": "a"}]},
            {"type": "text", "text": "done"},
        ],
        id="m1",
    )
    items = output_items([message])
    assert items[0] == {
        "type": "reasoning",
        "id": "rs_m1",
        "summary": [{"type": "summary_text", "text": "anthropic style"}],
    }
    assert items[1] == {
        "type": "reasoning",
        "id": "rs_9",
        "summary": [{"type": "summary_text", "text": "a"}],
    }
    assert items[2]["type"] == "message"


# ---- property: any well-formed history survives decode -> encode ---------------------------

_words = st.text(alphabet='abc xyz:{}"', min_size=1, max_size=12)
_ids = st.text(alphabet="abcdef0123456789", min_size=1, max_size=6)


@st.composite
def _assistant_turn(draw: st.DrawFn, turn: int) -> list[dict[str, Any]]:
    """One assistant turn: reasoning, text, calls answered by outputs, in a valid order."""
    items: list[dict[str, Any]] = []
    if draw(st.booleans()):
        summary = [{"type": "summary_text", "text": t} for t in draw(st.lists(_words, max_size=2))]
        items.append({"type": "reasoning", "id": f"rs_{turn}", "summary": summary})
    if draw(st.booleans()):
        items.append(_text(draw(_words), f"m_{turn}"))
    calls = draw(st.lists(_ids, max_size=3, unique=True))
    for call in calls:
        arguments = json.dumps(draw(st.dictionaries(_ids, _words, max_size=2)))
        items.append(
            {
                "type": "function_call",
                "call_id": f"c{turn}_{call}",
                "name": "f",
                "arguments": arguments,
            }
        )
    for call in calls:
        items.append(
            {"type": "function_call_output", "call_id": f"c{turn}_{call}", "output": draw(_words)}
        )
    if calls:
        items.append(_text(draw(_words), f"m_{turn}_answer"))
    return items


@st.composite
def _histories(draw: st.DrawFn) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for turn in range(draw(st.integers(1, 3))):
        items.append({"role": draw(st.sampled_from(["user", "system"])), "content": draw(_words)})
        items += draw(_assistant_turn(turn))
    return items


@given(_histories())
def test_any_history_survives_decoding_and_encoding(items: list[dict[str, Any]]) -> None:
    assert encode_input(decode_input(items)) == items
