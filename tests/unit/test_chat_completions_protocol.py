"""Chat-completions protocol: request encoding and whole-reply decoding (dicts in, messages out).

Fixtures are written by hand from PROTOCOLS.md sections 2, 4, 5 and 7.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_core.messages import (
    AIMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)

from langchain_dbx_serving.errors import (
    AgentError,
    DatabricksServingError,
    MalformedResponseError,
)
from langchain_dbx_serving.protocols.chat_completions import decode_reply, encode_request
from tests.support.strategies import json_values

LLAMA = "databricks-meta-llama-3-3-70b-instruct"
CLAUDE_BEDROCK_ID = "us.anthropic.claude-3-7-sonnet-20250219-v1:0"


def reply(message: dict[str, Any], finish_reason: str = "stop", **top: Any) -> dict[str, Any]:
    body = {
        "id": "chatcmpl-9f2c51e0",
        "object": "chat.completion",
        "created": 1741000000,
        "model": LLAMA,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
        "usage": {"prompt_tokens": 21, "completion_tokens": 7, "total_tokens": 28},
    }
    body.update(top)
    return body


def only_message(body: Any) -> AIMessage:
    result = decode_reply(body)
    assert len(result.generations) == 1
    return result.generations[0].message


def reasoning_of(message: AIMessage) -> str:
    if isinstance(message.content, str):
        return ""
    return "".join(
        b.get("reasoning", "")
        for b in message.content
        if isinstance(b, dict) and b.get("type") == "reasoning"
    )


# ---------------------------------------------------------------------------------------------
# encode_request


def test_body_holds_messages_and_params_and_no_stream_key_unless_streaming() -> None:
    params = {"temperature": 0.1, "max_tokens": 256, "stop": ["\n\n"], "top_k": 40}

    body = encode_request([SystemMessage("Be brief."), HumanMessage("Hi")], params, stream=False)

    assert body == {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
        ],
        "temperature": 0.1,
        "max_tokens": 256,
        "stop": ["\n\n"],
        "top_k": 40,  # an extra body key goes to the top level unchanged
    }
    assert encode_request([HumanMessage("Hi")], params, stream=True)["stream"] is True


def test_only_what_the_caller_asked_for_is_sent() -> None:
    body = encode_request([HumanMessage("Hi")], {}, stream=False)

    assert body == {"messages": [{"role": "user", "content": "Hi"}]}


def test_stream_and_messages_in_params_cannot_override_the_call() -> None:
    body = encode_request([HumanMessage("Hi")], {"stream": True, "messages": []}, stream=False)

    assert body == {"messages": [{"role": "user", "content": "Hi"}]}


def test_agent_parameters_go_to_the_top_level() -> None:
    params = {
        "custom_inputs": {"user_tier": "gold"},
        "databricks_options": {"return_trace": True},
        "context": {"conversation_id": "c-1", "user_id": "u-1"},
    }

    body = encode_request([HumanMessage("Hi")], params, stream=True)

    assert body["custom_inputs"] == {"user_tier": "gold"}
    assert body["databricks_options"] == {"return_trace": True}
    assert body["context"] == {"conversation_id": "c-1", "user_id": "u-1"}


def test_user_image_blocks_become_image_url_parts() -> None:
    message = HumanMessage(
        content=[
            {"type": "text", "text": "Compare these"},
            {"type": "image", "url": "https://example.com/a.png"},
            {"type": "image", "base64": "iVBORw0KGgo=", "mime_type": "image/png"},
            {"type": "image", "source_type": "base64", "data": "R0lGOD=", "mime_type": "image/gif"},
            {
                "type": "image_url",
                "image_url": {"url": "https://example.com/b.jpg", "detail": "low"},
            },
            {"type": "image_url", "image_url": "https://example.com/c.jpg"},
        ]
    )

    content = encode_request([message], {}, stream=False)["messages"][0]["content"]

    assert content == [
        {"type": "text", "text": "Compare these"},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "image_url", "image_url": {"url": "data:image/gif;base64,R0lGOD="}},
        {"type": "image_url", "image_url": {"url": "https://example.com/b.jpg", "detail": "low"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/c.jpg"}},
    ]


def test_text_only_parts_are_sent_as_a_string_unless_they_carry_cache_control() -> None:
    plain = HumanMessage(content=["Line one", {"type": "text", "text": "Line two"}])
    cached = SystemMessage(
        content=[{"type": "text", "text": "Long context", "cache_control": {"type": "ephemeral"}}]
    )

    messages = encode_request([cached, plain], {}, stream=False)["messages"]

    assert messages[1]["content"] == "Line one\nLine two"
    assert messages[0]["content"] == [
        {"type": "text", "text": "Long context", "cache_control": {"type": "ephemeral"}}
    ]


@pytest.mark.parametrize(
    "block",
    [
        {"type": "image", "file_id": "file-123"},
        {"type": "image", "base64": "iVBORw0KGgo="},  # no mime type
    ],
)
def test_unusable_image_blocks_are_refused_with_a_reason(block: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="image"):
        encode_request([HumanMessage(content=[block])], {}, stream=False)


def test_assistant_tool_calls_and_tool_results() -> None:
    ai = AIMessage(
        content="",
        tool_calls=[
            {"id": "call_1", "name": "get_weather", "args": {"city": "Zürich"}},
            {"id": "call_2", "name": "get_time", "args": {}},
        ],
    )
    results = [
        ToolMessage("12°C", tool_call_id="call_1"),
        ToolMessage(content=[{"type": "text", "text": "09:30"}], tool_call_id="call_2"),
    ]

    messages = encode_request([HumanMessage("Weather?"), ai, *results], {}, stream=False)[
        "messages"
    ]

    assistant = messages[1]
    assert assistant["role"] == "assistant"
    # Claude behind Databricks rejects empty (and null) text next to tool calls.
    assert assistant["content"] == " "
    assert assistant["tool_calls"] == [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Zürich"}'},
        },
        {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}},
    ]
    assert messages[2:] == [
        {"role": "tool", "tool_call_id": "call_1", "content": "12°C"},
        {"role": "tool", "tool_call_id": "call_2", "content": "09:30"},
    ]


def test_assistant_text_next_to_tool_calls_is_sent_as_is() -> None:
    ai = AIMessage("Let me check.", tool_calls=[{"id": "c1", "name": "f", "args": {"x": 1}}])

    assistant = encode_request([ai], {}, stream=False)["messages"][0]

    assert assistant["content"] == "Let me check."


def test_invalid_tool_calls_are_sent_back_so_their_tool_results_still_match() -> None:
    ai = AIMessage(
        content="",
        invalid_tool_calls=[{"id": "c9", "name": "f", "args": "{oops", "error": "bad json"}],
    )

    assistant = encode_request([ai], {}, stream=False)["messages"][0]

    assert assistant["tool_calls"] == [
        {"id": "c9", "type": "function", "function": {"name": "f", "arguments": "{oops"}}
    ]


def test_unsigned_reasoning_in_history_is_not_sent_and_never_leaks_into_text() -> None:
    ai = AIMessage(
        content=[
            {"type": "reasoning", "reasoning": "secret chain of thought"},
            {"type": "text", "text": "The answer"},
            {"type": "text", "text": " is 4."},
        ]
    )

    assistant = encode_request([ai], {}, stream=False)["messages"][0]

    assert assistant == {"role": "assistant", "content": "The answer is 4."}


def test_signed_reasoning_is_replayed_as_a_databricks_reasoning_part() -> None:
    ai = AIMessage(
        content=[
            {
                "type": "reasoning",
                "reasoning": "Need the weather.",
                "extras": {"signature": "EqoB"},
            },
        ],
        tool_calls=[{"id": "toolu_1", "name": "get_weather", "args": {"city": "Oslo"}}],
    )

    assistant = encode_request([ai], {}, stream=False)["messages"][0]

    assert assistant["content"] == [
        {
            "type": "reasoning",
            "summary": [{"type": "summary_text", "text": "Need the weather.", "signature": "EqoB"}],
        }
    ]
    assert assistant["tool_calls"][0]["function"]["name"] == "get_weather"


def test_signed_reasoning_with_text_keeps_the_text_as_a_text_part() -> None:
    ai = AIMessage(
        content=[
            {"type": "reasoning", "reasoning": "Simple.", "extras": {"signature": "sig"}},
            {"type": "text", "text": "4"},
        ]
    )

    content = encode_request([ai], {}, stream=False)["messages"][0]["content"]

    assert content[1] == {"type": "text", "text": "4"}


def test_name_is_sent_for_user_messages_only() -> None:
    messages = [
        SystemMessage("Be brief.", name="policy"),
        HumanMessage("Hi", name="alice"),
        AIMessage("Hello", name="research_agent"),
    ]

    encoded = encode_request(messages, {}, stream=False)["messages"]

    assert encoded[1] == {"role": "user", "content": "Hi", "name": "alice"}
    assert "name" not in encoded[0]
    assert "name" not in encoded[2]


def test_chat_message_keeps_its_role() -> None:
    messages = [
        ChatMessage(role="developer", content="Use metric units."),
        ChatMessage(role="assistant", content=[{"type": "text", "text": "OK"}]),
    ]

    encoded = encode_request(messages, {}, stream=False)["messages"]

    assert encoded == [
        {"role": "developer", "content": "Use metric units."},
        {"role": "assistant", "content": "OK"},
    ]


def test_unsupported_message_types_are_refused() -> None:
    with pytest.raises(ValueError, match="FunctionMessage"):
        encode_request([FunctionMessage(name="f", content="1")], {}, stream=False)


def test_a_decoded_reply_encodes_back_to_the_same_assistant_turn() -> None:
    wire_message = {
        "role": "assistant",
        "content": "Checking both.",
        "tool_calls": [
            {
                "id": "call_a",
                "type": "function",
                "function": {"name": "lookup", "arguments": '{"q": "delta lake"}'},
            },
            {
                "id": "call_b",
                "type": "function",
                "function": {"name": "now", "arguments": "{}"},
                "thought_signature": "CiQB0e2Kb",
            },
        ],
    }
    decoded = only_message(reply(wire_message, "tool_calls"))

    assert encode_request([decoded], {}, stream=False)["messages"][0] == wire_message


# ---------------------------------------------------------------------------------------------
# decode_reply: chat completions


def test_text_reply() -> None:
    result = decode_reply(reply({"role": "assistant", "content": "Paris."}))
    message = result.generations[0].message

    assert message.content == "Paris."
    assert message.id == "chatcmpl-9f2c51e0"
    assert message.response_metadata == {
        "finish_reason": "stop",
        "model_name": LLAMA,
        "id": "chatcmpl-9f2c51e0",
    }
    assert message.usage_metadata == {"input_tokens": 21, "output_tokens": 7, "total_tokens": 28}
    assert result.llm_output == {
        "model_name": LLAMA,
        "id": "chatcmpl-9f2c51e0",
        "token_usage": {"prompt_tokens": 21, "completion_tokens": 7, "total_tokens": 28},
    }


def test_a_reply_given_as_json_text_is_parsed() -> None:
    body = json.dumps(reply({"role": "assistant", "content": "Paris."}))

    assert only_message(body).text == "Paris."


def test_whitespace_only_answer_is_a_valid_answer() -> None:
    assert only_message(reply({"role": "assistant", "content": "\n"})).content == "\n"


def test_null_content_gives_an_empty_string() -> None:
    assert only_message(reply({"role": "assistant", "content": None})).content == ""


def test_n_greater_than_one_gives_one_generation_per_choice() -> None:
    body = reply({"role": "assistant", "content": "Red"})
    body["choices"].append(
        {"index": 1, "message": {"role": "assistant", "content": "Blue"}, "finish_reason": "length"}
    )

    generations = decode_reply(body).generations

    assert [g.message.text for g in generations] == ["Red", "Blue"]
    assert [g.message.response_metadata["finish_reason"] for g in generations] == [
        "stop",
        "length",
    ]


def test_tool_calls_are_parsed_leniently() -> None:
    message = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "toolu_bdrk_01",
                "type": "function",
                "function": {"name": "search", "arguments": '{"q": "line1\nline2\ttab"}'},
            },
            {
                "id": "toolu_bdrk_02",
                "type": "function",
                "function": {"name": "now", "arguments": ""},
            },
            {
                "id": "toolu_bdrk_03",
                "type": "function",
                "function": {"name": "obj", "arguments": {"already": "parsed"}},
            },
        ],
    }

    decoded = only_message(reply(message, "tool_calls"))

    assert [(c["id"], c["name"], c["args"]) for c in decoded.tool_calls] == [
        ("toolu_bdrk_01", "search", {"q": "line1\nline2\ttab"}),  # raw control characters
        ("toolu_bdrk_02", "now", {}),  # "" means no arguments
        ("toolu_bdrk_03", "obj", {"already": "parsed"}),
    ]
    assert decoded.invalid_tool_calls == []
    assert decoded.response_metadata["finish_reason"] == "tool_calls"


@pytest.mark.parametrize("arguments", ['{"q": "unterminated', "[1, 2]", "42", "null"])
def test_unparseable_arguments_become_invalid_tool_calls(arguments: str) -> None:
    message = {
        "role": "assistant",
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": arguments}}
        ],
    }

    decoded = only_message(reply(message, "tool_calls"))

    assert decoded.tool_calls == []
    [invalid] = decoded.invalid_tool_calls
    assert (invalid["id"], invalid["name"], invalid["args"]) == ("c1", "f", arguments)
    assert invalid["error"]


def test_reasoning_parts_become_reasoning_blocks_kept_out_of_text() -> None:
    message = {
        "role": "assistant",
        "content": [
            {
                "type": "reasoning",
                "summary": [
                    {"type": "summary_text", "text": "2 + 2 is basic.", "signature": "EqoBCkgI"}
                ],
            },
            {"type": "text", "text": "4"},
        ],
    }

    decoded = only_message(reply(message, model=CLAUDE_BEDROCK_ID))

    assert decoded.text == "4"
    assert decoded.content == [
        {"type": "reasoning", "reasoning": "2 + 2 is basic.", "extras": {"signature": "EqoBCkgI"}},
        {"type": "text", "text": "4"},
    ]
    assert decoded.response_metadata["model_name"] == CLAUDE_BEDROCK_ID


def test_text_only_parts_collapse_to_a_string() -> None:
    message = {"role": "assistant", "content": [{"type": "text", "text": "a"}, "b"]}

    assert only_message(reply(message)).content == "ab"


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_reasoning_fields_become_a_reasoning_block(field: str) -> None:
    message = {"role": "assistant", "content": "Yes.", field: "Check the premise first."}

    decoded = only_message(reply(message))

    assert decoded.text == "Yes."
    assert reasoning_of(decoded) == "Check the premise first."


def test_unknown_content_parts_are_kept_as_non_standard_blocks() -> None:
    part = {"type": "citation_map", "refs": [1, 2]}
    message = {"role": "assistant", "content": [{"type": "text", "text": "See [1]."}, part]}

    decoded = only_message(reply(message))

    assert decoded.text == "See [1]."
    assert {"type": "non_standard", "value": part} in decoded.content


def test_refusal_is_kept() -> None:
    message = {"role": "assistant", "content": None, "refusal": "I can't help with that."}

    assert only_message(reply(message)).additional_kwargs["refusal"] == "I can't help with that."


def test_usage_with_cache_keys_maps_to_token_details() -> None:
    body = reply(
        {"role": "assistant", "content": "ok"},
        usage={
            "prompt_tokens": 4982,
            "completion_tokens": 12,
            "total_tokens": 4994,
            "cache_read_input_tokens": 4096,
            "cache_creation_input_tokens": 0,
        },
    )

    usage = only_message(body).usage_metadata

    assert usage is not None
    assert usage["input_tokens"] == 4982
    assert usage["input_token_details"] == {"cache_read": 4096}


def test_logprobs_are_kept() -> None:
    body = reply({"role": "assistant", "content": "Hi"})
    body["choices"][0]["logprobs"] = {"content": [{"token": "Hi", "logprob": -0.01}]}

    meta = only_message(body).response_metadata

    assert meta["logprobs"] == {"content": [{"token": "Hi", "logprob": -0.01}]}


def test_custom_outputs_and_returned_trace() -> None:
    trace = {
        "info": {"trace_id": "tr-0af7651916cd43dd8448eb211c80319c", "state": "OK"},
        "data": {"spans": []},
    }
    body = reply(
        {"role": "assistant", "content": "Done."},
        custom_outputs={"sources": ["doc-1"]},
        databricks_output={"trace": trace, "databricks_request_id": "6b3f1c2e-req"},
    )

    result = decode_reply(body)
    meta = result.generations[0].message.response_metadata

    assert meta["custom_outputs"] == {"sources": ["doc-1"]}
    assert meta["trace"] == trace
    assert meta["trace_id"] == "tr-0af7651916cd43dd8448eb211c80319c"
    assert meta["databricks_request_id"] == "6b3f1c2e-req"
    assert result.llm_output is not None
    assert result.llm_output["trace_id"] == "tr-0af7651916cd43dd8448eb211c80319c"


# ---------------------------------------------------------------------------------------------
# decode_reply: ChatAgent


CHAT_AGENT_REPLY = {
    "messages": [
        {
            "role": "assistant",
            "content": "",
            "id": "run-1a",
            "tool_calls": [
                {
                    "id": "call_7",
                    "type": "function",
                    "function": {"name": "uc_lookup", "arguments": '{"sku": "A-12"}'},
                }
            ],
        },
        {
            "role": "tool",
            "content": '{"stock": 3}',
            "name": "uc_lookup",
            "id": "run-1b",
            "tool_call_id": "call_7",
        },
        {"role": "assistant", "content": "There are 3 units of A-12 in stock.", "id": "run-1c"},
    ],
    "finish_reason": "stop",
    "custom_outputs": {"route": "inventory"},
    "usage": {"prompt_tokens": 310, "completion_tokens": 25, "total_tokens": 335},
}


def test_chat_agent_reply_answers_with_assistant_text_and_keeps_steps_as_metadata() -> None:
    decoded = only_message(CHAT_AGENT_REPLY)

    assert decoded.text == "There are 3 units of A-12 in stock."
    # The agent already ran its tools: a LangChain agent loop must not run them again.
    assert decoded.tool_calls == []
    assert decoded.invalid_tool_calls == []
    meta = decoded.response_metadata
    assert [m["id"] for m in meta["messages"]] == ["run-1a", "run-1b", "run-1c"]
    assert meta["messages"][0]["tool_calls"][0]["function"]["name"] == "uc_lookup"
    assert meta["custom_outputs"] == {"route": "inventory"}
    assert meta["finish_reason"] == "stop"
    assert decoded.usage_metadata == {"input_tokens": 310, "output_tokens": 25, "total_tokens": 335}


def test_chat_agent_texts_of_several_assistant_messages_are_joined() -> None:
    body = {
        "messages": [
            {"role": "assistant", "content": "Looking it up.", "id": "a"},
            {"role": "tool", "content": "42", "id": "b", "name": "f", "tool_call_id": "c"},
            {"role": "assistant", "content": "It is 42.", "id": "d"},
        ]
    }

    assert only_message(body).text == "Looking it up.\n\nIt is 42."


def test_chat_agent_reply_without_optional_fields() -> None:
    decoded = only_message({"messages": [{"role": "assistant", "content": "Hi", "id": "m1"}]})

    assert decoded.text == "Hi"
    assert decoded.usage_metadata is None
    assert decoded.response_metadata == {
        "messages": [{"role": "assistant", "content": "Hi", "id": "m1"}]
    }


# ---------------------------------------------------------------------------------------------
# decode_reply: errors


@pytest.mark.parametrize(
    ("body", "code", "text"),
    [
        (
            {"error_code": "REQUEST_LIMIT_EXCEEDED", "message": "Exceeded 2 requests per second"},
            "REQUEST_LIMIT_EXCEEDED",
            "Exceeded 2 requests per second",
        ),
        (
            {"error": {"code": 429, "message": "Rate limit", "type": "rate_limit", "param": None}},
            "429",
            "Rate limit",
        ),
        ({"error": "tool 'search' timed out"}, None, "tool 'search' timed out"),
        (
            {
                "error_code": "BAD_REQUEST",
                "message": '{"external_model_provider": "openai", "external_model_error": '
                '{"error": {"message": "Missing parameter"}}}',
            },
            "BAD_REQUEST",
            "Missing parameter",
        ),
    ],
)
def test_errors_in_a_reply_raise_agent_error(body: dict[str, Any], code: Any, text: str) -> None:
    with pytest.raises(AgentError) as caught:
        decode_reply(body)

    assert caught.value.error_code == code
    assert text in str(caught.value)


@pytest.mark.parametrize(
    "body",
    [
        [1, 2],
        "not json at all",
        {"result": "hello"},
        {"choices": []},
        {"choices": "abc"},
        {"choices": [{"index": 0, "message": {"content": {"text": "a dict"}}}]},
        {"choices": [{"index": 0, "message": {"tool_calls": "f()"}}]},
        {"messages": "hi"},
    ],
)
def test_replies_of_an_impossible_shape_raise_malformed_response_error(body: Any) -> None:
    with pytest.raises(MalformedResponseError) as caught:
        decode_reply(body)

    assert caught.value.event


# Arbitrary JSON, and arbitrary values inside a plausible chat-completions skeleton.
keys = st.sampled_from(
    ["content", "role", "tool_calls", "reasoning_content", "function", "arguments", "name", "id",
     "index", "type", "text", "summary", "signature", "refusal", "error", "message"]
)  # fmt: skip
shaped = st.recursive(
    json_values,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=16,
)


@settings(max_examples=300, deadline=None)
@given(
    body=json_values
    | st.builds(lambda c: {"choices": c}, shaped)
    | st.builds(lambda m: {"choices": [{"index": 0, "message": m}]}, shaped)
    | st.builds(lambda m: {"messages": m}, shaped)
)
def test_any_json_body_gives_a_result_or_one_of_our_errors(body: Any) -> None:
    try:
        result = decode_reply(body)
    except DatabricksServingError:
        return
    assert all(isinstance(g.message, AIMessage) for g in result.generations)
