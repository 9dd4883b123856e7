"""Approval turns as LangGraph interrupts: ``AgentEndpoint.as_node()`` and ``as_tool()``.

Real LangGraph graphs with a checkpointer (``InMemorySaver``) run against the local endpoint,
which plays an agent that asks for approval (``mcp_approval_request``) before dropping a table
and answers according to the ``mcp_approval_response`` it gets. LangGraph resumes a node by
running it again, so every test counts the requests the agent received: one first turn, one
approval turn per decision, never a repeat.
"""

from __future__ import annotations

import operator
from collections.abc import Iterator
from typing import Annotated, Any, TypedDict

import pytest
from langchain.agents import create_agent
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.prebuilt import ToolNode
from langgraph.types import Command

from langchain_dbx_serving import AgentEndpoint, ApprovalRequest, approval_requests
from langchain_dbx_serving.testing import FunctionBackend, LocalEndpoint, RawReply
from langchain_dbx_serving.testing.backends import BackendRequest


def _request_item(n: int) -> dict[str, Any]:
    return {
        "type": "mcp_approval_request",
        "id": f"mcpr_{n}",
        "name": "drop_table",
        "arguments": f'{{"table": "staging.t{n}"}}',
        "server_label": "warehouse",
    }


def _message(text: str) -> dict[str, Any]:
    return {
        "type": "message",
        "id": "msg_1",
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


def _agent(rounds: int) -> Any:
    """An agent asking ``rounds`` approvals one after the other, then reporting the verdicts."""

    def reply(request: BackendRequest) -> RawReply:
        items = request.body["input"]
        answers = [i for i in items if i.get("type") == "mcp_approval_response"]
        if len(answers) < rounds:
            output = [_request_item(len(answers) + 1)]
        else:
            verdicts = ["dropped" if a["approve"] else f"kept ({a.get('reason')})" for a in answers]
            output = [_message(", ".join(verdicts))]
        return RawReply(body={"object": "response", "id": f"resp_{len(answers)}", "output": output})

    return reply


@pytest.fixture
def ep() -> Iterator[LocalEndpoint]:
    with LocalEndpoint(FunctionBackend(_agent(1))) as endpoint:
        yield endpoint


@pytest.fixture
def ep2() -> Iterator[LocalEndpoint]:
    with LocalEndpoint(FunctionBackend(_agent(2))) as endpoint:
        yield endpoint


class State(TypedDict):
    messages: Annotated[list, operator.add]


def _agent_for(ep: LocalEndpoint) -> AgentEndpoint:
    return AgentEndpoint("agent", host=ep.host, token=ep.token)


def _node_graph(ep: LocalEndpoint) -> Any:
    builder = StateGraph(State)
    builder.add_node("agent", _agent_for(ep).as_node())
    builder.add_edge(START, "agent")
    builder.add_edge("agent", END)
    return builder.compile(checkpointer=InMemorySaver())


async def _run(graph: Any, value: Any, config: Any, asynchronous: bool) -> dict[str, Any]:
    if asynchronous:
        return await graph.ainvoke(value, config)
    return graph.invoke(value, config)


def _approval_answers(ep: LocalEndpoint) -> list[dict[str, Any]]:
    return [i for i in ep.last_request.body["input"] if i.get("type") == "mcp_approval_response"]


@pytest.mark.parametrize("asynchronous", [False, True])
async def test_node_interrupts_and_resumes_with_one_request_per_turn(
    ep: LocalEndpoint, asynchronous: bool
) -> None:
    graph, config = _node_graph(ep), {"configurable": {"thread_id": "t1"}}
    state = await _run(graph, {"messages": [HumanMessage("drop it")]}, config, asynchronous)

    (interrupt,) = state["__interrupt__"]
    assert interrupt.value["type"] == "mcp_approval" and interrupt.value["endpoint"] == "agent"
    assert approval_requests(interrupt) == [ApprovalRequest.from_item(_request_item(1))]
    assert approval_requests(interrupt.value)[0].arguments == {"table": "staging.t1"}
    assert len(ep.requests) == 1  # the first turn, once

    state = await _run(graph, Command(resume=True), config, asynchronous)
    assert len(ep.requests) == 2  # the re-run node did not ask the agent again
    assert "__interrupt__" not in state
    human, asked, answer, final = state["messages"]
    assert isinstance(human, HumanMessage) and isinstance(final, AIMessage)
    assert [r.id for r in approval_requests(asked)] == ["mcpr_1"]
    assert final.text == "dropped"
    sent = ep.last_request.body["input"]
    assert sent[0] == {"role": "user", "content": "drop it"}
    assert sent[1] == _request_item(1)
    assert sent[2] == {
        "type": "mcp_approval_response",
        "approval_request_id": "mcpr_1",
        "approve": True,
    }
    assert answer.content == [{"type": "non_standard", "value": sent[2]}]

    # The next turn of the conversation carries the whole approval exchange once.
    state = await _run(graph, {"messages": [HumanMessage("thanks")]}, config, asynchronous)
    assert len(ep.requests) == 3 and state["messages"][-1].text == "dropped"
    assert [i.get("type") or i["role"] for i in ep.last_request.body["input"]] == [
        "user",
        "mcp_approval_request",
        "mcp_approval_response",
        "message",
        "user",
    ]


@pytest.mark.parametrize("asynchronous", [False, True])
async def test_two_approval_rounds_each_turn_sent_once(
    ep2: LocalEndpoint, asynchronous: bool
) -> None:
    graph, config = _node_graph(ep2), {"configurable": {"thread_id": "t2"}}
    state = await _run(graph, {"messages": [HumanMessage("drop both")]}, config, asynchronous)
    assert [r.id for r in approval_requests(state["__interrupt__"][0])] == ["mcpr_1"]
    state = await _run(graph, Command(resume={"mcpr_1": True}), config, asynchronous)
    assert [r.id for r in approval_requests(state["__interrupt__"][0])] == ["mcpr_2"]
    assert len(ep2.requests) == 2
    decision = {"mcpr_2": {"approve": False, "reason": "audit first"}}
    state = await _run(graph, Command(resume=decision), config, asynchronous)
    assert len(ep2.requests) == 3  # first turn + two approval turns, none repeated
    assert state["messages"][-1].text == "dropped, kept (audit first)"
    assert _approval_answers(ep2)[-1] == {
        "type": "mcp_approval_response",
        "approval_request_id": "mcpr_2",
        "approve": False,
        "reason": "audit first",
    }
    assert len(state["messages"]) == 6  # human, (request, answer) x 2, final


def test_the_answer_items_themselves_are_a_decision(ep: LocalEndpoint) -> None:
    graph, config = _node_graph(ep), {"configurable": {"thread_id": "t3"}}
    state = graph.invoke({"messages": [HumanMessage("drop it")]}, config)
    (request,) = approval_requests(state["__interrupt__"][0])
    state = graph.invoke(Command(resume=[request.deny("not today")]), config)
    assert state["messages"][-1].text == "kept (not today)"
    assert len(ep.requests) == 2


def test_a_careless_decision_asks_again_and_sends_nothing(ep: LocalEndpoint) -> None:
    graph, config = _node_graph(ep), {"configurable": {"thread_id": "t4"}}
    graph.invoke({"messages": [HumanMessage("drop it")]}, config)
    state = graph.invoke(Command(resume={"other": True}), config)
    (interrupt,) = state["__interrupt__"]
    assert "no answer for approval request 'mcpr_1'" in interrupt.value["error"]
    assert [r.id for r in approval_requests(interrupt)] == ["mcpr_1"]
    state = graph.invoke(Command(resume="yes"), config)
    assert "True/False" in state["__interrupt__"][0].value["error"]
    assert len(ep.requests) == 1  # nothing sent for a decision that cannot be used
    state = graph.invoke(Command(resume=False), config)  # the thread is not stuck
    assert state["messages"][-1].text == "kept (None)"
    assert len(ep.requests) == 2


def test_outside_a_graph_the_node_returns_the_request_reply(ep: LocalEndpoint) -> None:
    update = _agent_for(ep).as_node().invoke({"messages": [HumanMessage("drop it")]})
    (message,) = update["messages"]
    assert [r.id for r in approval_requests(message)] == ["mcpr_1"]
    assert len(ep.requests) == 1


def _tool_graph(ep: LocalEndpoint) -> Any:
    tool = _agent_for(ep).as_tool(name="warehouse", description="Manages tables.")
    builder = StateGraph(State)
    builder.add_node("tools", ToolNode([tool]))
    builder.add_edge(START, "tools")
    builder.add_edge("tools", END)
    return builder.compile(checkpointer=InMemorySaver())


@pytest.mark.parametrize("asynchronous", [False, True])
async def test_sub_agent_tool_interrupts_and_resumes(ep: LocalEndpoint, asynchronous: bool) -> None:
    graph, config = _tool_graph(ep), {"configurable": {"thread_id": "t5"}}
    call = {"id": "c1", "name": "warehouse", "args": {"request": "drop staging.t1"}}
    start = {"messages": [AIMessage("", tool_calls=[call])]}
    state = await _run(graph, start, config, asynchronous)
    (interrupt,) = state["__interrupt__"]
    assert interrupt.value["endpoint"] == "agent"
    assert [r.name for r in approval_requests(interrupt)] == ["drop_table"]
    assert len(ep.requests) == 1

    state = await _run(graph, Command(resume={"mcpr_1": False}), config, asynchronous)
    assert len(ep.requests) == 2
    message = state["messages"][-1]
    assert isinstance(message, ToolMessage) and message.tool_call_id == "c1"
    assert message.content == "kept (None)"
    assert message.artifact.text == "kept (None)"
    sent = ep.last_request.body["input"]
    assert sent[0] == {"role": "user", "content": "drop staging.t1"}
    assert sent[1:] == [
        _request_item(1),
        {"type": "mcp_approval_response", "approval_request_id": "mcpr_1", "approve": False},
    ]


class _TwoCalls(BaseChatModel):
    """A supervisor model: asks both sub-agents at once, then reports what they said."""

    @property
    def _llm_type(self) -> str:
        return "two-calls"

    def bind_tools(self, tools: Any, **kwargs: Any) -> _TwoCalls:  # type: ignore[override]
        return self

    def _generate(self, messages: Any, stop: Any = None, run_manager: Any = None, **kw: Any) -> Any:
        results = [m.content for m in messages if isinstance(m, ToolMessage)]
        if results:
            message = AIMessage("done: " + " | ".join(results))
        else:
            calls = [
                {"id": "c1", "name": "north", "args": {"request": "drop north"}},
                {"id": "c2", "name": "south", "args": {"request": "drop south"}},
            ]
            message = AIMessage("", tool_calls=calls)
        return ChatResult(generations=[ChatGeneration(message=message)])


@pytest.mark.parametrize("asynchronous", [False, True])
async def test_a_supervisor_resumes_two_sub_agents_each_asked_once_per_turn(
    asynchronous: bool,
) -> None:
    with (
        LocalEndpoint(FunctionBackend(_agent(1))) as north,
        LocalEndpoint(FunctionBackend(_agent(1))) as south,
    ):
        tools = [
            AgentEndpoint("north", host=north.host, token=north.token).as_tool(name="north"),
            AgentEndpoint("south", host=south.host, token=south.token).as_tool(name="south"),
        ]
        supervisor = create_agent(_TwoCalls(), tools=tools, checkpointer=InMemorySaver())
        config = {"configurable": {"thread_id": "t6"}}
        state = await _run(supervisor, {"messages": [("user", "clean up")]}, config, asynchronous)
        interrupts = state["__interrupt__"]
        assert sorted(i.value["endpoint"] for i in interrupts) == ["north", "south"]
        decisions = {i.id: i.value["endpoint"] == "north" for i in interrupts}
        state = await _run(supervisor, Command(resume=decisions), config, asynchronous)
        assert state["messages"][-1].text == "done: dropped | kept (None)"
        assert (len(north.requests), len(south.requests)) == (2, 2)


def test_a_reply_asking_nothing_leaves_the_graph_as_before(ep: LocalEndpoint) -> None:
    graph, config = _node_graph(ep), {"configurable": {"thread_id": "t7"}}
    graph.invoke({"messages": [HumanMessage("drop it")]}, config)
    graph.invoke(Command(resume=True), config)
    updates = list(
        graph.stream({"messages": [HumanMessage("thanks")]}, config, stream_mode="updates")
    )
    assert [list(update) for update in updates] == [["agent"]]  # no task of ours in the updates
    assert updates[0]["agent"]["messages"][0].text == "dropped"
    assert len(ep.requests) == 3
