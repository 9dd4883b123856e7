"""A LangGraph graph whose nodes are agent endpoints: a researcher, then a writer.

Each node is ``AgentEndpoint(...).as_node()``: it sends the conversation so far to a responses
agent endpoint and appends the agent's answer to ``state["messages"]``. The writer is built
with ``custom_inputs`` bound (the audience it writes for), sent with every request it makes.
The graph runs once with ``invoke`` (the messages are printed) and once with
``stream(stream_mode="updates")`` (each node's update is printed as it finishes).

Needs LangGraph (``pip install "langchain-dbx-serving[langgraph]"``). Offline by default: a
local serving endpoint on 127.0.0.1 plays both agents. Live: set DATABRICKS_HOST and
DATABRICKS_TOKEN, and DBX_RESEARCH_AGENT and DBX_WRITER_AGENT to ResponsesAgent endpoints.

    python cookbook/06_langgraph_agents.py
"""

from __future__ import annotations

import contextlib
import operator
import os
from collections.abc import Iterator
from typing import Annotated, Any, TypedDict

from langchain_core.messages import AnyMessage, HumanMessage
from langgraph.graph import END, START, StateGraph

from langchain_dbx_serving import AgentEndpoint
from langchain_dbx_serving.testing import BackendRequest, LocalEndpoint, Reply, ToolStep


class State(TypedDict):
    messages: Annotated[list[AnyMessage], operator.add]


def research_agent(request: BackendRequest) -> Reply:
    """A stand-in researcher: searches a knowledge base with its own tool, reports the facts."""
    found = "returns accepted within 30 days; refunds take 5 business days"
    step = ToolStep("search_kb", {"query": request.messages[-1].text}, found, id="call_1")
    return Reply.text(f"Facts: {found}.", steps=[step], usage=(60, 14))


def writer_agent(request: BackendRequest) -> Reply:
    """A stand-in writer: rewrites the researcher's facts for the bound audience."""
    audience = (request.custom_inputs or {}).get("audience", "everyone")
    facts = request.messages[-1].text.removeprefix("Facts: ")
    return Reply.text(
        f"For {audience}: {facts[0].upper()}{facts[1:]}",
        usage=(70, 16),
        custom_outputs={"audience": audience},
    )


@contextlib.contextmanager
def agents() -> Iterator[tuple[AgentEndpoint, AgentEndpoint]]:
    audience = {"audience": "new customers"}
    if os.environ.get("DATABRICKS_HOST") and os.environ.get("DATABRICKS_TOKEN"):
        researcher = AgentEndpoint(os.environ.get("DBX_RESEARCH_AGENT", "research-agent"))
        writer = AgentEndpoint(
            os.environ.get("DBX_WRITER_AGENT", "writer-agent"), custom_inputs=audience
        )
        yield researcher, writer
        return
    with LocalEndpoint({"research-agent": research_agent, "writer-agent": writer_agent}) as local:
        print(f"(offline: local serving endpoint at {local.base_url})\n")
        auth: dict[str, Any] = {"host": local.host, "token": local.token}
        yield (
            AgentEndpoint("research-agent", **auth),
            AgentEndpoint("writer-agent", custom_inputs=audience, **auth),
        )


def build_graph(researcher: AgentEndpoint, writer: AgentEndpoint) -> Any:
    graph = StateGraph(State)
    graph.add_node("research", researcher.as_node())
    graph.add_node("write", writer.as_node())
    graph.add_edge(START, "research")
    graph.add_edge("research", "write")
    graph.add_edge("write", END)
    return graph.compile()


def main() -> None:
    question = HumanMessage("What is our return policy?")
    with agents() as (researcher, writer):
        app = build_graph(researcher, writer)

        result = app.invoke({"messages": [question]})
        for message in result["messages"]:
            print(f"{message.type}: {message.text}")
        meta = result["messages"][-1].response_metadata
        print("writer custom_outputs:", meta.get("custom_outputs"))

        print("\nupdates:")
        for update in app.stream({"messages": [question]}, stream_mode="updates"):
            for node, change in update.items():
                for message in change["messages"]:
                    print(f"  {node} -> {message.text}")


if __name__ == "__main__":
    main()
