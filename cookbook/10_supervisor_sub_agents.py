"""A supervisor whose tools are two sub-agents, each a LangGraph graph served as a Databricks agent.

- The sub-agents are LangGraph graphs (a researcher built with ``create_agent`` and a search
  tool; a writer graph that also reports ``custom_outputs``), served as MLflow
  ``ResponsesAgent``s by ``as_responses_agent``, the way they would be deployed to Model
  Serving or a Databricks App.
- The supervisor is ``langchain.agents.create_agent`` whose tools are the two sub-agents,
  ``AgentEndpoint(...).as_tool()``: its model sees each sub-agent's answer text, and
  ``ToolMessage.artifact`` keeps the whole reply (the sub-agent's own tool calls, usage,
  ``custom_outputs``, its trace).
- The run is traced with MLflow; each sub-agent returns its trace (``return_trace=True``), which
  is merged under the supervisor's span, so one tree shows the whole run.

Runs offline: two local serving endpoints on 127.0.0.1, one playing the chat model all three
agents use, one hosting both sub-agents by name (on Databricks: a model endpoint and two agent
endpoints or Apps; only the host, token and names change); MLflow writes its traces to a
temporary directory. Needs ``pip install "langchain-dbx-serving[agents]"``.

    python cookbook/10_supervisor_sub_agents.py
"""

from __future__ import annotations

import operator
import os
import tempfile
from pathlib import Path
from typing import Annotated, Any, TypedDict

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool

from langchain_dbx_serving import AgentEndpoint, ChatDatabricksServing, Trace
from langchain_dbx_serving.testing import BackendRequest, LocalEndpoint, Reply

DOCS = {
    "returns": "returns are accepted within 30 days",
    "refunds": "refunds reach the card in 5 business days",
}


def stand_in_model(request: BackendRequest) -> Reply:
    """A deterministic chat model playing the supervisor, the researcher and the writer."""
    role = request.messages[0].text if request.messages[0].type == "system" else ""
    question = next(m.text for m in request.messages if m.type == "human")
    results = [m.text for m in request.messages if m.type == "tool"]
    if role.startswith("You are the supervisor"):
        if not results:
            return Reply.tool_call("research", {"request": question}, usage=(50, 9))
        if len(results) == 1:
            return Reply.tool_call("write", {"request": results[0]}, usage=(70, 12))
        return Reply.text(results[1], usage=(90, 20))
    if role.startswith("You are the researcher"):
        if not results:
            return Reply.tool_call("search_docs", {"query": "returns refunds"}, usage=(30, 6))
        return Reply.text(f"Facts: {results[0]}.", usage=(45, 14))
    facts = question.removeprefix("Facts: ")
    return Reply.text(f"Dear customer, {facts}", usage=(40, 15))


@tool
def search_docs(query: str) -> str:
    """Search the policy documents."""
    return "; ".join(text for key, text in DOCS.items() if key in query)


class WriterState(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], operator.add]
    custom_outputs: dict[str, Any]


def build_sub_agents(model: ChatDatabricksServing) -> dict[str, Any]:
    from langchain.agents import create_agent
    from langgraph.graph import END, START, StateGraph

    researcher = create_agent(
        model, tools=[search_docs], system_prompt="You are the researcher: find the facts."
    )

    def write(state: WriterState) -> dict[str, Any]:
        system = ("system", "You are the writer: write the facts up for a customer.")
        reply = model.invoke([system, *state["messages"]])
        return {"messages": [reply], "custom_outputs": {"words": len(reply.text.split())}}

    writer = StateGraph(WriterState)
    writer.add_node("write", write)
    writer.add_edge(START, "write")
    writer.add_edge("write", END)
    return {"research-agent": researcher, "writer-agent": writer.compile()}


def main() -> None:
    # MLflow traces into a throwaway directory (set before mlflow is imported).
    with tempfile.TemporaryDirectory(prefix="cookbook-10-") as tmp:
        os.environ.setdefault("MLFLOW_TRACKING_URI", (Path(tmp) / "mlruns").as_uri())
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        os.environ.setdefault("MLFLOW_ENABLE_ASYNC_TRACE_LOGGING", "false")
        run()


def run() -> None:
    import mlflow
    from langchain.agents import create_agent
    from mlflow.langchain.langchain_tracer import MlflowLangchainTracer

    with LocalEndpoint(stand_in_model) as models:
        model = ChatDatabricksServing(endpoint="llm", host=models.host, token=models.token)
        with LocalEndpoint(build_sub_agents(model)) as agents:
            print(f"(offline: sub-agents served at {agents.base_url})\n")
            auth: dict[str, Any] = {"host": agents.host, "token": agents.token}
            tools = [
                AgentEndpoint("research-agent", return_trace=True, **auth).as_tool(
                    name="research", description="Finds the facts about a customer question."
                ),
                AgentEndpoint("writer-agent", return_trace=True, **auth).as_tool(
                    name="write", description="Writes facts up as a reply to a customer."
                ),
            ]
            supervisor = create_agent(
                model, tools=tools, system_prompt="You are the supervisor: delegate, then answer."
            )
            question = HumanMessage("What is your returns and refunds policy?")
            with mlflow.start_span(name="supervisor", span_type="AGENT") as root:
                config: Any = {"callbacks": [MlflowLangchainTracer()]}
                state = supervisor.invoke({"messages": [question]}, config)
            trace_id = root.trace_id

    print("answer:", state["messages"][-1].text)
    sub_agent_tokens = 0
    for message in state["messages"]:
        if isinstance(message, ToolMessage):
            reply = message.artifact
            calls = [f"{c.name}({c.args}) -> {c.output}" for c in reply.tool_calls]
            print(f"{message.name} artifact: text={reply.text!r}")
            print(f"  tool calls: {calls} custom_outputs: {reply.custom_outputs}")
            print(f"  usage: {reply.usage['total_tokens']} tokens, trace {reply.trace_id}")
            sub_agent_tokens += reply.usage["total_tokens"]
    own = sum(
        m.usage_metadata["total_tokens"]
        for m in state["messages"]
        if isinstance(m, AIMessage) and m.usage_metadata
    )
    print(f"tokens: supervisor {own} + sub-agents {sub_agent_tokens} = {own + sub_agent_tokens}")

    trace = Trace.from_dict(mlflow.get_trace(trace_id).to_dict())
    print("\ntrace tree:")
    print(trace.tree())


if __name__ == "__main__":
    main()
