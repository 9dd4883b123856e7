"""Fidelity: the official ``openai`` client (a client we did not write) parses what we serve."""

from __future__ import annotations

import json
from collections.abc import Iterator

import openai
import pytest

from langchain_dbx_serving.testing import LocalEndpoint, Quirks, Reply, ToolCall
from tests.testing.helpers import script

USER = [{"role": "user", "content": "hi"}]


@pytest.fixture
def oai(ep: LocalEndpoint) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=ep.base_url, api_key=ep.token, max_retries=0) as client:
        yield client


def test_chat_completion_whole(ep: LocalEndpoint, oai: openai.OpenAI) -> None:
    script(ep, Reply.text("Hello!", usage=(9, 2)))

    completion = oai.chat.completions.create(model="chat", messages=USER)

    assert completion.choices[0].message.content == "Hello!"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == "chat"
    assert (completion.usage.prompt_tokens, completion.usage.total_tokens) == (9, 11)
    assert ep.last_request.body == {"model": "chat", "messages": USER}


def test_chat_completion_whole_tool_calls(ep: LocalEndpoint, oai: openai.OpenAI) -> None:
    script(ep, Reply.tool_call("get_weather", {"city": "Paris"}, id="call_1"))

    message = oai.chat.completions.create(model="chat", messages=USER).choices[0].message

    (call,) = message.tool_calls
    assert (call.id, call.function.name) == ("call_1", "get_weather")
    assert json.loads(call.function.arguments) == {"city": "Paris"}


def test_chat_completion_stream_text_tool_calls_and_usage(
    ep: LocalEndpoint, oai: openai.OpenAI
) -> None:
    calls = [
        ToolCall("get_weather", {"city": "Paris"}, "call_a"),
        ToolCall("get_time", {}, "call_b"),
    ]
    script(ep, Reply.text("Let me check.", tool_calls=calls, usage=(20, 9)))

    text, args, names, finish, usage = "", {}, {}, None, None
    for chunk in oai.chat.completions.create(model="chat", messages=USER, stream=True):
        usage = chunk.usage or usage
        for choice in chunk.choices:
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
            for call in choice.delta.tool_calls or []:
                names[call.index] = names.get(call.index) or (call.function.name, call.id)
                args[call.index] = args.get(call.index, "") + (call.function.arguments or "")

    assert text == "Let me check."
    assert names == {0: ("get_weather", "call_a"), 1: ("get_time", "call_b")}
    assert {i: json.loads(a) for i, a in args.items()} == {0: {"city": "Paris"}, 1: {}}
    assert finish == "tool_calls"
    assert (usage.prompt_tokens, usage.completion_tokens) == (20, 9)


def test_chat_completion_stream_with_claude_quirks(ep: LocalEndpoint, oai: openai.OpenAI) -> None:
    quirks = Quirks(usage_on_every_chunk=True, role_on_every_delta=True, sse_comments=True)
    script(ep, Reply.text("fine", usage=(5, 1), quirks=quirks))

    chunks = list(oai.chat.completions.create(model="chat", messages=USER, stream=True))

    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "fine"
    assert chunks[-1].usage.total_tokens == 6
    assert chunks[0].usage.total_tokens is None


def test_responses_whole_text_and_function_call(ep: LocalEndpoint, oai: openai.OpenAI) -> None:
    script(
        ep, Reply.text("Answer."), Reply.tool_call("lookup", {"q": "x"}, id="call_q", usage=(4, 4))
    )

    text = oai.responses.create(model="chat", input=USER)
    call = oai.responses.create(model="chat", input=USER)

    assert text.output_text == "Answer."
    assert text.status == "completed"
    (item,) = call.output
    assert (item.type, item.name, item.call_id) == ("function_call", "lookup", "call_q")
    assert json.loads(item.arguments) == {"q": "x"}
    assert call.usage.total_tokens == 8


def test_responses_stream_text_function_call_and_completed(
    ep: LocalEndpoint, oai: openai.OpenAI
) -> None:
    script(
        ep, Reply.tool_call("lookup", {"q": "x"}, id="call_q", text="Looking it up.", usage=(3, 5))
    )

    events = list(oai.responses.create(model="chat", input=USER, stream=True))

    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    arguments = "".join(
        e.delta for e in events if e.type == "response.function_call_arguments.delta"
    )
    done = [e.item for e in events if e.type == "response.output_item.done"]
    completed = events[-1]
    assert text == "Looking it up."
    assert json.loads(arguments) == {"q": "x"}
    assert [item.type for item in done] == ["message", "function_call"]
    assert done[1].call_id == "call_q"
    assert completed.type == "response.completed"
    assert completed.response.usage.output_tokens == 5
    assert completed.response.output_text == "Looking it up."


def test_openai_errors_carry_status_and_databricks_body(
    ep: LocalEndpoint, oai: openai.OpenAI
) -> None:
    script(ep, Reply.error(429, "REQUEST_LIMIT_EXCEEDED", "slow down", retry_after=1))

    with pytest.raises(openai.RateLimitError) as caught:
        oai.chat.completions.create(model="chat", messages=USER)

    assert caught.value.status_code == 429
    assert caught.value.body == {"error_code": "REQUEST_LIMIT_EXCEEDED", "message": "slow down"}
    assert caught.value.response.headers["retry-after"] == "1"


async def test_async_openai_streams_from_its_own_event_loop(ep: LocalEndpoint) -> None:
    script(ep, Reply.text("async hello", usage=(1, 2)))

    async with openai.AsyncOpenAI(base_url=ep.base_url, api_key=ep.token, max_retries=0) as client:
        stream = await client.chat.completions.create(model="chat", messages=USER, stream=True)
        chunks = [chunk async for chunk in stream]

    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "async hello"
    assert chunks[-1].usage.total_tokens == 3
