"""AgentEndpoint against a real MLflow AgentServer and the local endpoint: typed replies, events."""

from __future__ import annotations

import operator
from typing import Annotated, TypedDict

import pytest
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langchain_core.prompts import ChatPromptTemplate
from langgraph.graph import END, START, StateGraph

from langchain_dbx_serving import (
    AgentEndpoint,
    AgentError,
    AgentEvent,
    AgentResponse,
    ChatDatabricksResponses,
    ServerError,
)
from langchain_dbx_serving.testing import Reply, ToolStep
from tests.support.serving import queue


@pytest.fixture
def agent(agent_server) -> AgentEndpoint:
    return AgentEndpoint("agent", base_url=agent_server.url, token="unused-local-token")


def test_invoke_with_a_string(agent) -> None:
    reply = agent.invoke("hello agent")
    assert isinstance(reply, AgentResponse)
    assert reply.text == "hello agent"
    assert [item["type"] for item in reply.output] == ["message"]
    assert reply.tool_calls == []


def test_request_dict_with_raw_items_custom_inputs_and_trace(agent_server) -> None:
    agent = AgentEndpoint("agent", base_url=agent_server.url, token="t", return_trace=True)
    reply = agent.invoke(
        {
            "input": [{"role": "user", "content": [{"type": "input_text", "text": "lookup 42"}]}],
            "custom_inputs": {"tier": "gold"},
            "context": {"conversation_id": "c-1", "user_id": "u-1"},
        }
    )
    assert reply.text == "Found: result for lookup 42"
    assert reply.custom_outputs == {"tier": "gold"}
    assert [(c.name, c.args, c.output) for c in reply.tool_calls] == [
        ("lookup", {"query": "lookup 42"}, "result for lookup 42")
    ]
    assert [item["type"] for item in reply.output] == [
        "function_call",
        "function_call_output",
        "message",
    ]
    assert reply.trace_id and reply.trace_id.startswith("tr-")
    assert reply.to_message().tool_calls == []  # the agent's own calls are not the caller's


def test_stream_yields_typed_events_ending_with_the_response(agent) -> None:
    events = list(agent.stream("one two three"))
    assert all(isinstance(e, AgentEvent) for e in events)
    deltas = [e.delta for e in events if e.type == "text_delta"]
    assert len(deltas) == 3 and "".join(deltas) == "one two three"
    assert [e.item["type"] for e in events if e.type == "output_item"] == ["message"]
    assert events[-1].type == "response"
    assert events[-1].response.text == "one two three"


async def test_ainvoke_and_astream(agent) -> None:
    reply = await agent.ainvoke([HumanMessage("async hello")])
    assert reply.text == "async hello"
    events = [event async for event in agent.astream({"messages": [("user", "streamed")]})]
    assert events[-1].response.text == "streamed"


def test_agent_failure_mid_stream_is_an_agent_error(agent) -> None:
    deltas = []
    with pytest.raises(AgentError) as info:
        for event in agent.stream("please explode"):
            if event.type == "text_delta":
                deltas.append(event.delta)
    assert "agent exploded on purpose" in str(info.value)
    assert "".join(deltas) == "Partial answer"


def test_agent_failure_on_invoke_is_a_server_error_with_the_detail(agent) -> None:
    with pytest.raises(ServerError) as info:
        agent.invoke("explode now")
    assert "agent exploded on purpose" in str(info.value)


def test_usable_in_an_lcel_chain_and_batch(agent) -> None:
    prompt = ChatPromptTemplate.from_messages([("user", "say {word}")])
    chain = prompt | agent | (lambda reply: reply.text.upper())
    assert chain.invoke({"word": "yes"}) == "SAY YES"
    assert chain.batch([{"word": "a"}, {"word": "b"}]) == ["SAY A", "SAY B"]


def test_langgraph_graph_with_agent_nodes(serving) -> None:
    queue(serving, Reply.text("Billing says: refund approved."), name="responder")
    queue(serving, Reply.text("Support summary: customer refunded."), name="chat")

    class State(TypedDict):
        messages: Annotated[list[AnyMessage], operator.add]

    def agent_for(name: str) -> AgentEndpoint:
        return AgentEndpoint(name, host=serving.host, token=serving.token)

    graph = StateGraph(State)
    graph.add_node("billing", agent_for("responder").as_node())
    graph.add_node("support", agent_for("chat").as_node())
    graph.add_edge(START, "billing")
    graph.add_edge("billing", "support")
    graph.add_edge("support", END)
    result = graph.compile().invoke({"messages": [HumanMessage("refund order 42")]})
    assert [m.text for m in result["messages"]] == [
        "refund order 42",
        "Billing says: refund approved.",
        "Support summary: customer refunded.",
    ]
    assert isinstance(result["messages"][1], AIMessage)
    second_input = serving.requests[-1].body["input"]
    assert second_input[-1]["content"][0]["text"] == "Billing says: refund approved."


def test_agent_own_tool_steps_from_a_served_agent(serving) -> None:
    step = ToolStep("search_kb", {"q": "refund"}, "policy: 30 days")
    queue(serving, Reply.text("Refunds within 30 days.", steps=[step]), name="responder")
    agent = AgentEndpoint(
        chat=ChatDatabricksResponses(endpoint="responder", host=serving.host, token=serving.token)
    )
    reply = agent.invoke("refund policy?")
    assert reply.text == "Refunds within 30 days."
    assert [(c.name, c.args, c.output) for c in reply.tool_calls] == [
        ("search_kb", {"q": "refund"}, "policy: 30 days")
    ]


def test_constructor_needs_an_endpoint() -> None:
    with pytest.raises(ValueError, match="endpoint"):
        AgentEndpoint()
