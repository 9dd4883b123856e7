"""``AgentEndpoint`` calls as model runs (usage, on_llm_end with the trace), and
``TraceCollector`` over a multi-agent LangGraph graph: keyed by node and endpoint, one tree."""

from __future__ import annotations

import re
from typing import Any
from uuid import UUID

import pytest
from langchain_core.callbacks import BaseCallbackHandler, get_usage_metadata_callback
from langchain_core.outputs import LLMResult

from langchain_dbx_serving import (
    AgentEndpoint,
    ChatDatabricksServing,
    TraceCollector,
    get_trace,
    get_trace_id,
)
from langchain_dbx_serving.testing import LocalEndpoint, Reply, ToolStep
from tests.integration.test_traces import MODES, call
from tests.support.serving import queue

STEP = ToolStep("lookup_order", {"order_id": 42}, "shipped", id="call_1")


class ModelRuns(BaseCallbackHandler):
    """What model-level handlers see."""

    run_inline = True

    def __init__(self) -> None:
        self.starts: list[tuple[UUID, UUID | None, str | None]] = []
        self.ends: list[tuple[UUID, LLMResult]] = []
        self.errors: list[BaseException] = []
        self.tokens: list[str] = []
        self.chains: list[UUID] = []

    def on_chain_start(self, serialized: Any, inputs: Any, *, run_id: UUID, **_: Any) -> None:
        self.chains.append(run_id)

    def on_chat_model_start(
        self, serialized: Any, messages: Any, *, run_id: UUID, parent_run_id: Any, **kw: Any
    ) -> None:
        self.starts.append((run_id, parent_run_id, kw.get("name")))

    def on_llm_new_token(self, token: str, **_: Any) -> None:
        self.tokens.append(token)

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **_: Any) -> None:
        self.ends.append((run_id, response))

    def on_llm_error(self, error: BaseException, **_: Any) -> None:
        self.errors.append(error)


def agent(serving: LocalEndpoint, **fields: Any) -> AgentEndpoint:
    return AgentEndpoint("responder", host=serving.host, token=serving.token, **fields)


@pytest.mark.parametrize("mode", MODES)
async def test_agent_call_is_a_model_run_with_usage_and_trace(
    serving: LocalEndpoint, mode: str
) -> None:
    queue(serving, Reply.text("It shipped.", steps=[STEP], usage=(9, 4)), name="responder")
    seen = ModelRuns()
    with get_usage_metadata_callback() as usage:
        out = await call(
            agent(serving, return_trace=True), mode, "where is 42?", {"callbacks": [seen]}
        )
    response = out[-1].response if mode.endswith("stream") else out
    assert response.text == "It shipped."

    ((run_id, parent, name),) = seen.starts
    (chain_run,) = seen.chains
    assert (parent, name) == (chain_run, "responder")  # a child of the AgentEndpoint's run
    ((end_run, result),) = seen.ends
    assert end_run == run_id
    message = result.generations[0][0].message
    assert message.text == "It shipped."
    assert message.usage_metadata["input_tokens"] == 9
    assert message.usage_metadata["output_tokens"] == 4
    assert get_trace_id(result) == response.trace_id is not None
    assert get_trace(result).trace_id == response.trace_id
    assert result.llm_output["trace_id"] == response.trace_id
    (counted,) = usage.usage_metadata.values()
    assert (counted["input_tokens"], counted["output_tokens"]) == (9, 4)
    if mode.endswith("stream"):
        assert "".join(seen.tokens) == "It shipped."


async def test_a_failed_agent_call_ends_its_model_run_with_the_error(
    serving: LocalEndpoint,
) -> None:
    from langchain_dbx_serving import DatabricksServingError

    queue(serving, Reply.error(400, "BAD_REQUEST", "bad input"), name="responder")
    seen = ModelRuns()
    with pytest.raises(DatabricksServingError):
        await agent(serving, max_retries=0).ainvoke("hi", {"callbacks": [seen]})
    assert len(seen.starts) == 1 and seen.ends == []
    (error,) = seen.errors
    assert isinstance(error, DatabricksServingError)


