"""Usage accounting, one test per row of docs/usage.md, with the wire payload shapes relayed
verbatim by the local endpoint (whole replies and streams, over loopback).

LangChain's convention: ``input_tokens`` counts every input token, cached ones included;
``input_token_details`` splits out ``cache_read`` / ``cache_creation`` / ``audio``.
"""

from __future__ import annotations

from typing import Any

import pytest

from langchain_dbx_serving import ChatDatabricksResponses, ChatDatabricksServing
from langchain_dbx_serving.testing import LocalEndpoint, RawReply
from tests.support.calls import aggregate
from tests.support.serving import queue

CLAUDE = "us.anthropic.claude-sonnet-4-20250514-v1:0"


def chat(ep: LocalEndpoint, **fields: Any) -> ChatDatabricksServing:
    return ChatDatabricksServing(endpoint="chat", host=ep.host, token=ep.token, **fields)


def agent(ep: LocalEndpoint) -> ChatDatabricksResponses:
    return ChatDatabricksResponses(endpoint="responder", host=ep.host, token=ep.token)


def completion(usage: dict[str, Any], model: str = CLAUDE) -> dict[str, Any]:
    return {
        "id": "c1",
        "object": "chat.completion",
        "model": model,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
        ],
        "usage": usage,
    }


def chunk(content: str, usage: dict[str, Any] | None, finish: str | None = None) -> dict:
    event: dict[str, Any] = {
        "id": "c1",
        "object": "chat.completion.chunk",
        "model": CLAUDE,
        "choices": [
            {
                "index": 0,
                "delta": {"role": "assistant", "content": content},
                "finish_reason": finish,
            }
        ],
    }
    if usage is not None:
        event["usage"] = usage
    return event


# Row 1: Claude on chat completions. Databricks' prompt_tokens already include the cached
# tokens (total_tokens = prompt_tokens + completion_tokens): they are split out, not added.
CLAUDE_CACHED = {
    "prompt_tokens": 5012,
    "completion_tokens": 20,
    "total_tokens": 5032,
    "cache_read_input_tokens": 4980,
    "cache_creation_input_tokens": 0,
}
CLAUDE_EXPECTED = {
    "input_tokens": 5012,
    "output_tokens": 20,
    "total_tokens": 5032,
    "input_token_details": {"cache_read": 4980},
}


def test_claude_chat_invoke_counts_cached_tokens_once(serving) -> None:
    queue(serving, RawReply(body=completion(CLAUDE_CACHED)))
    assert chat(serving).invoke("hi").usage_metadata == CLAUDE_EXPECTED


def test_claude_chat_cache_creation_is_split_out(serving) -> None:
    usage = {**CLAUDE_CACHED, "cache_read_input_tokens": 0, "cache_creation_input_tokens": 4980}
    queue(serving, RawReply(body=completion(usage)))
    assert chat(serving).invoke("hi").usage_metadata == {
        **CLAUDE_EXPECTED,
        "input_token_details": {"cache_creation": 4980},
    }


def test_claude_chat_stream_repeats_usage_and_counts_it_once(serving) -> None:
    # Databricks Claude: usage on every chunk, completion/total null until the last.
    partial = {**CLAUDE_CACHED, "completion_tokens": None, "total_tokens": None}
    events = [
        chunk("o", partial),
        chunk("k", partial),
        chunk("", CLAUDE_CACHED, finish="stop"),
    ]
    queue(serving, RawReply(events=events))
    total = aggregate(list(chat(serving).stream("hi")))
    assert total.text == "ok"
    assert total.usage_metadata == CLAUDE_EXPECTED


# Row 2: OpenAI family on chat completions: cached_tokens are part of prompt_tokens.
GPT_USAGE = {
    "prompt_tokens": 2006,
    "completion_tokens": 300,
    "total_tokens": 2306,
    "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 128, "audio_tokens": 0},
}
GPT_EXPECTED = {
    "input_tokens": 2006,
    "output_tokens": 300,
    "total_tokens": 2306,
    "input_token_details": {"cache_read": 1920},
    "output_token_details": {"reasoning": 128},
}


def test_gpt_chat_invoke(serving) -> None:
    queue(serving, RawReply(body=completion(GPT_USAGE, model="gpt-5-2025-08-07")))
    assert chat(serving).invoke("hi").usage_metadata == GPT_EXPECTED


def test_gpt_chat_stream_with_usage_on_a_final_empty_choices_chunk(serving) -> None:
    events = [
        chunk("o", None),
        chunk("k", None, finish="stop"),
        {"id": "c1", "object": "chat.completion.chunk", "choices": [], "usage": GPT_USAGE},
    ]
    queue(serving, RawReply(events=events))
    assert aggregate(list(chat(serving).stream("hi"))).usage_metadata == GPT_EXPECTED


