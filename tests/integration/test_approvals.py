"""Hosted tools through ``bind_tools`` and human approval turns (``mcp_approval_request``).

The local endpoint plays an agent that, asked to drop a table, answers with an
``mcp_approval_request`` item, and on the next turn answers according to the
``mcp_approval_response`` it receives; each test checks what reaches the wire.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage

from langchain_dbx_serving import (
    AgentEndpoint,
    ApprovalRequest,
    ChatDatabricksResponses,
    approval_message,
    approval_requests,
)
from langchain_dbx_serving.testing import FunctionBackend, LocalEndpoint, RawReply
from langchain_dbx_serving.testing.backends import BackendRequest

REQUEST_ITEM = {
    "type": "mcp_approval_request",
    "id": "mcpr_1",
    "name": "drop_table",
    "arguments": '{"table": "staging.tmp"}',
    "server_label": "warehouse",
}
HOSTED = [
    {"type": "genie_space", "genie_space": {"id": "01ef", "description": "sales data"}},
    {"type": "uc_function", "uc_function": {"name": "main.tools.lookup"}},
    {"type": "knowledge_assistant", "knowledge_assistant": {"id": "ka-1"}},
    {"type": "uc_connection", "uc_connection": {"name": "github"}},
    {"type": "app", "app": {"name": "crm"}},
]


def _message(text: str) -> dict[str, Any]:
    return {
        "type": "message",
        "id": "msg_1",
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


def _agent(request: BackendRequest) -> RawReply:
    items = request.body["input"]
    answers = [i for i in items if isinstance(i, dict) and i.get("type") == "mcp_approval_response"]
    if not answers:
        return RawReply(body={"object": "response", "id": "resp_1", "output": [REQUEST_ITEM]})
    verdict = "dropped" if answers[-1]["approve"] else f"kept ({answers[-1].get('reason')})"
    return RawReply(body={"object": "response", "id": "resp_2", "output": [_message(verdict)]})


@pytest.fixture
def ep() -> Iterator[LocalEndpoint]:
    with LocalEndpoint(FunctionBackend(_agent)) as endpoint:
        yield endpoint


def chat_for(ep: LocalEndpoint) -> ChatDatabricksResponses:
    return ChatDatabricksResponses(endpoint="agent", base_url=ep.host, token=ep.token)


def test_hosted_tools_pass_through_bind_tools_next_to_function_tools(ep: LocalEndpoint) -> None:
    def lookup(query: str) -> str:
        """Look something up."""
        return query

    chat_for(ep).bind_tools([*HOSTED, lookup]).invoke("drop it")
    sent = ep.last_request.body["tools"]
    assert sent[:5] == HOSTED  # unchanged, in order
    assert sent[5]["type"] == "function" and sent[5]["name"] == "lookup"


def test_an_approval_request_is_typed_and_answered_in_a_second_turn(ep: LocalEndpoint) -> None:
    chat = chat_for(ep)
    history = [HumanMessage("drop the staging table")]
    reply = chat.invoke(history)
    (request,) = approval_requests(reply)
    assert request == ApprovalRequest.from_item(REQUEST_ITEM)
    assert request.arguments == {"table": "staging.tmp"} and request.server_label == "warehouse"

    final = chat.invoke([*history, reply, approval_message(request.approve())])
    assert final.text == "dropped"
    sent = ep.last_request.body["input"]
    assert sent[0] == {"role": "user", "content": "drop the staging table"}
    assert sent[1] == REQUEST_ITEM  # the agent's own request goes back as it came
    assert sent[2] == {
        "type": "mcp_approval_response",
        "approval_request_id": "mcpr_1",
        "approve": True,
    }
    assert approval_requests(final) == []


@pytest.mark.parametrize("asynchronous", [False, True])
async def test_agent_endpoint_resolves_approvals(ep: LocalEndpoint, asynchronous: bool) -> None:
    agent = AgentEndpoint(chat=chat_for(ep))
    first = agent.invoke("drop the staging table")
    assert [r.id for r in approval_requests(first)] == ["mcpr_1"]
    if asynchronous:
        final = await agent.aresolve_approvals(
            "drop the staging table", first, {"mcpr_1": False}, reason="audit first"
        )
    else:
        final = agent.resolve_approvals(
            "drop the staging table", first, lambda r: r.name != "drop_table", reason="audit first"
        )
    assert final.text == "kept (audit first)"
    answer = ep.last_request.body["input"][-1]
    assert answer == {
        "type": "mcp_approval_response",
        "approval_request_id": "mcpr_1",
        "approve": False,
        "reason": "audit first",
    }


def test_careless_approval_calls_are_clear_errors(ep: LocalEndpoint) -> None:
    agent = AgentEndpoint(chat=chat_for(ep))
    first = agent.invoke("drop the staging table")
    with pytest.raises(ValueError, match="no decision for approval request 'mcpr_1'"):
        agent.resolve_approvals("drop the staging table", first, {"other": True})
    with pytest.raises(ValueError, match="asks for no approval"):
        agent.resolve_approvals("x", agent.resolve_approvals("x", first, True), True)
    with pytest.raises(ValueError, match="at least one"):
        approval_message()
    with pytest.raises(ValueError, match="not an mcp_approval_response"):
        approval_message({"type": "message"})
    with pytest.raises(TypeError):
        approval_requests("text")
    with pytest.raises(ValueError, match="without an id"):
        ApprovalRequest.from_item({"type": "mcp_approval_request"})
    odd = ApprovalRequest.from_item({**REQUEST_ITEM, "arguments": "not json"})
    assert odd.arguments == {"_raw": "not json"}
    assert approval_requests(AIMessage("plain")) == []
