"""Chat stream decoder: no text or custom_outputs lost, whatever shape the events take.

Two classes of data loss (issue #13):
- a ChatAgent event carries its text in a top-level ``delta`` next to ``"choices": null`` or
  ``"choices": []`` (some serving layers add the key): the text must come through as when
  ``choices`` is absent;
- ``custom_outputs`` may arrive on any event and at any level (event, choice, message or
  delta): all of it accumulates, key by key, a later value winning (outer level before inner
  within one event), in a stream as in a whole reply.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from langchain_dbx_serving.protocols.chat_completions import StreamDecoder, decode_reply
from tests.support.strategies import json_values

CHOICES_MODES = st.sampled_from(["absent", "null", "empty"])
KEYS = st.sampled_from(["a", "b", "c", "score"])
OUTPUTS = st.none() | st.dictionaries(KEYS, json_values, max_size=3)


def decode(events: list[Any]) -> Any:
    decoder = StreamDecoder()
    chunks = []
    for event in events:
        chunks += decoder.feed(event if isinstance(event, str) else json.dumps(event))
    chunks += decoder.feed("[DONE]")
    chunks += decoder.finish()
    total = chunks[0]
    for chunk in chunks[1:]:
        total = total + chunk
    return total


def with_choices(event: dict[str, Any], mode: str) -> dict[str, Any]:
    if mode == "null":
        return {**event, "choices": None}
    if mode == "empty":
        return {**event, "choices": []}
    return event


def accumulate(expected: dict[str, Any] | None, outputs: Any) -> dict[str, Any] | None:
    if outputs is None:
        return expected
    return {**(expected or {}), **outputs}


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.text(min_size=1, max_size=6), CHOICES_MODES, OUTPUTS, OUTPUTS),
        min_size=1,
        max_size=8,
    )
)
def test_agent_deltas_next_to_any_choices_keep_text_and_outputs(pieces) -> None:
    events, expected = [], None
    for text, mode, top_outputs, delta_outputs in pieces:
        delta: dict[str, Any] = {"role": "assistant", "content": text, "id": "m1"}
        if delta_outputs is not None:
            delta["custom_outputs"] = delta_outputs
        event: dict[str, Any] = {"delta": delta}
        if top_outputs is not None:
            event["custom_outputs"] = top_outputs
        events.append(with_choices(event, mode))
        expected = accumulate(accumulate(expected, top_outputs), delta_outputs)
    message = decode(events)
    assert message.text == "".join(text for text, *_ in pieces)
    assert message.response_metadata.get("custom_outputs") == expected


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.text(max_size=6),
            st.sampled_from(["event", "choice", "delta"]),
            st.dictionaries(KEYS, json_values, min_size=1, max_size=3),
        ),
        min_size=1,
        max_size=8,
    ),
    st.booleans(),
)
def test_completion_custom_outputs_at_any_level_accumulate(pieces, finish_separately) -> None:
    events, expected = [], None
    for text, level, outputs in pieces:
        delta: dict[str, Any] = {"content": text}
        choice: dict[str, Any] = {"index": 0, "delta": delta}
        event: dict[str, Any] = {"id": "c1", "choices": [choice]}
        {"event": event, "choice": choice, "delta": delta}[level]["custom_outputs"] = outputs
        events.append(event)
        expected = accumulate(expected, outputs)
    if finish_separately:
        events.append({"id": "c1", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    message = decode(events)
    assert message.text == "".join(text for text, *_ in pieces)
    assert message.response_metadata["custom_outputs"] == expected


def test_whole_reply_custom_outputs_in_message_and_choice() -> None:
    reply = {
        "id": "c1",
        "custom_outputs": {"a": 1, "b": 1},
        "choices": [
            {
                "index": 0,
                "custom_outputs": {"b": 2},
                "message": {"role": "assistant", "content": "hi", "custom_outputs": {"c": 3}},
                "finish_reason": "stop",
            }
        ],
    }
    message = decode_reply(reply).generations[0].message
    assert message.response_metadata["custom_outputs"] == {"a": 1, "b": 2, "c": 3}


def test_whole_chat_agent_reply_next_to_null_or_empty_choices() -> None:
    for choices in (None, []):
        reply = {
            "choices": choices,
            "messages": [
                {"role": "assistant", "content": "one", "id": "m1", "custom_outputs": {"x": 1}},
                {"role": "assistant", "content": "two", "id": "m2"},
            ],
            "custom_outputs": {"y": 2},
        }
        message = decode_reply(reply).generations[0].message
        assert message.text == "one\n\ntwo"
        assert message.response_metadata["custom_outputs"] == {"x": 1, "y": 2}


def test_a_whole_agent_reply_as_one_event_next_to_empty_choices() -> None:
    event = {"choices": [], "messages": [{"role": "assistant", "content": "all", "id": "m"}]}
    assert decode([event]).text == "all"