def test_audio_tokens_are_kept_in_details(serving) -> None:
    usage = {
        "prompt_tokens": 120,
        "completion_tokens": 80,
        "total_tokens": 200,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 100},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 60},
    }
    queue(serving, RawReply(body=completion(usage, model="gpt-4o-audio-preview")))
    assert chat(serving).invoke("hi").usage_metadata == {
        "input_tokens": 120,
        "output_tokens": 80,
        "total_tokens": 200,
        "input_token_details": {"audio": 100},
        "output_token_details": {"audio": 60},
    }


# Row 3: responses route (ResponsesAgent, OpenAI responses): input_tokens include cached_tokens.
RESPONSES_USAGE = {
    "input_tokens": 3000,
    "output_tokens": 50,
    "total_tokens": 3050,
    "input_tokens_details": {"cached_tokens": 2048},
    "output_tokens_details": {"reasoning_tokens": 10},
}
RESPONSES_EXPECTED = {
    "input_tokens": 3000,
    "output_tokens": 50,
    "total_tokens": 3050,
    "input_token_details": {"cache_read": 2048},
    "output_token_details": {"reasoning": 10},
}
MESSAGE_ITEM = {
    "type": "message",
    "id": "m1",
    "role": "assistant",
    "content": [{"type": "output_text", "text": "ok", "annotations": []}],
}


def test_responses_invoke(serving) -> None:
    body = {"object": "response", "id": "r1", "output": [MESSAGE_ITEM], "usage": RESPONSES_USAGE}
    queue(serving, RawReply(body=body), name="responder")
    assert agent(serving).invoke("hi").usage_metadata == RESPONSES_EXPECTED


def test_responses_stream(serving) -> None:
    events = [
        {"type": "response.output_text.delta", "item_id": "m1", "delta": "ok"},
        {"type": "response.output_item.done", "item": MESSAGE_ITEM},
        {
            "type": "response.completed",
            "response": {"id": "r1", "output": [MESSAGE_ITEM], "usage": RESPONSES_USAGE},
        },
    ]
    queue(serving, RawReply(events=events), name="responder")
    total = aggregate(list(agent(serving).stream("hi")))
    assert total.text == "ok"
    assert total.usage_metadata == RESPONSES_EXPECTED


# Row 4: Anthropic's own naming, as an agent may pass it through: input_tokens EXCLUDES the
# cache tokens, so they are added (and the total with them).
def test_anthropic_native_usage_passed_through_by_an_agent(serving) -> None:
    usage = {
        "input_tokens": 12,
        "output_tokens": 5,
        "cache_read_input_tokens": 4980,
        "cache_creation_input_tokens": 100,
    }
    body = {"object": "response", "output": [MESSAGE_ITEM], "usage": usage}
    queue(serving, RawReply(body=body), name="responder")
    assert agent(serving).invoke("hi").usage_metadata == {
        "input_tokens": 5092,
        "output_tokens": 5,
        "total_tokens": 5097,
        "input_token_details": {"cache_read": 4980, "cache_creation": 100},
    }


@pytest.mark.parametrize("total", [17, 5097])
def test_anthropic_naming_with_a_total_that_says_which(serving, total) -> None:
    # With a total, the wire itself says whether input_tokens already hold the cache tokens.
    usage = {
        "input_tokens": 12,
        "output_tokens": 5,
        "total_tokens": total,
        "cache_read_input_tokens": 4980,
        "cache_creation_input_tokens": 100,
    }
    body = {"object": "response", "output": [MESSAGE_ITEM], "usage": usage}
    queue(serving, RawReply(body=body), name="responder")
    got = agent(serving).invoke("hi").usage_metadata
    assert got["input_tokens"] == (12 if total == 17 else 5092)
    assert got["total_tokens"] == total


# Row 5: ChatAgent replies carry chat-completions naming.
def test_chat_agent_usage(serving) -> None:
    body = {
        "messages": [{"role": "assistant", "content": "ok", "id": "m1"}],
        "usage": {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9},
    }
    queue(serving, RawReply(body=body))
    assert chat(serving).invoke("hi").usage_metadata == {
        "input_tokens": 7,
        "output_tokens": 2,
        "total_tokens": 9,
    }


# stream_usage=False (databricks-langchain and langchain-openai): no usage on the stream.
@pytest.mark.parametrize("where", ["constructor", "call", "bind"])
def test_stream_usage_false_suppresses_usage(serving, where) -> None:
    queue(serving, RawReply(events=[chunk("ok", GPT_USAGE, finish="stop")]))
    llm = chat(serving, stream_usage=False) if where == "constructor" else chat(serving)
    if where == "bind":
        llm = llm.bind(stream_usage=False)
    kwargs = {"stream_usage": False} if where == "call" else {}
    chunks = list(llm.stream("hi", **kwargs))
    assert aggregate(chunks).text == "ok"
    assert all(c.usage_metadata is None for c in chunks)
    assert "stream_usage" not in serving.last_request.body


def test_stream_usage_call_kwarg_true_overrides_constructor_false(serving) -> None:
    queue(serving, RawReply(events=[chunk("ok", GPT_USAGE, finish="stop")]))
    chunks = list(chat(serving, stream_usage=False).stream("hi", stream_usage=True))
    assert aggregate(chunks).usage_metadata == GPT_EXPECTED
