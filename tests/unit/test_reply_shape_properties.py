"""Arbitrary JSON in every field of every reply and event shape: a result, or our typed error.

Each template is a well-formed reply or stream event of one protocol. Hypothesis picks any
field at any depth (the whole body included) and puts any JSON value there, deeply nested
ones included; decoding goes through the edge the chat classes and ``AgentEndpoint`` use
(:class:`Decoding`), and the only exceptions allowed are ours, naming the endpoint.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from langchain_dbx_serving import agents
from langchain_dbx_serving.chat_models._guard import Decoding
from langchain_dbx_serving.errors import DatabricksServingError
from langchain_dbx_serving.protocols import chat_completions, responses
from tests.support.strategies import json_values

USAGE = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
TOOL_CALL = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}
CHAT_REPLY = {
    "id": "r1",
    "model": "m",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "hi", "tool_calls": [TOOL_CALL]},
            "finish_reason": "stop",
        }
    ],
    "usage": USAGE,
    "custom_outputs": {"k": "v"},
    "databricks_output": {"trace": {"info": {"trace_id": "t"}, "data": {"spans": []}}},
}
AGENT_REPLY = {
    "messages": [
        {"role": "assistant", "content": "hi", "id": "m1"},
        {"role": "tool", "content": "42", "tool_call_id": "c1", "id": "m2"},
    ],
    "custom_outputs": {"k": "v"},
}
CHAT_EVENTS = [
    {"id": "r1", "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hi"}}]},
    {"id": "r1", "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, **TOOL_CALL}]}}]},
    {"id": "r1", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": USAGE},
    {"delta": {"role": "assistant", "content": "agent", "id": "m1"}},
]
OUTPUT = [
    {"type": "reasoning", "id": "rs", "summary": [{"type": "summary_text", "text": "think"}]},
    {
        "type": "message",
        "id": "m1",
        "role": "assistant",
        "content": [{"type": "output_text", "text": "hi", "annotations": []}],
    },
    {"type": "function_call", "id": "f1", "call_id": "c1", "name": "f", "arguments": "{}"},
    {"type": "function_call_output", "call_id": "c1", "output": "42"},
]
RESPONSES_REPLY = {
    "id": "resp",
    "status": "completed",
    "output": OUTPUT,
    "usage": {"input_tokens": 1, "output_tokens": 2, "total_tokens": 3},
    "custom_outputs": {"k": "v"},
}
RESPONSES_EVENTS = [
    {"type": "response.output_text.delta", "item_id": "m1", "delta": "Hi"},
    {"type": "response.output_item.done", "item": OUTPUT[1]},
    {"type": "response.output_item.done", "item": OUTPUT[2]},
    {"type": "response.completed", "response": RESPONSES_REPLY},
    {"type": "error", "error": {"message": "no", "code": "X"}},
]


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from paths(item, (*prefix, index))


def replaced(template: Any, path: tuple[Any, ...], value: Any) -> Any:
    if isinstance(value, Deep):
        value = nested(value.depth)
    if not path:
        return value
    out = copy.deepcopy(template)
    target = out
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return out


def nested(depth: int) -> Any:
    value: Any = "x"
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


class Deep:
    """Stands for a value nested ``depth`` levels (built late: hypothesis prints examples)."""

    def __init__(self, depth: int) -> None:
        self.depth = depth

    def __repr__(self) -> str:
        return f"Deep({self.depth})"


ANY_VALUE = json_values | st.integers(200, 5000).map(Deep)


def mutated(template: Any) -> st.SearchStrategy[Any]:
    return st.sampled_from(list(paths(template))).flatmap(
        lambda path: ANY_VALUE.map(lambda value: Mutation(template, path, value))
    )


class Mutation:
    """A template with one field replaced; printed short, built on demand."""

    def __init__(self, template: Any, path: tuple[Any, ...], value: Any) -> None:
        self.template, self.path, self.value = template, path, value

    def build(self) -> Any:
        return replaced(self.template, self.path, self.value)

    def text(self) -> str:
        """The mutated event as wire JSON (deep values written without recursing)."""
        if not isinstance(self.value, Deep):
            return json.dumps(self.build())
        depth = self.value.depth
        deep = '{"k": [' * (depth // 2) + '"x"' + "]}" * (depth // 2)
        return json.dumps(replaced(self.template, self.path, "__DEEP__")).replace(
            '"__DEEP__"', deep
        )

    def __repr__(self) -> str:
        return f"Mutation(path={self.path!r}, value={self.value!r})"


def assert_ours(error: BaseException) -> None:
    assert isinstance(error, DatabricksServingError), repr(error)
    assert error.endpoint == "ep"


def decode_whole(decode: Any, body: Any) -> None:
    guard = Decoding("ep", "req-1")
    try:
        guard.reply(decode, body)
    except Exception as error:
        assert_ours(error)


def decode_stream(decoder: Any, events: list[Any]) -> None:
    guard = Decoding("ep", "req-1")
    try:
        for event in [*events, "[DONE]"]:
            data = event if isinstance(event, str) else json.dumps(event)
            with guard.event(data):
                decoder.feed(data)
        with guard.event("<end>"):
            decoder.finish()
    except Exception as error:
        assert_ours(error)


SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))


@SETTINGS
@given(body=mutated(CHAT_REPLY) | mutated(AGENT_REPLY))
def test_any_field_of_a_chat_reply(body: Mutation) -> None:
    decode_whole(chat_completions.decode_reply, body.build())


@SETTINGS
@given(index=st.integers(0, len(CHAT_EVENTS) - 1), data=st.data())
def test_any_field_of_a_chat_stream_event(index: int, data: Any) -> None:
    events = list(CHAT_EVENTS)
    events[index] = data.draw(mutated(CHAT_EVENTS[index])).text()
    decode_stream(chat_completions.StreamDecoder(), events)


@SETTINGS
@given(body=mutated(RESPONSES_REPLY))
def test_any_field_of_a_responses_reply(body: Mutation) -> None:
    decode_whole(responses.decode_reply, body.build())
    decode_whole(agents._response_from_reply, body.build())


@SETTINGS
@given(index=st.integers(0, len(RESPONSES_EVENTS) - 2), data=st.data())
def test_any_field_of_a_responses_stream_event(index: int, data: Any) -> None:
    events = list(RESPONSES_EVENTS[:-1])
    events[index] = data.draw(mutated(RESPONSES_EVENTS[index])).text()
    decode_stream(responses.StreamDecoder(), events)
    builder = agents._EventBuilder()
    guard = Decoding("ep")
    try:
        for event in events:
            data = event if isinstance(event, str) else json.dumps(event)
            with guard.event(data):
                builder.feed(data)
        with guard.event("<end>"):
            builder.finish()
    except Exception as error:
        assert_ours(error)


def test_the_known_cases_name_the_field() -> None:
    bad_type = replaced(RESPONSES_REPLY, ("output", 1, "content", 0, "type"), [])
    named_7 = replaced(
        CHAT_REPLY, ("choices", 0, "message", "tool_calls", 0, "function", "name"), 7
    )
    for decode, body, field in [
        (responses.decode_reply, bad_type, "`type`"),
        (chat_completions.decode_reply, named_7, "tool_calls[0].function.name"),
    ]:
        guard = Decoding("ep", "req-1")
        try:
            guard.reply(decode, body)
        except DatabricksServingError as error:
            assert type(error).__name__ == "MalformedResponseError"
            assert field in str(error) and error.endpoint == "ep"
            assert error.request_id == "req-1"
        else:
            raise AssertionError("accepted a malformed reply")
