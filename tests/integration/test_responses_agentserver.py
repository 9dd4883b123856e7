"""ChatDatabricksResponses against MLflow's real AgentServer (``tests.support.agent_app``).

One server per session runs in a subprocess (the ``agent_server`` fixture); each test drives the
test agent through its input (``lookup``, ``think``, ``explode``, ``call <name>``, ...) and
checks what a LangChain user sees: text, tool calls, server blocks, metadata and errors.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import pytest
from langchain_core.messages import (
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    ToolMessage,
)
from langchain_core.runnables import Runnable
from langchain_core.tools import tool

from langchain_dbx_serving import AgentError, ChatDatabricksResponses, ServerError
from tests.support.calls import aggregate, ask

if TYPE_CHECKING:
    from tests.support.agentserver import AgentServerProcess

MODES = ["invoke", "ainvoke", "stream", "astream"]
TRACE_ID = re.compile(r"tr-[0-9a-f]{32}")
# What tests/support/agent_app.py answers (kept literal: a change there should show up here).
ERROR_MESSAGE = "agent exploded on purpose"
AGENT_USAGE = {"input_tokens": 5, "output_tokens": 3, "total_tokens": 8}


async def chunks_of(llm: Runnable, prompt: Any, mode: str) -> list[AIMessageChunk]:
    if mode == "stream":
        return list(llm.stream(prompt))
    return [chunk async for chunk in llm.astream(prompt)]


def blocks(message: BaseMessage, kind: str) -> list[dict[str, Any]]:
    return [b for b in message.content if isinstance(b, dict) and b.get("type") == kind]


@pytest.fixture
def agent(agent_server: AgentServerProcess) -> ChatDatabricksResponses:
    return ChatDatabricksResponses(
        endpoint="agent", base_url=agent_server.url, token="unused-local-token"
    )


@tool
def get_weather(query: str) -> str:
    """Get the weather for a place."""
    return f"sunny ({query})"


@tool
def lookup(query: str) -> str:
    """Look something up (a client tool that shares its name with the agent's own)."""
    return "client lookup"


# -- answers ------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
async def test_answer_text(agent, mode: str) -> None:
    answer = await ask(agent, "hello there big world", mode)
    assert answer.text == "hello there big world"
    assert answer.tool_calls == []
    assert [item["type"] for item in answer.response_metadata["output"]] == ["message"]
    assert "trace_id" not in answer.response_metadata
    assert "custom_outputs" not in answer.response_metadata


@pytest.mark.parametrize("mode", ["stream", "astream"])
async def test_stream_delivers_text_word_by_word(agent, mode: str) -> None:
    chunks = await chunks_of(agent, "hello there big world", mode)
    assert [c.text for c in chunks if c.text] == ["hello ", "there ", "big ", "world"]
    assert aggregate(chunks).text == "hello there big world"


async def test_multi_part_user_text_reaches_the_agent(agent) -> None:
    # The agent reads only input_text parts: text blocks must be sent as input_text.
    question = HumanMessage([{"type": "text", "text": "hello "}, {"type": "text", "text": "there"}])
    assert agent.invoke([question]).text == "hello there"


async def test_assistant_history_is_accepted(agent) -> None:
    first = agent.invoke("hi")
    assert agent.invoke([HumanMessage("hi"), first, HumanMessage("again")]).text == "again"


@pytest.mark.parametrize("mode", MODES)
async def test_usage_of_an_openai_style_lifecycle(agent, mode: str) -> None:
    answer = await ask(agent, "lifecycle please", mode)
    assert answer.text == "lifecycle please"
    assert answer.usage_metadata == AGENT_USAGE


# -- custom inputs and traces -------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
async def test_custom_inputs_come_back_as_custom_outputs(
    agent_server: AgentServerProcess, mode: str
) -> None:
    llm = ChatDatabricksResponses(
        endpoint="agent",
        base_url=agent_server.url,
        token="unused-local-token",
        custom_inputs={"team": "support", "user": "bob"},
    )
    answer = await ask(llm, "hi", mode, custom_inputs={"user": "ana"})
    assert answer.text == "hi"
    assert answer.response_metadata["custom_outputs"] == {"team": "support", "user": "ana"}


@pytest.mark.parametrize("mode", MODES)
async def test_return_trace_gives_the_id_of_a_stored_trace(
    agent_server: AgentServerProcess, mode: str
) -> None:
    llm = ChatDatabricksResponses(
        endpoint="agent", base_url=agent_server.url, token="unused-local-token", return_trace=True
    )
    answer = await ask(llm, "trace me", mode)
    assert answer.text == "trace me"
    trace_id = answer.response_metadata["trace_id"]
    assert TRACE_ID.fullmatch(trace_id)
    assert trace_id in {path.name for path in agent_server.trace_dirs()}


# -- tools --------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
async def test_tool_loop_end_to_end(agent, mode: str) -> None:
    llm = agent.bind_tools([get_weather])
    history: list[BaseMessage] = [HumanMessage("weather in Paris?")]
    first = await ask(llm, history, mode)
    assert [(c["name"], c["args"], c["id"]) for c in first.tool_calls] == [
        ("get_weather", {"query": "weather in Paris?"}, "call_1")
    ]
    assert blocks(first, "server_tool_call") == []
    history.append(first)
    for call in first.tool_calls:
        history.append(ToolMessage(get_weather.invoke(call["args"]), tool_call_id=call["id"]))
    final = await ask(llm, history, mode)
    assert final.text == "get_weather returned: sunny (weather in Paris?)"
    assert final.tool_calls == []


@pytest.mark.parametrize("mode", MODES)
async def test_call_of_a_named_bound_tool_is_a_tool_call(agent, mode: str) -> None:
    llm = agent.bind_tools([lookup, get_weather])
    answer = await ask(llm, "call get_weather for Oslo", mode)
    assert [(c["name"], c["id"]) for c in answer.tool_calls] == [("get_weather", "call_1")]
    assert answer.tool_calls[0]["args"] == {"query": "call get_weather for Oslo"}


@pytest.mark.parametrize("mode", MODES)
async def test_call_of_a_tool_the_caller_did_not_bind_is_the_agents_own(agent, mode: str) -> None:
    answer = await ask(agent, "call get_weather for Oslo", mode)
    assert answer.tool_calls == []
    (call,) = blocks(answer, "server_tool_call")
    assert (call["name"], call["id"]) == ("get_weather", "call_1")


@pytest.mark.parametrize("mode", MODES)
async def test_agents_internal_tool_turn_is_server_blocks(agent, mode: str) -> None:
    # Binding a client tool of the same name changes nothing: the agent answered the call.
    llm = agent.bind_tools([lookup])
    answer = await ask(llm, "lookup refunds", mode)
    assert answer.text == "Found: result for lookup refunds"
    assert answer.tool_calls == [] and answer.invalid_tool_calls == []
    (call,) = blocks(answer, "server_tool_call")
    assert (call["id"], call["name"], call["args"]) == (
        "call_lookup_1",
        "lookup",
        {"query": "lookup refunds"},
    )
    (result,) = blocks(answer, "server_tool_result")
    assert (result["tool_call_id"], result["output"]) == (
        "call_lookup_1",
        "result for lookup refunds",
    )


async def test_internal_tool_turn_goes_back_as_valid_history(agent) -> None:
    first = agent.invoke("lookup refunds")
    assert agent.invoke([HumanMessage("lookup refunds"), first, HumanMessage("thanks")]).text == (
        "thanks"
    )


# -- reasoning ----------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
async def test_reasoning_stays_out_of_text(agent, mode: str) -> None:
    answer = await ask(agent, "think about it", mode)
    assert answer.text == "think about it"
    assert [b["reasoning"] for b in blocks(answer, "reasoning")] == ["The user wrote 3 words."]


# -- failures -----------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["stream", "astream"])
async def test_exception_mid_stream_is_an_agent_error_after_the_partial_text(
    agent, mode: str
) -> None:
    received: list[str] = []
    with pytest.raises(AgentError) as info:
        if mode == "stream":
            for chunk in agent.stream("please explode"):
                received.append(chunk.text)
        else:
            async for chunk in agent.astream("please explode"):
                received.append(chunk.text)
    assert ERROR_MESSAGE in str(info.value)
    assert "".join(received) == "Partial answer"


@pytest.mark.parametrize("mode", ["invoke", "ainvoke"])
async def test_exception_on_invoke_is_a_server_error_with_the_detail(agent, mode: str) -> None:
    with pytest.raises(ServerError) as info:
        await ask(agent, "please explode", mode)
    assert info.value.status_code == 500
    assert ERROR_MESSAGE in str(info.value)
    assert info.value.endpoint == "agent"
