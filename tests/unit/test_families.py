"""Model families as pure functions: detection, the reasoning knob, rules, replayed reasoning."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from langchain_dbx_serving.errors import ConfigurationError, ModelRuleError
from langchain_dbx_serving.protocols._families import (
    apply_family_rules,
    detect_family,
    drop_stale_empty_reasoning,
    profile_for,
)
from langchain_dbx_serving.protocols.chat_completions import decode_reply, encode_request


@pytest.mark.parametrize(
    ("names", "family"),
    [
        (("databricks-claude-3-7-sonnet",), "claude"),
        (("system.ai.claude-sonnet-4-5",), "claude"),
        (("databricks-gemini-2-5-pro",), "gemini-2.5"),
        (("gemini-2.5-flash",), "gemini-2.5"),
        (("databricks-gemini-3-pro",), "gemini-3"),
        (("databricks-gemini-3-1-flash-lite",), "gemini-3"),
        (("databricks-gpt-5-2",), "openai"),
        (("databricks-gpt-oss-20b",), "openai"),
        (("o3-mini",), "openai"),
        (("my-agent", "anthropic.claude-sonnet-4"), "claude"),
        (("databricks-meta-llama-3-3-70b-instruct",), "other"),
        (("proto3-model", "photo1"), "other"),
        ((None, ""), "other"),
    ],
)
def test_family_from_names(names, family) -> None:
    assert detect_family(*names) == family


def apply(params, family, protocol="chat", endpoint=""):
    return apply_family_rules(params, family=family, protocol=protocol, endpoint=endpoint)


def test_the_knob_maps_per_family_and_protocol() -> None:
    assert apply({"max_tokens": 4000, "reasoning": {"budget_tokens": 1024}}, "claude") == {
        "max_tokens": 4000,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
    }
    assert apply({"reasoning_effort": "low"}, "gemini-3") == {"reasoning_effort": "low"}
    assert apply({"reasoning": {"effort": "low"}}, "openai") == {"reasoning_effort": "low"}
    assert apply({"reasoning_effort": "low"}, "other", "responses") == {
        "reasoning": {"effort": "low"}
    }
    assert apply({"reasoning": {"effort": "high", "summary": "auto"}}, "openai", "responses") == {
        "reasoning": {"effort": "high", "summary": "auto"}
    }
    # Other responses `reasoning` keys are the agent's business: passed through.
    assert apply({"reasoning": {"x": 1}}, "other", "responses") == {"reasoning": {"x": 1}}
    assert apply({"temperature": 0.3}, "claude") == {"temperature": 0.3}  # no thinking: no rule


def test_disagreeing_efforts_and_bad_types_are_refused() -> None:
    with pytest.raises(ModelRuleError, match="disagree"):
        apply({"reasoning_effort": "low", "reasoning": {"effort": "high"}}, "openai")
    with pytest.raises(ModelRuleError, match="integer"):
        apply({"reasoning": {"budget_tokens": "2048"}}, "claude")
    with pytest.raises(ModelRuleError, match="must be a dict"):
        apply({"reasoning": "high"}, "openai")
    with pytest.raises(ModelRuleError, match="no responses-protocol field"):
        apply({"reasoning": {"budget_tokens": 2048}}, "openai", "responses")


@pytest.mark.parametrize(
    ("extra", "rule"),
    [
        ({"top_k": 5}, "top_k"),
        ({"top_p": 0.5}, "top_p=0.5"),
        ({"tool_choice": "required"}, "forces tool use"),
        ({"tool_choice": {"type": "function", "function": {"name": "f"}}}, "forces tool use"),
    ],
)
def test_claude_thinking_rules_also_check_raw_fields(extra, rule) -> None:
    params = {"max_tokens": 4000, "thinking": {"type": "enabled", "budget_tokens": 2000}, **extra}
    with pytest.raises(ModelRuleError, match=rule) as caught:
        apply(params, "claude", endpoint="databricks-claude-sonnet-4")
    assert isinstance(caught.value, ConfigurationError) and isinstance(caught.value, ValueError)
    assert caught.value.endpoint == "databricks-claude-sonnet-4"
    assert "https://" in str(caught.value)  # the rule cites its source


def test_allowed_sampling_with_thinking() -> None:
    params = {
        "max_tokens": 4000,
        "thinking": {"type": "enabled", "budget_tokens": 2000},
        "temperature": 1,
        "top_p": 0.95,
        "tool_choice": "auto",
    }
    assert apply(params, "claude") == params


def test_strict_stripped_only_where_unsupported() -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {}, "strict": True}}]
    for family in ("claude", "gemini-2.5", "gemini-3"):
        assert "strict" not in apply({"tools": tools}, family)["tools"][0]["function"]
    for family in ("openai", "other"):
        assert apply({"tools": tools}, family)["tools"][0]["function"]["strict"] is True
    assert tools[0]["function"]["strict"] is True  # the caller's tools are not mutated


def signed(text, signature):
    return {
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": text, "signature": signature}],
    }


def test_hollow_signed_reasoning_is_dropped_only_outside_the_open_tool_loop() -> None:
    messages = [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": [signed("", "s1"), {"type": "text", "text": "A"}]},
        {"role": "user", "content": "b"},
        {"role": "assistant", "content": [signed("", "s2")], "tool_calls": [{"id": "c"}]},
        {"role": "tool", "tool_call_id": "c", "content": "1"},
    ]
    out = drop_stale_empty_reasoning(messages)
    assert out[1] == {"role": "assistant", "content": "A"}
    assert out[3] == messages[3]  # the loop in progress: sent as is, the endpoint judges
    earlier_call = [
        {"role": "assistant", "content": [signed("", "s")], "tool_calls": [{"id": "x"}]}
    ]
    assert (
        drop_stale_empty_reasoning([*earlier_call, {"role": "user", "content": "q"}])[0]["content"]
        == " "
    )
    kept = [
        {"role": "assistant", "content": [signed("thought", "s3")]},
        {"role": "user", "content": "q"},
    ]
    assert drop_stale_empty_reasoning(kept) == kept


def test_an_unmodelled_reasoning_form_is_echoed_verbatim() -> None:
    # A reasoning part whose summary items we do not model (e.g. redacted reasoning) comes back
    # exactly as received on the tool-call turn.
    part = {"type": "reasoning", "summary": [{"type": "summary_encrypted", "data": "opaque=="}]}
    wire = {
        "role": "assistant",
        "content": [part, {"type": "text", "text": "Checking."}],
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
        ],
    }
    body = {"choices": [{"index": 0, "message": wire, "finish_reason": "tool_calls"}]}
    message = decode_reply(body).generations[0].message
    assert message.text == "Checking."
    history = [HumanMessage("q"), message, ToolMessage("1", tool_call_id="c1")]
    assert encode_request(history, {}, stream=False)["messages"][1]["content"][0] == part


def test_signed_reasoning_round_trips_through_encode() -> None:
    wire = {"role": "assistant", "content": [signed("why", "sig"), {"type": "text", "text": "Hi"}]}
    body = {"choices": [{"index": 0, "message": wire, "finish_reason": "stop"}]}
    message = decode_reply(body).generations[0].message
    assert isinstance(message, AIMessage)
    assert encode_request([message], {}, stream=False)["messages"][0] == wire


def test_finish_reason_is_inferred_when_omitted() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    body = {"choices": [{"index": 0, "message": {"role": "assistant", "tool_calls": [call]}}]}
    message = decode_reply(body).generations[0].message
    assert message.response_metadata["finish_reason"] == "tool_calls"
    body = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "x"}}]}
    assert decode_reply(body).generations[0].message.response_metadata["finish_reason"] == "stop"


def test_item_ids_normalised_for_openai_family_only() -> None:
    from langchain_dbx_serving.protocols._families import apply_body_rules

    body = {"input": [{"type": "function_call", "id": "x" * 70, "call_id": "c"}]}
    fixed = apply_body_rules(body, family="openai", protocol="responses")["input"][0]["id"]
    assert fixed.startswith("fc_x") and len(fixed) == 64
    assert fixed == apply_body_rules(body, family="openai", protocol="responses")["input"][0]["id"]
    assert apply_body_rules(body, family="other", protocol="responses") == body
    assert apply_body_rules(body, family="openai", protocol="chat") == body


_CHAT_SO = {"structured_output": True}


@pytest.mark.parametrize(
    ("endpoint", "fields", "profile", "chat_only"),
    [
        (
            "databricks-gpt-oss-120b",
            {},
            {
                "reasoning_effort_levels": ["low", "medium", "high"],
                "reasoning_effort_default": "medium",
            },
            _CHAT_SO,
        ),
        ("databricks-gpt-5-mini", {}, {"reasoning_effort_default": "minimal"}, _CHAT_SO),
        ("databricks-gpt-5-1", {}, {"reasoning_effort_default": "none"}, _CHAT_SO),
        (
            "databricks-gpt-5",
            {},
            {"reasoning_effort_default": "minimal", "max_input_tokens": 128_000},
            _CHAT_SO,
        ),
        ("databricks-gpt-5-4", {}, None, _CHAT_SO),  # no effort default documented: no guess
        (
            "databricks-claude-sonnet-4-5",
            {},
            {"reasoning_output": True},
            {"structured_output": True, "tool_calling": True},
        ),
        (
            "system.ai.claude-haiku-4-5",
            {},
            {"reasoning_output": True},
            {"structured_output": True, "tool_calling": True},
        ),
        # response_format refused by these (a 400): function calling for structured output
        (
            "databricks-claude-opus-5-5",
            {},
            {"reasoning_output": True},
            {"structured_output": False},
        ),
        (
            "databricks-claude-fable-5-1",
            {},
            {"reasoning_output": True},
            {"structured_output": False},
        ),
        ("databricks-gemini-2-5-pro", {}, None, _CHAT_SO),
        (
            "databricks-gemini-3-1-flash-lite",
            {},
            {"text_inputs": True, "image_inputs": True, "video_inputs": True, "audio_inputs": True},
            _CHAT_SO,
        ),
        (
            "databricks-meta-llama-4-maverick",
            {},
            {"text_inputs": True, "image_inputs": False},
            None,
        ),
        ("databricks-meta-llama-3-3-70b-instruct", {}, None, None),  # nothing documented
        ("databricks-qwen3-next-80b-a3b-instruct", {}, None, {"tool_calling": True}),
        # Not a Foundation Model API name: a custom or external-model endpoint.
        ("my-endpoint", {"model_family": "claude"}, {"reasoning_output": True}, None),
        ("my-gpt-5", {}, {"reasoning_effort_default": "minimal"}, None),
        ("my-endpoint", {}, None, None),
        (
            "databricks-claude-sonnet-4-5",
            {"profile": {"max_input_tokens": 9}},
            {"max_input_tokens": 9},
            None,
        ),
    ],
)
def test_model_profile(endpoint, fields, profile, chat_only) -> None:
    from langchain_dbx_serving import ChatDatabricksResponses, ChatDatabricksServing

    settings = {"host": "https://example.cloud.databricks.com", "token": "t", **fields}
    responses = ChatDatabricksResponses(endpoint=endpoint, **settings)
    assert responses.profile == profile
    serving = ChatDatabricksServing(endpoint=endpoint, **settings)
    assert serving.profile == ({**(profile or {}), **(chat_only or {})} or None)


def test_profile_for_is_protocol_aware() -> None:
    chat = profile_for("openai", "system.ai.gpt-5-2", "chat")
    assert chat == {"reasoning_effort_default": "none", "structured_output": True}
    assert profile_for("openai", "system.ai.gpt-5-2", "responses") == {
        "reasoning_effort_default": "none"
    }


def test_default_structured_output_method() -> None:
    from langchain_dbx_serving.chat_models._structured import default_method

    assert default_method({"structured_output": True}) == "json_schema"
    for profile in (None, {}, {"structured_output": False}, {"structured_output": "yes"}):
        assert default_method(profile) == "function_calling"


def test_responses_protocol_leaves_agents_alone() -> None:
    # An agent named after its model is still an agent: effort and strict pass through.
    tools = [{"type": "function", "function": {"name": "f", "parameters": {}, "strict": True}}]
    out = apply({"reasoning_effort": "high", "tools": tools}, "claude", "responses")
    assert out == {"reasoning": {"effort": "high"}, "tools": tools}


@pytest.mark.parametrize(
    ("endpoint", "refused"),
    [
        ("databricks-claude-sonnet-5-5", True),
        ("system.ai.claude-haiku-5-5", True),
        ("databricks-claude-fable-5-1", True),
        ("databricks-claude-sonnet-4-5", False),
        ("my-claude-sonnet-5-5", False),  # not a Foundation Model API name: not documented
    ],
)
def test_response_format_on_claude_models_that_refuse_it(endpoint, refused) -> None:
    params = {"response_format": {"type": "json_object"}}
    if not refused:
        assert apply_family_rules(params, family="claude", protocol="chat", endpoint=endpoint)
        return
    with pytest.raises(ModelRuleError, match=r"response_format .* refused .*HTTP 400"):
        apply_family_rules(params, family="claude", protocol="chat", endpoint=endpoint)