# -- TraceCollector over a graph ----------------------------------------------------------------
def _graph(serving: LocalEndpoint) -> Any:
    graph_module = pytest.importorskip("langgraph.graph")
    llm = ChatDatabricksServing(
        endpoint="chat", host=serving.host, token=serving.token, return_trace=True
    )
    support = agent(serving, return_trace=True)

    def triage(state: dict[str, Any]) -> dict[str, Any]:
        return {"messages": [llm.invoke(state["messages"])]}

    inner = graph_module.StateGraph(graph_module.MessagesState)
    inner.add_node("lookup", support.as_node())
    inner.add_edge(graph_module.START, "lookup")
    research = inner.compile()

    builder = graph_module.StateGraph(graph_module.MessagesState)
    builder.add_node("triage", triage)
    builder.add_node("research", research)
    builder.add_node("support", support.as_node())
    builder.add_edge(graph_module.START, "triage")
    builder.add_edge("triage", "research")
    builder.add_edge("research", "support")
    return builder.compile()


async def test_collector_keys_a_graph_by_node_and_endpoint_and_renders_one_tree(
    serving: LocalEndpoint,
) -> None:
    graph = _graph(serving)
    queue(serving, Reply.text("Checking order 42.", usage=(3, 2)), name="chat")
    queue(
        serving,
        Reply.text("Found it.", steps=[STEP]),
        Reply.text("It shipped."),
        name="responder",
    )
    collector = TraceCollector()
    state = await graph.ainvoke(
        {"messages": [("user", "where is 42?")]}, {"callbacks": [collector]}
    )
    assert state["messages"][-1].text == "It shipped."

    assert [(e.node_path, e.endpoint) for e in collector] == [
        (("triage",), "chat"),
        (("research", "lookup"), "responder"),
        (("support",), "responder"),
    ]
    assert {node: len(entries) for node, entries in collector.by_node.items()} == {
        "triage": 1,
        "lookup": 1,
        "support": 1,
    }
    keyed = collector.keyed()
    assert list(keyed) == [("triage", "chat"), ("lookup", "responder"), ("support", "responder")]

    tree = re.sub(r"tr-[0-9a-f]{32}", "tr-ID", collector.tree())
    tree = re.sub(r"  [0-9.]+ m?s", "  T", tree)
    assert tree.splitlines() == [
        "run: 3 endpoint calls, 3 traces, 6 spans",
        "├── node triage",
        "│   └── call chat  trace tr-ID",
        "│       └── chat  CHAT_MODEL  T  tokens 3 in / 2 out",
        "├── node research",
        "│   └── node lookup",
        "│       └── call responder  trace tr-ID",
        "│           └── responder  AGENT  T",
        "│               ├── lookup_order  TOOL  T",
        "│               └── chat_model  CHAT_MODEL  T",
        "└── node support",
        "    └── call responder  trace tr-ID",
        "        └── responder  AGENT  T",
        "            └── chat_model  CHAT_MODEL  T",
    ]


def test_collector_tree_of_ids_only_and_unreadable_traces(serving: LocalEndpoint) -> None:
    from langchain_dbx_serving.testing import RawReply

    bad = {"info": {"trace_id": "tr-1"}, "data": {"spans": [7]}}
    body = {
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}}],
        "databricks_output": {"trace": bad},
    }
    queue(serving, RawReply(body=body))
    collector = TraceCollector()
    llm = ChatDatabricksServing(endpoint="chat", host=serving.host, token=serving.token)
    llm.invoke("hi", {"callbacks": [collector]})
    lines = collector.tree().splitlines()
    assert lines[0] == "run: 1 endpoint call, 1 trace, 0 spans"
    assert lines[1] == "└── call chat  trace tr-1"
    assert lines[2].startswith("    └── (trace could not be read: ")
    assert TraceCollector().tree() == "run: 0 endpoint calls, 0 traces, 0 spans"


@pytest.mark.parametrize("mode", ["stream", "astream"])
async def test_a_consumer_that_stops_early_ends_the_model_run(
    serving: LocalEndpoint, mode: str
) -> None:
    queue(serving, Reply.text("one two three four"), name="responder")
    seen = ModelRuns()
    config = {"callbacks": [seen]}
    if mode == "stream":
        events = agent(serving).stream("hi", config)
        first = next(events)
        events.close()
    else:
        events = agent(serving).astream("hi", config)
        first = await anext(events)
        await events.aclose()
    assert first.type == "text_delta"
    assert len(seen.starts) == 1 and seen.ends == []
    assert [type(error) for error in seen.errors] == [GeneratorExit]
