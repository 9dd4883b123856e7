"""Background runs on the Supervisor API, whose output echoes the input history first.

The local endpoint's long-running mode with ``echo_history=True`` answers a completed run's
retrieve (on AI Gateway's ``/ai-gateway/mlflow/v1/responses/{id}``) with the request's
assistant messages and function call items ahead of the run's own output, as Databricks'
templates describe (``protocols/_supervisor_echo.py``); the client must show only the new
items.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from langchain_dbx_serving import AgentEndpoint, ChatDatabricksResponses
from langchain_dbx_serving.protocols._supervisor_echo import echoed_count, echoes_history
from langchain_dbx_serving.testing import FunctionBackend, LocalEndpoint, RawReply
from langchain_dbx_serving.testing.backends import BackendRequest
from langchain_dbx_serving.testing.local_endpoint._long_running import LongRunningMode

RETRIEVE = "/ai-gateway/mlflow/v1/responses/"


def _message(text: str, n: int) -> dict[str, Any]:
    return {
        "type": "message",
        "id": f"msg_new_{n}",
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


def _agent(request: BackendRequest) -> RawReply:
    items = request.body["input"]
    users = [i for i in items if i.get("role") == "user"]
    n = len(users)
    return RawReply(
        body={"object": "response", "id": f"resp_{n}", "output": [_message(f"answer {n}", n)]}
    )


@pytest.fixture
def ep() -> Iterator[LocalEndpoint]:
    mode = LongRunningMode(echo_history=True)
    with LocalEndpoint(FunctionBackend(_agent), long_running=mode) as endpoint:
        yield endpoint


def _chat(ep: LocalEndpoint) -> ChatDatabricksResponses:
    return ChatDatabricksResponses(
        endpoint="agent", host=ep.host, token=ep.token, route="ai-gateway"
    )


HISTORY = [
    HumanMessage("first question"),
    AIMessage(
        [{"type": "text", "text": "first answer", "id": "msg_old"}],
        tool_calls=[{"id": "c1", "name": "lookup", "args": {"q": "x"}}],
    ),
    ToolMessage("found", tool_call_id="c1"),
    AIMessage([{"type": "text", "text": "second answer", "id": "msg_old2"}]),
    HumanMessage("second question"),
]


@pytest.mark.parametrize("asynchronous", [False, True])
async def test_background_result_skips_the_echoed_history(
    ep: LocalEndpoint, asynchronous: bool
) -> None:
    chat = _chat(ep)
    if asynchronous:
        message = await chat.ainvoke(HISTORY, background=True)
    else:
        message = chat.invoke(HISTORY, background=True)
    sent = ep.requests[0].body
    assert ep.requests[0].path == "/ai-gateway/mlflow/v1/responses" and sent["background"] is True
    echoed = echoed_count(sent["input"])
    assert echoed == 4  # two assistant messages, one function call, one function call output
    retrieved = [r for r in ep.requests if r.method == "GET"]
    assert retrieved and all(r.path.startswith(RETRIEVE) for r in retrieved)
    # What the server answered: the history first, then the run's own item.
    polled = ep.long_running._poll_body(next(iter(ep.long_running.runs.values())))
    assert len(polled["output"]) == echoed + 1
    # What the caller sees: the new answer only, not the history again.
    assert message.text == "answer 2"
    assert message.tool_calls == []


def test_a_handle_keeps_the_echo_across_processes(ep: LocalEndpoint) -> None:
    run = _chat(ep).submit(HISTORY)
    saved = json.loads(json.dumps(run.to_dict()))
    assert saved == {"id": run.id, "endpoint": "agent", "echoed": 4}

    later = _chat(ep).background_run(saved["id"], echoed=saved["echoed"])
    assert later.result(timeout=30).text == "answer 2"
    agent = AgentEndpoint(chat=_chat(ep))
    reply = agent.background_run(saved["id"], echoed=saved["echoed"]).result(timeout=30)
    assert [item["id"] for item in reply.output] == ["msg_new_2"]


def test_a_first_turn_echoes_nothing_and_other_routes_are_untouched(ep: LocalEndpoint) -> None:
    run = _chat(ep).submit("only question")
    assert run.echoed == 0 and run.to_dict() == {"id": run.id, "endpoint": "agent"}
    assert run.result(timeout=30).text == "answer 1"
    # A durable agent server (the root /responses) stores the run's own items: nothing skipped.
    root = ChatDatabricksResponses(endpoint="agent", base_url=ep.base_url, token=ep.token)
    assert root.submit(HISTORY).echoed == 0
    assert not echoes_history(f"{ep.base_url}/responses")
    assert echoes_history(f"{ep.host}/ai-gateway/mlflow/v1/responses")
    assert not echoes_history(f"{ep.host}/ai-gateway/openai/v1/responses")
