"""Long-running agents: background runs, progress, a dropped stream resumed, a crash, approvals.

Agents that research or call many tools run for minutes; durable agent servers
(databricks-ai-bridge's ``LongRunningAgentServer``, served as a Databricks App) run them in the
background. Offline, a local endpoint in long-running mode speaks the same wire contract and
plays a slow research agent that also asks for approval before it drops a table (answered
directly, then as a LangGraph interrupt).
Live: set DBX_AGENT_APP_URL to your app's URL (and DATABRICKS_HOST / DATABRICKS_TOKEN).

    python cookbook/11_long_running_agents.py
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import HumanMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.types import Command

from langchain_dbx_serving import (
    AgentEndpoint,
    ChatDatabricksResponses,
    approval_message,
    approval_requests,
)
from langchain_dbx_serving.testing import BackendRequest, Delta, LocalEndpoint, RawReply

FINDINGS = ["Three ", "studies ", "agree: ", "caching ", "halves ", "latency."]


def _slowly(words: list[str]) -> Iterator[Delta]:
    for word in words:
        time.sleep(0.05)  # the agent thinking
        yield Delta(text=word)


def research_agent(request: BackendRequest) -> Any:
    """A stand-in for a slow agent: findings word by word; asks before dropping tables."""
    said = request.messages[-1].text if request.messages else ""
    items = [i for i in request.body.get("input", []) if isinstance(i, dict)]
    answers = [i for i in items if i.get("type") == "mcp_approval_response"]
    if answers:
        done = "Dropped staging.tmp." if answers[-1]["approve"] else "Kept staging.tmp."
        return iter([Delta(text=done)])
    if "drop" in said:
        request_item = {
            "type": "mcp_approval_request",
            "id": "mcpr_1",
            "name": "drop_table",
            "arguments": '{"table": "staging.tmp"}',
            "server_label": "warehouse",
        }
        return RawReply(body={"object": "response", "id": "resp_ask", "output": [request_item]})
    if said.startswith("[RECOVERY]"):
        return _slowly(["(resumed) ", *FINDINGS])
    return _slowly(FINDINGS)


class Progress(BaseCallbackHandler):
    def on_custom_event(self, name: str, data: Any, **kwargs: Any) -> None:
        if name == "databricks_background_progress" and not getattr(self, "shown", False):
            self.shown = True
            print(f"progress: run {data['status']} (attempt {data['attempt_number'] or 1})")


@contextlib.contextmanager
def agent_app() -> Iterator[tuple[ChatDatabricksResponses, LocalEndpoint | None]]:
    if url := os.environ.get("DBX_AGENT_APP_URL"):
        yield ChatDatabricksResponses(endpoint="agent", base_url=url), None
        return
    with LocalEndpoint(research_agent, long_running=True) as ep:
        yield ChatDatabricksResponses(endpoint="agent", base_url=ep.host, token=ep.token), ep


def main() -> None:
    with agent_app() as (agent, ep):
        # 1. Submit in the background; keep only the handle's id; collect it later.
        run = agent.submit("Survey the literature on caching")
        print("submitted:", sorted(run.to_dict()), run.status)
        later = agent.background_run(run.to_dict()["id"])  # e.g. in another web request
        print("result:", later.result(timeout=120).text)

        # 2. invoke() submits and waits; each poll is a callback event.
        slow = agent.bind(background=True)
        reply = slow.invoke("Survey again", config={"callbacks": [Progress()]})
        print("invoke(background=True):", reply.text)

        # 3. A stream whose connection drops is resumed from the last event seen.
        if ep is not None:
            ep.long_running.cut_stream(after_seq=4)
        chunks = list(agent.stream("Survey once more", background=True))
        message = chunks[0]
        for chunk in chunks[1:]:
            message = message + chunk
        print("streamed:", "|".join(c.text for c in chunks if c.text))
        print("resumes:", message.response_metadata.get("resumes", 0))

        # 4. The server crashes mid-run: the run restarts as attempt 2 on a rotated
        #    conversation id, which later calls of this model use by themselves.
        if ep is not None:
            ep.long_running.crash_run(at_seq=5)
            chat = agent.bind(context={"conversation_id": "chat-42"})
            crashed = list(chat.stream("Survey, crash-proof", background=True))
            last = crashed[-1].response_metadata
            print("conversation id after the crash:", last["conversation_id"])

        # 5. An MCP tool that needs approval: a typed request, then the approval turn.
        history = [HumanMessage("Clean up: drop the staging table")]
        ask = agent.invoke(history)
        for request in approval_requests(ask):
            print(f"approval asked: {request.server_label}.{request.name}({request.arguments})")
        answer = approval_message(*(r.approve() for r in approval_requests(ask)))
        print("after approval:", agent.invoke([*history, ask, answer]).text)

        # 6. In a LangGraph graph the request is an interrupt; Command(resume=...) answers it.
        builder = StateGraph(MessagesState)
        builder.add_node("agent", AgentEndpoint(chat=agent).as_node())
        builder.add_edge(START, "agent")
        graph = builder.compile(checkpointer=InMemorySaver())
        thread = {"configurable": {"thread_id": "cleanup-1"}}
        paused = graph.invoke({"messages": history}, thread)
        (asked,) = approval_requests(paused["__interrupt__"][0])
        print(f"graph paused for: {asked.server_label}.{asked.name}")
        done = graph.invoke(Command(resume={asked.id: True}), thread)
        print("graph after approval:", done["messages"][-1].text)


if __name__ == "__main__":
    main()
