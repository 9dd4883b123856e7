"""Model families over loopback: the reasoning knob, the rules, and reasoning round trips.

The local endpoint serves family-named endpoints and enforces their rules (thinking budgets,
signed thinking replayed in Claude tool loops, Gemini thought signatures on tool-call turns),
so every test here fails when the client sends what the real service would refuse.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool

from langchain_dbx_serving import (
    BadRequestError,
    ChatDatabricksResponses,
    ChatDatabricksServing,
    ModelRuleError,
)
from langchain_dbx_serving.protocols.chat_completions import encode_request
from langchain_dbx_serving.testing import LocalEndpoint, Quirks, Reply, ScriptedBackend, ToolCall
from tests.support.calls import MODES, ask

CLAUDE = "databricks-claude-sonnet-4-5"
GEMINI3 = "databricks-gemini-3-pro"
GEMINI25 = "databricks-gemini-2-5-flash"
GPT_OSS = "databricks-gpt-oss-120b"
GPT5 = "databricks-gpt-5-2"
NAMES = (CLAUDE, GEMINI3, GEMINI25, GPT_OSS, GPT5)


@pytest.fixture(scope="module")
def _families_ep() -> Iterator[LocalEndpoint]:
    with LocalEndpoint({name: ScriptedBackend() for name in NAMES}) as ep:
        yield ep


@pytest.fixture
def ep(_families_ep: LocalEndpoint) -> LocalEndpoint:
    for name in NAMES:
        backend = _families_ep.backend(name)
        assert isinstance(backend, ScriptedBackend)
        backend.clear()
    _families_ep.requests.clear()
    return _families_ep


def chat(ep: LocalEndpoint, endpoint: str, **fields: Any) -> ChatDatabricksServing:
    return ChatDatabricksServing(endpoint=endpoint, host=ep.host, token=ep.token, **fields)


def queue(ep: LocalEndpoint, name: str, *replies: Any) -> None:
    backend = ep.backend(name)
    assert isinstance(backend, ScriptedBackend)
    backend.add(*replies)


@tool
def lookup(city: str) -> str:
    """Look up the weather of a city."""
    return {"Paris": "18C", "Oslo": "4C"}.get(city, "unknown")


# -- one knob -----------------------------------------------------------------------------------
def test_budget_becomes_claude_thinking(ep) -> None:
    queue(ep, CLAUDE, Reply.text("Blue.", reasoning="Rayleigh", reasoning_signature="s1"))
    llm = chat(ep, CLAUDE, max_tokens=4096, reasoning={"budget_tokens": 2048})
    reply = llm.invoke("Why is the sky blue?")
    assert reply.text == "Blue."
    body = ep.last_request.body
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert "reasoning" not in body and "reasoning_effort" not in body


@pytest.mark.parametrize("name", [GEMINI3, GEMINI25, GPT_OSS])
def test_effort_becomes_reasoning_effort(ep, name: str) -> None:
    queue(ep, name, Reply.text("ok"))
    chat(ep, name).invoke("hi", reasoning={"effort": "high"})
    body = ep.last_request.body
    assert body["reasoning_effort"] == "high"
    assert "reasoning" not in body and "thinking" not in body


@pytest.mark.parametrize(
    ("name", "fields", "rule"),
    [
        (CLAUDE, {"max_tokens": 4096, "reasoning": {"budget_tokens": 512}}, "minimum of 1024"),
        (
            CLAUDE,
            {"max_tokens": 2048, "reasoning": {"budget_tokens": 2048}},
            "less than max_tokens",
        ),
        (CLAUDE, {"reasoning": {"budget_tokens": 2048}}, "less than max_tokens"),
        (
            CLAUDE,
            {"max_tokens": 4096, "reasoning": {"budget_tokens": 2048}, "temperature": 0.2},
            "temperature",
        ),
        (CLAUDE, {"reasoning_effort": "high"}, "thinking budget, not an effort level"),
        (GEMINI3, {"reasoning": {"budget_tokens": 2048}}, "no token-budget field"),
        (GPT_OSS, {"reasoning_effort": "minimal"}, "low, medium, high"),
        (GPT_OSS, {"reasoning": {"effort": "low", "summary": "auto"}}, "responses-protocol"),
        (GPT_OSS, {"reasoning": {"effrot": "low"}}, "unknown reasoning keys"),
    ],
)
def test_invalid_combinations_raise_before_sending(ep, name, fields, rule) -> None:
    llm = chat(ep, name, **fields)
    with pytest.raises(ModelRuleError, match=rule) as caught:
        llm.invoke("hi")
    assert "nothing was sent" in str(caught.value)
    assert ep.requests == []


def test_forced_tool_choice_with_thinking_is_refused(ep) -> None:
    llm = chat(ep, CLAUDE, max_tokens=4096, reasoning={"budget_tokens": 2048})
    with pytest.raises(ModelRuleError, match="forces tool use"):
        llm.bind_tools([lookup], tool_choice="lookup").invoke("weather in Paris?")
    assert ep.requests == []


def test_family_is_overridable(ep) -> None:
    # An endpoint whose name hides its family: told it serves Claude, the knob maps.
    queue(ep, GPT_OSS, Reply.text("ok"))
    llm = chat(ep, GPT_OSS, model_family="claude", max_tokens=4096)
    llm.invoke("hi", reasoning={"budget_tokens": 1024})
    assert ep.last_request.body["thinking"]["budget_tokens"] == 1024
    # "other" (unknown) maps only what every family shares: a budget has no field there.
    with pytest.raises(ModelRuleError, match="no token-budget field"):
        chat(ep, CLAUDE, model_family="other").invoke("hi", reasoning={"budget_tokens": 2048})


def test_local_endpoint_rejects_a_bad_budget_sent_raw(ep) -> None:
    # model_family="other" bypasses the client's checks; the endpoint still refuses.
    llm = chat(ep, CLAUDE, model_family="other", max_tokens=1000)
    with pytest.raises(BadRequestError, match="less than max_tokens"):
        llm.invoke("hi", extra_body={"thinking": {"type": "enabled", "budget_tokens": 2000}})


def test_strict_is_stripped_for_non_openai_families(ep) -> None:
    queue(ep, CLAUDE, Reply.text("ok"))
    queue(ep, GPT_OSS, Reply.text("ok"))
    chat(ep, CLAUDE).bind_tools([lookup], strict=True).invoke("hi")
    assert "strict" not in ep.last_request.body["tools"][0]["function"]
    chat(ep, GPT_OSS).bind_tools([lookup], strict=True).invoke("hi")
    assert ep.last_request.body["tools"][0]["function"]["strict"] is True


# -- reasoning round trips in tool loops ---------------------------------------------------------
def claude_turns() -> list[Reply]:
    return [
        Reply.text(
            reasoning=["Need the ", "weather."],
            reasoning_signature="sig-turn-1",
            tool_calls=[ToolCall("lookup", {"city": "Paris"}, id="call_1")],
        ),
        Reply.text(
            reasoning="Now Oslo.",
            reasoning_signature="sig-turn-2",
            tool_calls=[ToolCall("lookup", {"city": "Oslo"}, id="call_2")],
        ),
        Reply.text("Paris 18C, Oslo 4C.", reasoning="Done.", reasoning_signature="sig-turn-3"),
    ]


def gemini_turns() -> list[Reply]:
    return [
        Reply.text(
            tool_calls=[
                ToolCall("lookup", {"city": "Paris"}, id="g1", thought_signature="ts-1"),
                ToolCall("lookup", {"city": "Oslo"}, id="g2"),  # parallel: signed first only
            ]
        ),
        Reply.text(
            tool_calls=[ToolCall("lookup", {"city": "Rome"}, id="g3", thought_signature="ts-2")]
        ),
        Reply.text("Paris 18C, Oslo 4C, Rome unknown."),
    ]


async def run_tool_loop(llm: Any, mode: str, turns: int = 3) -> list[BaseMessage]:
    messages: list[BaseMessage] = [HumanMessage("Weather in Paris and Oslo?")]
    for _ in range(turns):
        reply = await ask(llm, messages, mode)
        messages.append(AIMessage(**_as_message_fields(reply)))
        for call in reply.tool_calls:
            messages.append(ToolMessage(lookup.invoke(call["args"]), tool_call_id=call["id"]))
        if not reply.tool_calls:
            break
    return messages


def _as_message_fields(reply: AIMessage) -> dict[str, Any]:
    # What an agent keeps of a (possibly streamed) reply: content, tool calls, kwargs, id.
    return {
        "content": reply.content,
        "tool_calls": reply.tool_calls,
        "additional_kwargs": reply.additional_kwargs,
        "id": reply.id,
    }


@pytest.mark.parametrize("mode", MODES)
async def test_claude_thinking_tool_loop_runs_three_turns(ep, mode: str) -> None:
    queue(ep, CLAUDE, *claude_turns())
    llm = chat(ep, CLAUDE, max_tokens=8192, reasoning={"budget_tokens": 4096}).bind_tools([lookup])
    messages = await run_tool_loop(llm, mode)
    assert messages[-1].text == "Paris 18C, Oslo 4C."
    assert len(ep.requests) == 3
    second, third = ep.requests[1].body["messages"], ep.requests[2].body["messages"]
    assert second[1]["content"][0] == {
        "type": "reasoning",
        "summary": [
            {"type": "summary_text", "text": "Need the weather.", "signature": "sig-turn-1"}
        ],
    }
    assert third[3]["content"][0]["summary"][0]["signature"] == "sig-turn-2"
    # The reasoning never leaks into the answer text.
    assert messages[-1].text == "Paris 18C, Oslo 4C."


@pytest.mark.parametrize("mode", MODES)
async def test_gemini_thought_signatures_tool_loop_runs_three_turns(ep, mode: str) -> None:
    queue(ep, GEMINI3, *gemini_turns())
    llm = chat(ep, GEMINI3).bind_tools([lookup])
    messages = await run_tool_loop(llm, mode)
    assert messages[-1].text == "Paris 18C, Oslo 4C, Rome unknown."
    assert len(ep.requests) == 3
    third = ep.requests[2].body["messages"]
    assert third[1]["tool_calls"][0]["thought_signature"] == "ts-1"
    assert "thought_signature" not in third[1]["tool_calls"][1]
    assert third[4]["tool_calls"][0]["thought_signature"] == "ts-2"


def test_claude_loop_without_its_thinking_is_refused(ep) -> None:
    queue(ep, CLAUDE, claude_turns()[0])
    llm = chat(ep, CLAUDE, max_tokens=8192, reasoning={"budget_tokens": 4096}).bind_tools([lookup])
    first = llm.invoke("Weather in Paris?")
    stripped = AIMessage(content=first.text, tool_calls=first.tool_calls)
    with pytest.raises(BadRequestError, match="must start with a thinking block"):
        llm.invoke(
            [HumanMessage("Weather in Paris?"), stripped, ToolMessage("18C", tool_call_id="call_1")]
        )


def test_claude_loop_with_edited_thinking_is_refused(ep) -> None:
    queue(ep, CLAUDE, claude_turns()[0])
    llm = chat(ep, CLAUDE, max_tokens=8192, reasoning={"budget_tokens": 4096}).bind_tools([lookup])
    first = llm.invoke("Weather in Paris?")
    edited = [
        {**block, "reasoning": ""} if block.get("type") == "reasoning" else block
        for block in first.content
        if isinstance(block, dict)
    ]
    history = [
        HumanMessage("Weather in Paris?"),
        AIMessage(content=edited, tool_calls=first.tool_calls),
        ToolMessage("18C", tool_call_id="call_1"),
    ]
    with pytest.raises(BadRequestError, match="Invalid `signature`"):
        llm.invoke(history)


def test_a_resumed_session_with_a_hollow_signed_block_goes_on(ep) -> None:
    # A stored session whose earlier thinking lost its text (but kept the signature): replayed
    # as is, Claude refuses the whole history; the client leaves it out of earlier turns.
    queue(ep, CLAUDE, Reply.text("Still 18C.", reasoning="Same.", reasoning_signature="s9"))
    hollow = AIMessage(
        content=[
            {"type": "reasoning", "reasoning": "", "extras": {"signature": "never-issued"}},
            {"type": "text", "text": "18C in Paris."},
        ]
    )
    llm = chat(ep, CLAUDE, max_tokens=8192, reasoning={"budget_tokens": 4096})
    reply = llm.invoke([HumanMessage("Paris?"), hollow, HumanMessage("And now?")])
    assert reply.text == "Still 18C."
    assert ep.last_request.body["messages"][1] == {"role": "assistant", "content": "18C in Paris."}


def test_gemini_loop_without_thought_signatures_is_refused(ep) -> None:
    queue(ep, GEMINI3, gemini_turns()[0])
    llm = chat(ep, GEMINI3).bind_tools([lookup])
    first = llm.invoke("Weather?")
    assert first.additional_kwargs["thought_signatures"] == {"g1": "ts-1"}
    unsigned = AIMessage(content="", tool_calls=first.tool_calls)
    history = [
        HumanMessage("Weather?"),
        unsigned,
        ToolMessage("18C", tool_call_id="g1"),
        ToolMessage("4C", tool_call_id="g2"),
    ]
    with pytest.raises(BadRequestError, match="missing a `thought_signature`"):
        llm.invoke(history)


# -- limits ----------------------------------------------------------------------------------------
LONG = "msg_" + "x" * 90


def responses_history() -> list[BaseMessage]:
    return [
        HumanMessage("Weather?"),
        AIMessage(
            content=[
                {"type": "text", "text": "Checking.", "id": LONG},
                {"type": "text", "text": " Also this.", "id": LONG + "y"},
            ],
            tool_calls=[{"name": "lookup", "args": {"city": "Paris"}, "id": "call_1"}],
            id="lc_run--0b5a3f7e-6c1d-4d8e-9f3a-2b7c1e4d5a6f",
        ),
        ToolMessage("18C", tool_call_id="call_1"),
        AIMessage("It is 18C.", id="run-7f1c"),
    ]


@pytest.mark.parametrize("mode", MODES)
async def test_responses_item_ids_are_normalised_on_echo(ep, mode: str) -> None:
    queue(ep, GPT5, Reply.text("Sunny."))
    llm = ChatDatabricksResponses(endpoint=GPT5, host=ep.host, token=ep.token)
    reply = await ask(llm, [*responses_history(), HumanMessage("And Oslo?")], mode)
    assert reply.text == "Sunny."
    items = ep.last_request.body["input"]
    ids = [item["id"] for item in items if "id" in item]
    assert all(len(i) <= 64 for i in ids)
    assert len(set(ids)) == len(ids)  # two long ids sharing a beginning stay distinct
    messages = [i for i in items if i.get("type") == "message"]
    assert all(m["id"].startswith("msg_") for m in messages)
    assert messages[-1]["id"] == "msg_run-7f1c"


def test_local_endpoint_refuses_foreign_and_long_item_ids(ep) -> None:
    llm = ChatDatabricksResponses(
        endpoint=GPT5, host=ep.host, token=ep.token, model_family="other"
    )  # "other": ids sent unchanged
    with pytest.raises(BadRequestError, match="maximum length 64"):
        llm.invoke(responses_history())
    with pytest.raises(BadRequestError, match="begins with 'msg_'"):
        llm.invoke([HumanMessage("q"), AIMessage("a", id="run-1"), HumanMessage("q2")])


@pytest.mark.parametrize("mode", MODES)
async def test_a_missing_finish_reason_is_inferred(ep, mode: str) -> None:
    quirks = Quirks(no_finish_reason_on_stop=True)
    queue(ep, GPT5, Reply.text(["Thought ", "done."], reasoning="r", quirks=quirks))
    reply = await ask(chat(ep, GPT5), "hi", mode)
    assert reply.text == "Thought done."
    assert reply.response_metadata["finish_reason"] == "stop"


@pytest.mark.parametrize("mode", MODES)
async def test_parallel_tool_calls_are_split_for_gpt_oss(ep, mode: str) -> None:
    parallel = [
        ToolCall("lookup", {"city": "Paris"}, id="p1"),
        ToolCall("lookup", {"city": "Oslo"}, id="p2"),
    ]
    queue(ep, GPT_OSS, Reply.text("Checking both.", tool_calls=parallel), Reply.text("Done."))
    llm = chat(ep, GPT_OSS).bind_tools([lookup])
    messages = await run_tool_loop(llm, mode, turns=2)
    assert messages[-1].text == "Done."
    sent = ep.last_request.body["messages"]
    assert [(m["role"], m.get("tool_call_id")) for m in sent] == [
        ("user", None),
        ("assistant", None),
        ("tool", "p1"),
        ("assistant", None),
        ("tool", "p2"),
    ]
    assert sent[1]["content"] == "Checking both." and sent[1]["tool_calls"][0]["id"] == "p1"
    assert sent[3]["tool_calls"][0]["id"] == "p2"
    # The history the caller keeps is untouched: one turn, two calls.
    assert len(messages[1].tool_calls) == 2


def test_local_endpoint_refuses_parallel_tool_calls_for_gpt_oss(ep) -> None:
    history = [
        HumanMessage("Weather?"),
        AIMessage(
            content="",
            tool_calls=[
                {"name": "lookup", "args": {"city": "Paris"}, "id": "p1"},
                {"name": "lookup", "args": {"city": "Oslo"}, "id": "p2"},
            ],
        ),
        ToolMessage("18C", tool_call_id="p1"),
        ToolMessage("4C", tool_call_id="p2"),
    ]
    unsplit = {"messages": encode_request(history, {}, stream=False)["messages"]}
    reply = httpx.post(
        ep.invocations_url(GPT_OSS), json=unsplit, headers={"Authorization": f"Bearer {ep.token}"}
    )
    assert reply.status_code == 400
    assert reply.json() == {
        "error_code": "BAD_REQUEST",
        "message": "Multiple tool calls are not supported.\n",
    }
    queue(ep, GPT_OSS, Reply.text("ok"))
    assert chat(ep, GPT_OSS).invoke(history).text == "ok"  # the client splits: accepted
