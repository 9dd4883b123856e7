"""The responses protocol, whole replies: request bodies out, ``ChatResult``s in.

Pure tests: dicts in, messages out. Stream decoding is in ``test_responses_stream.py``.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

import pytest
from langchain_core.messages import (
    AIMessage,
    ChatMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)

from langchain_dbx_serving.errors import AgentError, MalformedResponseError
from langchain_dbx_serving.protocols.responses import (
    decode_output_items,
    decode_reply,
    encode_request,
    tool_names,
)

TRACE = {"info": {"trace_id": "tr-abc", "state": "OK"}, "data": {"spans": []}}


def text_item(text: str, item_id: str = "msg_1", annotations: list | None = None) -> dict:
    part = {"type": "output_text", "text": text, "annotations": annotations or []}
    return {"type": "message", "id": item_id, "role": "assistant", "content": [part]}


def reply(*output: dict, **extra: Any) -> dict:
    return {"object": "response", "id": "resp_1", "output": list(output), **extra}


def message_of(body: dict, client_tools: Collection[str] = ()) -> AIMessage:
    result = decode_reply(body, client_tools=client_tools)
    return result.generations[0].message  # type: ignore[return-value]


def server_blocks(message: AIMessage) -> list[dict]:
    if isinstance(message.content, str):
        return []
    return [
        b
        for b in message.content
        if isinstance(b, dict) and b.get("type") in ("server_tool_call", "server_tool_result")
    ]


def mlflow_request(body: dict) -> Any:
    """Validate a body the way an MLflow ResponsesAgent / AgentServer does."""
    responses = pytest.importorskip("mlflow.types.responses")
    return responses.ResponsesAgentRequest(**body)


# ---- encode_request: messages ------------------------------------------------------------


def test_user_parts_are_input_text_never_text() -> None:
    message = HumanMessage(
        content=[
            "plain string part",
            {"type": "text", "text": "v1 text block", "id": "lc_1"},
            {"type": "input_text", "text": "already responses"},
        ]
    )
    body = encode_request([message], {}, stream=False)
    parts = body["input"][0]["content"]
    assert [p["type"] for p in parts] == ["input_text"] * 3
    assert [p["text"] for p in parts] == ["plain string part", "v1 text block", "already responses"]
    mlflow_request(body)


def test_string_content_stays_a_string() -> None:
    body = encode_request([SystemMessage("be brief"), HumanMessage("hi")], {}, stream=False)
    assert body == {
        "input": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    }


def test_developer_role_from_openai_convention() -> None:
    developer = SystemMessage("rules", additional_kwargs={"__openai_role__": "developer"})
    chat_dev = ChatMessage(role="developer", content="more rules")
    body = encode_request([developer, chat_dev], {}, stream=False)
    assert [item["role"] for item in body["input"]] == ["developer", "developer"]


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        (
            {"type": "image", "url": "https://x/cat.png"},
            {"type": "input_image", "image_url": "https://x/cat.png"},
        ),
        (
            {"type": "image", "base64": "AAAA", "mime_type": "image/png"},
            {"type": "input_image", "image_url": "data:image/png;base64,AAAA"},
        ),
        (
            {"type": "image_url", "image_url": {"url": "https://x/a.png", "detail": "low"}},
            {"type": "input_image", "image_url": "https://x/a.png", "detail": "low"},
        ),
        (
            {"type": "image", "source_type": "base64", "data": "BBBB", "mime_type": "image/jpeg"},
            {"type": "input_image", "image_url": "data:image/jpeg;base64,BBBB"},
        ),
        (
            {"type": "file", "base64": "CCCC", "mime_type": "application/pdf", "filename": "a.pdf"},
            {
                "type": "input_file",
                "file_data": "data:application/pdf;base64,CCCC",
                "filename": "a.pdf",
            },
        ),
        (
            {"type": "file", "file": {"file_id": "file-1"}},
            {"type": "input_file", "file_id": "file-1"},
        ),
        (
            {"type": "file", "url": "https://x/doc.pdf"},
            {"type": "input_file", "file_url": "https://x/doc.pdf"},
        ),
    ],
)
def test_image_and_file_blocks_become_input_parts(block: dict, expected: dict) -> None:
    body = encode_request([HumanMessage(content=["look:", block])], {}, stream=False)
    assert body["input"][0]["content"] == [{"type": "input_text", "text": "look:"}, expected]
    mlflow_request(body)


def test_tool_turn_encodes_function_call_and_output() -> None:
    messages = [
        HumanMessage("weather in Paris?"),
        AIMessage(
            content="",
            tool_calls=[{"name": "weather", "args": {"city": "Paris"}, "id": "call_1"}],
        ),
        ToolMessage("18C", tool_call_id="call_1"),
    ]
    body = encode_request(messages, {}, stream=False)
    assert body["input"][1:] == [
        {
            "type": "function_call",
            "call_id": "call_1",
            "name": "weather",
            "arguments": json.dumps({"city": "Paris"}),
        },
        {"type": "function_call_output", "call_id": "call_1", "output": "18C"},
    ]
    mlflow_request(body)


def test_assistant_history_is_an_output_text_message_item_mlflow_accepts() -> None:
    body = encode_request(
        [HumanMessage("hi"), AIMessage("hello!", id="resp_9"), HumanMessage("again")],
        {},
        stream=False,
    )
    assistant = body["input"][1]
    assert assistant == {
        "type": "message",
        "role": "assistant",
        "id": "resp_9",
        "content": [{"type": "output_text", "text": "hello!", "annotations": []}],
    }
    mlflow_request(body)
    # Without a message id the item still gets one: MLflow requires it on output messages.
    body = encode_request([HumanMessage("hi"), AIMessage("yo")], {}, stream=False)
    assert body["input"][1]["id"] == "msg_1"
    mlflow_request(body)


def test_tool_message_with_text_blocks_is_a_string_output() -> None:
    tool = ToolMessage(content=[{"type": "text", "text": "a"}, "b"], tool_call_id="c")
    body = encode_request([tool], {}, stream=False)
    assert body["input"] == [{"type": "function_call_output", "call_id": "c", "output": "ab"}]


def test_unsupported_role_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="no place for a ChatMessage with role 'narrator'"):
        encode_request([ChatMessage(role="narrator", content="x")], {}, stream=False)


def test_reply_from_this_protocol_round_trips_as_history() -> None:
    output = [
        {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "plan"}]},
        {
            "type": "function_call",
            "id": "fc_1",
            "call_id": "call_1",
            "name": "f",
            "arguments": '{"x": 1}',
        },
        {"type": "function_call_output", "call_id": "call_1", "output": "42"},
        {
            "type": "mcp_approval_request",
            "id": "mcp_1",
            "arguments": "{}",
            "name": "t",
            "server_label": "s",
        },
        text_item(
            "The answer is 42", annotations=[{"type": "url_citation", "url": "u", "title": "t"}]
        ),
    ]
    message = message_of(reply(*output))
    body = encode_request([HumanMessage("q"), message, HumanMessage("thanks")], {}, stream=False)
    sent = body["input"][1:-1]
    assert [item["type"] for item in sent] == [
        "reasoning",
        "function_call",
        "function_call_output",
        "mcp_approval_request",
        "message",
    ]
    assert sent[0]["summary"] == [{"type": "summary_text", "text": "plan"}]
    # The agent's own tool turn goes back exactly as it came (item id included).
    assert sent[1] == output[1]
    assert sent[2] == output[2] and sent[3] == output[3]
    assert sent[4] == output[4]
    mlflow_request(body)


def test_unanswered_tool_calls_close_the_assistant_turn() -> None:
    message = AIMessage(
        content="let me check",
        tool_calls=[{"name": "f", "args": {}, "id": "call_1"}],
        invalid_tool_calls=[{"name": "g", "args": "{oops", "id": "call_2", "error": "bad"}],
    )
    items = encode_request([message], {}, stream=False)["input"]
    assert [i["type"] for i in items] == ["message", "function_call", "function_call"]
    assert items[1]["arguments"] == "{}"
    assert items[2]["arguments"] == "{oops"  # sent as it came, so the tool reply still matches


# ---- encode_request: parameters ----------------------------------------------------------


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "weather",
        "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        "strict": True,
    },
}


def test_chat_completions_params_are_mapped_not_dropped() -> None:
    params = {
        "max_tokens": 64,
        "stop": ["\nObservation"],
        "n": 1,
        "temperature": 0.2,
        "tools": [WEATHER_TOOL, {"type": "web_search"}],
        "tool_choice": {"type": "function", "function": {"name": "weather"}},
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "Answer", "schema": {"type": "object"}, "strict": True},
        },
    }
    body = encode_request([HumanMessage("hi")], params, stream=False)
    assert body["max_output_tokens"] == 64
    assert "max_tokens" not in body
    assert body["stop"] == ["\nObservation"] and body["n"] == 1
    assert body["temperature"] == 0.2
    assert body["tools"] == [
        {
            "type": "function",
            "name": "weather",
            "description": "Weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            "strict": True,
        },
        {"type": "web_search"},
    ]
    assert body["tool_choice"] == {"type": "function", "name": "weather"}
    assert body["text"] == {
        "format": {
            "type": "json_schema",
            "name": "Answer",
            "schema": {"type": "object"},
            "strict": True,
        }
    }
    assert "response_format" not in body
    mlflow_request(body)


def test_json_object_string_tool_choice_and_zero_argument_tool() -> None:
    params = {
        "response_format": {"type": "json_object"},
        "tool_choice": "required",
        "tools": [{"type": "function", "function": {"name": "now"}}],
        "text": {"verbosity": "low"},
    }
    body = encode_request([HumanMessage("hi")], params, stream=False)
    assert body["text"] == {"verbosity": "low", "format": {"type": "json_object"}}
    assert body["tool_choice"] == "required"
    assert body["tools"] == [
        {"type": "function", "name": "now", "parameters": {"type": "object", "properties": {}}}
    ]


def test_agent_params_and_extra_keys_pass_through_at_top_level() -> None:
    params = {
        "custom_inputs": {"mode": "fast"},
        "context": {"conversation_id": "c1", "user_id": "u1"},
        "databricks_options": {"return_trace": True},
        "reasoning": {"effort": "low"},
        "model": "my-agent",
        "my_extra_key": [1, 2],
    }
    body = encode_request([HumanMessage("hi")], params, stream=True)
    assert body == {"input": [{"role": "user", "content": "hi"}], **params, "stream": True}
    request = mlflow_request(body)
    assert request.custom_inputs == {"mode": "fast"}
    assert request.context.conversation_id == "c1"


def test_no_keys_the_caller_did_not_ask_for() -> None:
    body = encode_request([HumanMessage("hi")], {}, stream=False)
    assert body == {"input": [{"role": "user", "content": "hi"}]}
    assert "stream" not in body


def test_reasoning_effort_joins_reasoning() -> None:
    body = encode_request([HumanMessage("hi")], {"reasoning_effort": "high"}, stream=False)
    assert body["reasoning"] == {"effort": "high"}
    assert "reasoning_effort" not in body


# ---- decode_reply ------------------------------------------------------------------------


def test_text_reply_is_a_plain_string_with_metadata_and_usage() -> None:
    body = reply(
        text_item("Hello!"),
        model="agent-model",
        status="completed",
        custom_outputs={"k": 1},
        metadata={"trace_id": "tr-123"},
        usage={
            "input_tokens": 10,
            "output_tokens": 3,
            "total_tokens": 13,
            "input_tokens_details": {"cached_tokens": 4},
            "output_tokens_details": {"reasoning_tokens": 1},
        },
    )
    result = decode_reply(body)
    message = result.generations[0].message
    assert message.content == "Hello!"
    assert message.id == "resp_1"
    assert message.response_metadata == {
        "id": "resp_1",
        "status": "completed",
        "model_name": "agent-model",
        "custom_outputs": {"k": 1},
        "trace_id": "tr-123",
        "output": body["output"],
    }
    assert message.usage_metadata == {
        "input_tokens": 10,
        "output_tokens": 3,
        "total_tokens": 13,
        "input_token_details": {"cache_read": 4},
        "output_token_details": {"reasoning": 1},
    }
    assert result.llm_output == {
        "model_name": "agent-model",
        "id": "resp_1",
        "token_usage": body["usage"],
        "trace_id": "tr-123",
    }


def test_annotations_are_kept_on_text_blocks() -> None:
    citation = {
        "type": "url_citation",
        "url": "https://d",
        "title": "Doc",
        "start_index": 0,
        "end_index": 2,
    }
    message = message_of(reply(text_item("See doc", annotations=[citation])))
    assert message.content == [
        {"type": "text", "text": "See doc", "id": "msg_1", "annotations": [citation]}
    ]
    assert message.text == "See doc"


def test_reasoning_stays_out_of_text() -> None:
    message = message_of(
        reply(
            {
                "type": "reasoning",
                "id": "rs_1",
                "summary": [
                    {"type": "summary_text", "text": "first"},
                    {"type": "summary_text", "text": "second"},
                ],
                "encrypted_content": "gAAA",
            },
            text_item("42"),
        )
    )
    assert message.text == "42"
    assert message.content[:2] == [
        {
            "type": "reasoning",
            "reasoning": "first",
            "id": "rs_1",
            "extras": {"encrypted_content": "gAAA"},
        },
        {"type": "reasoning", "reasoning": "second", "id": "rs_1"},
    ]


def test_calls_of_the_callers_tools_become_tool_calls_keyed_by_call_id() -> None:
    message = message_of(
        reply(
            {
                "type": "function_call",
                "id": "fc_1",
                "call_id": "call_1",
                "name": "f",
                "arguments": '{"a": 1}',
            },
            {
                "type": "function_call",
                "id": "fc_2",
                "call_id": "call_2",
                "name": "now",
                "arguments": "",
            },
            {
                "type": "function_call",
                "id": "fc_3",
                "call_id": "call_3",
                "name": "g",
                "arguments": "{not json",
            },
        ),
        client_tools={"f", "now", "g"},
    )
    assert message.content == ""
    assert [(c["id"], c["name"], c["args"]) for c in message.tool_calls] == [
        ("call_1", "f", {"a": 1}),
        ("call_2", "now", {}),
    ]
    [bad] = message.invalid_tool_calls
    assert (bad["id"], bad["name"], bad["args"]) == ("call_3", "g", "{not json")
    assert "not valid JSON" in (bad["error"] or "")


def test_agent_tool_results_and_unknown_items_are_kept_as_blocks_not_calls() -> None:
    output = [
        {
            "type": "function_call",
            "id": "fc_1",
            "call_id": "call_1",
            "name": "f",
            "arguments": "{}",
        },
        {"type": "function_call_output", "call_id": "call_1", "output": "12"},
        {"type": "web_search_call", "id": "ws_1", "status": "completed"},
        {"type": "brand_new_item", "id": "x", "payload": [1, 2]},
        text_item("done"),
    ]
    message = message_of(reply(*output))
    assert message.text == "done"
    assert message.tool_calls == [] and message.invalid_tool_calls == []
    assert message.content[:4] == [
        {
            "type": "server_tool_call",
            "id": "call_1",
            "name": "f",
            "args": {},
            "extras": {"item_id": "fc_1"},
        },
        {
            "type": "server_tool_result",
            "tool_call_id": "call_1",
            "status": "success",
            "output": "12",
        },
        {"type": "non_standard", "value": output[2]},
        {"type": "non_standard", "value": output[3]},
    ]
    assert message.response_metadata["output"] == output


# A Databricks ResponsesAgent that ran its own UC function, then asks the caller for a tool.
AGENT_TURN = [
    {
        "type": "function_call",
        "id": "fc_uc",
        "call_id": "toolu_uc",
        "name": "system__ai__python_exec",
        "arguments": '{"code": "print(6*7)"}',
    },
    {"type": "function_call_output", "call_id": "toolu_uc", "output": "42\n"},
    text_item("6*7 is 42. Let me ask you for the unit.", "m1"),
    {
        "type": "function_call",
        "id": "fc_ask",
        "call_id": "toolu_ask",
        "name": "ask_user",
        "arguments": '{"question": "which unit?"}',
    },
]


def test_only_calls_of_bound_tools_are_tool_calls_the_agents_own_are_server_blocks() -> None:
    message = message_of(reply(*AGENT_TURN), client_tools={"ask_user", "weather"})
    assert message.tool_calls == [
        {
            "type": "tool_call",
            "id": "toolu_ask",
            "name": "ask_user",
            "args": {"question": "which unit?"},
        }
    ]
    assert server_blocks(message) == [
        {
            "type": "server_tool_call",
            "id": "toolu_uc",
            "name": "system__ai__python_exec",
            "args": {"code": "print(6*7)"},
            "extras": {"item_id": "fc_uc"},
        },
        {
            "type": "server_tool_result",
            "tool_call_id": "toolu_uc",
            "status": "success",
            "output": "42\n",
        },
    ]
    assert message.text == "6*7 is 42. Let me ask you for the unit."


def test_with_no_tools_bound_every_call_is_the_agents_own() -> None:
    message = message_of(reply(*AGENT_TURN))
    assert message.tool_calls == [] and message.invalid_tool_calls == []
    assert [(b["type"], b.get("id") or b.get("tool_call_id")) for b in server_blocks(message)] == [
        ("server_tool_call", "toolu_uc"),
        ("server_tool_result", "toolu_uc"),
        ("server_tool_call", "toolu_ask"),
    ]


def test_a_bound_tool_name_answered_in_the_same_reply_is_the_agents_own_call() -> None:
    # The agent has its own tool named like one the caller bound, and ran it itself.
    output = [
        {"type": "function_call", "call_id": "c1", "name": "search", "arguments": '{"q": "a"}'},
        {"type": "function_call_output", "call_id": "c1", "output": "hit"},
        text_item("Found it."),
    ]
    message = message_of(reply(*output), client_tools={"search"})
    assert message.tool_calls == []
    assert [b["type"] for b in server_blocks(message)] == [
        "server_tool_call",
        "server_tool_result",
    ]
    # The answer may even come first: still the agent's.
    message = message_of(reply(output[1], output[0]), client_tools={"search"})
    assert message.tool_calls == []


def test_agent_call_with_unparsable_arguments_keeps_them_for_the_history() -> None:
    call = {"type": "function_call", "call_id": "c1", "name": "uc_fn", "arguments": "{oops"}
    message = message_of(reply(call, text_item("ok")))
    [block] = server_blocks(message)
    assert block["args"] == {} and block["extras"] == {"arguments": "{oops"}
    body = encode_request([HumanMessage("q"), message], {}, stream=False)
    assert body["input"][1] == call


def test_agent_tool_turns_round_trip_into_items_mlflow_accepts() -> None:
    message = message_of(reply(*AGENT_TURN), client_tools={"ask_user"})
    answer = ToolMessage("celsius", tool_call_id="toolu_ask")
    body = encode_request([HumanMessage("6*7?"), message, answer], {}, stream=False)
    ask = {k: v for k, v in AGENT_TURN[3].items() if k != "id"}  # a ToolCall keeps no item id
    assert body["input"][1:] == [
        *AGENT_TURN[:3],
        ask,
        {"type": "function_call_output", "call_id": "toolu_ask", "output": "celsius"},
    ]
    mlflow_request(body)


def test_server_blocks_from_elsewhere_encode_without_extras() -> None:
    message = AIMessage(
        content=[
            {"type": "server_tool_call", "id": "s1", "name": "lookup", "args": {"q": 1}},
            {"type": "server_tool_result", "tool_call_id": "s1", "status": "error"},
            {
                "type": "server_tool_result",
                "tool_call_id": "s2",
                "status": "success",
                "output": {"n": 2},
            },
        ]
    )
    assert encode_request([message], {}, stream=False)["input"] == [
        {"type": "function_call", "call_id": "s1", "name": "lookup", "arguments": '{"q": 1}'},
        {"type": "function_call_output", "call_id": "s1", "output": ""},
        {"type": "function_call_output", "call_id": "s2", "output": '{"n": 2}'},
    ]


@pytest.mark.parametrize(
    ("tools", "expected"),
    [
        ([WEATHER_TOOL], {"weather"}),
        ([{"type": "function", "name": "ask_user", "parameters": {}}], {"ask_user"}),
        (
            [
                {"type": "function", "function": {"name": "a"}},
                {"type": "function", "name": "b"},
                {"type": "web_search"},
                {"type": "function", "function": {}},
                "not a tool",
            ],
            {"a", "b"},
        ),
        (None, set()),
    ],
)
def test_tool_names_reads_both_tool_formats(tools: Any, expected: set[str]) -> None:
    params = {} if tools is None else {"tools": tools}
    assert tool_names(params) == frozenset(expected)


def test_tool_names_of_encoded_params_are_the_same() -> None:
    params = {"tools": [WEATHER_TOOL, {"type": "function", "function": {"name": "now"}}]}
    body = encode_request([HumanMessage("hi")], params, stream=False)
    assert tool_names(params) == tool_names(body) == {"weather", "now"}


def test_two_text_messages_read_as_one_string() -> None:
    message = message_of(reply(text_item("Let me check. ", "m1"), text_item("It is 4.", "m2")))
    assert message.content == "Let me check. It is 4."


def test_databricks_output_trace_is_surfaced() -> None:
    body = reply(
        text_item("hi"),
        databricks_output={"trace": TRACE, "databricks_request_id": "req-1"},
    )
    result = decode_reply(body)
    meta = result.generations[0].message.response_metadata
    assert meta["trace"] == TRACE
    assert meta["trace_id"] == "tr-abc"
    assert meta["databricks_request_id"] == "req-1"
    assert result.llm_output["trace_id"] == "tr-abc"
    assert result.llm_output["databricks_request_id"] == "req-1"


def test_agent_server_trace_id_wins_over_the_returned_trace() -> None:
    body = reply(
        text_item("hi"), metadata={"trace_id": "tr-own"}, databricks_output={"trace": TRACE}
    )
    assert message_of(body).response_metadata["trace_id"] == "tr-own"


@pytest.mark.parametrize(
    ("body", "code", "text"),
    [
        (
            reply(error={"code": "rate_limit", "message": "slow down"}, status="failed"),
            "rate_limit",
            "slow down",
        ),
        (reply(status="failed"), None, "failed"),
        ({"error": "tool exploded: KeyError 'x'"}, None, "tool exploded: KeyError 'x'"),
        ({"error_code": "INTERNAL_ERROR", "message": "boom"}, "INTERNAL_ERROR", "boom"),
        ({"error": {"code": 500, "message": "upstream"}}, "500", "upstream"),
    ],
)
def test_reported_errors_raise_agent_error(body: dict, code: str | None, text: str) -> None:
    with pytest.raises(AgentError) as caught:
        decode_reply(body)
    assert caught.value.error_code == code
    assert text in str(caught.value)


def test_null_error_and_null_status_are_success() -> None:
    message = message_of(reply(text_item("ok"), error=None, status=None, created_at=1.5))
    assert message.content == "ok"
    assert "status" not in message.response_metadata


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ([1, 2], "not a JSON object"),
        ({"choices": [{"message": {"content": "hi"}}]}, "chat-completions reply"),
        ({"object": "response"}, "no output list"),
        ({"output": [1]}, "not an object"),
        ({"output": "text"}, "unexpected shape"),
    ],
)
def test_malformed_replies_raise_naming_the_body(body: Any, named: str) -> None:
    with pytest.raises(MalformedResponseError, match=named) as caught:
        decode_reply(body)
    assert caught.value.event


def test_decode_output_items_helper() -> None:
    output = [text_item("a"), {"type": "function_call", "call_id": "c", "name": "f"}]
    message = decode_output_items(output, client_tools={"f"})
    assert message.content == "a"
    assert message.tool_calls == [{"type": "tool_call", "id": "c", "name": "f", "args": {}}]
    assert decode_output_items(output).tool_calls == []


def test_function_call_without_a_name_is_never_a_tool_call_nor_a_crash() -> None:
    message = decode_output_items(
        [{"type": "function_call", "call_id": "c", "arguments": "{}"}], client_tools={"f"}
    )
    assert message.tool_calls == [] and message.invalid_tool_calls == []
    assert message.content == [{"type": "server_tool_call", "id": "c", "name": "", "args": {}}]
