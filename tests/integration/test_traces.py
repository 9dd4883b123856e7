"""Returned traces reach every place a LangChain user looks, for the three classes.

Against the local endpoint over loopback (and MLflow's real AgentServer for a bare trace id):
``response_metadata``, what an ``on_llm_end`` handler really receives, the ``databricks_trace``
custom event (with a handler and in ``astream_events``), ``TraceCollector``, sync and async,
invoke and stream.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.output_parsers import StrOutputParser
from langchain_core.outputs import LLMResult
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda, RunnableParallel

from langchain_dbx_serving import (
    AgentEndpoint,
    AgentResponse,
    ChatDatabricksResponses,
    ChatDatabricksServing,
    TraceCollector,
    TraceParseError,
    get_trace,
    get_trace_id,
)
from langchain_dbx_serving.testing import LocalEndpoint, RawReply, Reply, ToolStep
from tests.support.serving import queue

MODES = ("invoke", "ainvoke", "stream", "astream")
STEP = ToolStep("lookup_order", {"order_id": 42}, "shipped", id="call_1")


class Seen(BaseCallbackHandler):
    """Records what LangChain hands to a user's callback handler."""

    run_inline = True

    def __init__(self) -> None:
        self.model_runs: list[UUID] = []
        self.chain_runs: list[UUID] = []
        self.llm_ends: list[tuple[UUID, LLMResult]] = []
        self.events: list[tuple[str, UUID, dict[str, Any]]] = []

    def on_chat_model_start(self, serialized: Any, messages: Any, *, run_id: UUID, **_: Any):
        self.model_runs.append(run_id)

    def on_chain_start(self, serialized: Any, inputs: Any, *, run_id: UUID, **_: Any) -> None:
        self.chain_runs.append(run_id)

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **_: Any) -> None:
        self.llm_ends.append((run_id, response))

    def on_custom_event(self, name: str, data: Any, *, run_id: UUID, **_: Any) -> None:
        self.events.append((name, run_id, data))


def chat(kind: str, serving: LocalEndpoint, **fields: Any) -> Any:
    common = {"host": serving.host, "token": serving.token, "return_trace": True, **fields}
    if kind == "serving":
        return ChatDatabricksServing(endpoint="chat", **common)
    return ChatDatabricksResponses(endpoint="responder", **common)


def script(serving: LocalEndpoint, kind: str, *replies: Any) -> None:
    queue(serving, *replies, name="chat" if kind == "serving" else "responder")


def total(chunks: list[AIMessageChunk]) -> AIMessageChunk:
    result = chunks[0]
    for chunk in chunks[1:]:
        result = result + chunk
    return result


async def call(runnable: Any, mode: str, value: Any, config: dict[str, Any]) -> Any:
    if mode == "invoke":
        return runnable.invoke(value, config)
    if mode == "ainvoke":
        return await runnable.ainvoke(value, config)
    if mode == "stream":
        return list(runnable.stream(value, config))
    return [chunk async for chunk in runnable.astream(value, config)]


# -- chat models: message, on_llm_end, custom event ---------------------------------------------
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", ["serving", "responses"])
async def test_chat_trace_reaches_message_llm_end_and_custom_event(
    serving: LocalEndpoint, kind: str, mode: str
) -> None:
    script(serving, kind, Reply.text("It shipped.", steps=[STEP], usage=(9, 4)))
    seen = Seen()
    out = await call(chat(kind, serving), mode, "where is order 42?", {"callbacks": [seen]})
    message = total(out) if mode.endswith("stream") else out

    trace_id = message.response_metadata["trace_id"]
    trace = get_trace(message)
    assert trace is not None and trace.trace_id == trace_id and trace.state == "OK"
    assert trace.token_usage == {"input_tokens": 9, "output_tokens": 4, "total_tokens": 13}
    # The custom event, reported on the chat model's own run.
    (run_id,) = seen.model_runs
    assert [(name, rid) for name, rid, _ in seen.events] == [("databricks_trace", run_id)]
    data = seen.events[0][2]
    assert data["trace_id"] == trace_id
    assert data["endpoint"] == ("chat" if kind == "serving" else "responder")
    assert data["trace"] == message.response_metadata["trace"]
    assert data["databricks_request_id"] == message.response_metadata["databricks_request_id"]
    # What on_llm_end really receives.
    ((end_run, result),) = seen.llm_ends
    assert end_run == run_id
    assert get_trace_id(result) == trace_id and get_trace(result).trace_id == trace_id
    if mode.endswith("invoke"):
        assert result.llm_output["trace_id"] == trace_id
        assert result.llm_output["trace"]["info"]["trace_id"] == trace_id
    else:  # LangChain builds a stream's LLMResult from the chunks: no llm_output
        assert result.llm_output is None
        assert result.generations[0][0].generation_info["trace_id"] == trace_id


@pytest.mark.parametrize("kind", ["serving", "responses"])
async def test_no_trace_no_event(serving: LocalEndpoint, kind: str) -> None:
    script(serving, kind, Reply.text("plain"), Reply.text("plain"))
    seen = Seen()
    llm = chat(kind, serving, return_trace=False)
    llm.invoke("hi", {"callbacks": [seen]})
    await call(llm, "astream", "hi", {"callbacks": [seen]})
    assert seen.events == []
    assert all(get_trace(result) is None for _, result in seen.llm_ends)


@pytest.mark.parametrize("kind", ["serving", "responses"])
async def test_astream_events_shows_the_trace_event_on_the_model_run(
    serving: LocalEndpoint, kind: str
) -> None:
    script(serving, kind, Reply.text(["It ", "shipped."]))
    events = [e async for e in chat(kind, serving).astream_events("hi", version="v2")]
    (start,) = [e for e in events if e["event"] == "on_chat_model_start"]
    (custom,) = [e for e in events if e["event"] == "on_custom_event"]
    assert custom["name"] == "databricks_trace"
    assert custom["run_id"] == start["run_id"]
    (end,) = [e for e in events if e["event"] == "on_chat_model_end"]
    assert custom["data"]["trace_id"] == end["data"]["output"].response_metadata["trace_id"]


@pytest.mark.parametrize("kind", ["serving", "responses"])
async def test_astream_events_of_a_chain_and_of_a_node_that_invokes(
    serving: LocalEndpoint, kind: str
) -> None:
    llm = chat(kind, serving)
    prompt = ChatPromptTemplate.from_messages([("user", "{question}")])
    chain = prompt | llm | StrOutputParser()
    # A LangGraph-style node calls invoke(); astream_events makes LangChain stream under it.
    node = RunnableLambda(lambda state: llm.invoke(state["question"]).text)
    for runnable in (chain, node):
        script(serving, kind, Reply.text("It shipped."))
        events = [e async for e in runnable.astream_events({"question": "42?"}, version="v2")]
        (start,) = [e for e in events if e["event"] == "on_chat_model_start"]
        customs = [e for e in events if e["event"] == "on_custom_event"]
        assert [(e["name"], e["run_id"]) for e in customs] == [
            ("databricks_trace", start["run_id"])
        ]
        assert customs[0]["data"]["trace_id"].startswith("tr-")


def test_streaming_field_invoke_reports_on_the_model_run(serving: LocalEndpoint) -> None:
    script(serving, "serving", Reply.text(["a", "b"]))
    seen = Seen()
    message = chat("serving", serving, streaming=True).invoke("hi", {"callbacks": [seen]})
    assert serving.last_request.body["stream"] is True
    assert [(n, rid) for n, rid, _ in seen.events] == [("databricks_trace", seen.model_runs[0])]
    assert seen.events[0][2]["trace_id"] == message.response_metadata["trace_id"]


def test_a_consumer_that_stops_early_still_gets_the_event_before_the_last_chunk(
    serving: LocalEndpoint,
) -> None:
    script(serving, "responses", Reply.text(["one ", "two"]))
    seen = Seen()
    for chunk in chat("responses", serving).stream("hi", {"callbacks": [seen]}):
        if chunk.response_metadata.get("trace_id"):
            break
    assert [name for name, _, _ in seen.events] == ["databricks_trace"]


def test_bad_trace_json_never_breaks_the_call(serving: LocalEndpoint) -> None:
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}}],
        "databricks_output": {"trace": {"info": "garbage"}, "databricks_request_id": "r-1"},
    }
    script(serving, "serving", RawReply(body=body))
    seen = Seen()
    message = chat("serving", serving, return_trace=False).invoke("hi", {"callbacks": [seen]})
    assert message.text == "ok"
    assert message.response_metadata["trace"] == {"info": "garbage"}  # kept as it came
    with pytest.raises(TraceParseError, match="'info' object"):
        get_trace(message)
    assert seen.events[0][2]["trace"] == {"info": "garbage"}


# -- AgentEndpoint --------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
async def test_agent_endpoint_trace_reaches_response_event_and_collector(
    serving: LocalEndpoint, mode: str
) -> None:
    script(serving, "responses", Reply.text("It shipped.", steps=[STEP], usage=(9, 4)))
    agent = AgentEndpoint("responder", host=serving.host, token=serving.token, return_trace=True)
    seen, collector = Seen(), TraceCollector()
    out = await call(agent, mode, "where is order 42?", {"callbacks": [seen, collector]})
    response: AgentResponse = out[-1].response if mode.endswith("stream") else out

    trace = get_trace(response)
    assert trace is not None and trace.trace_id == response.trace_id
    assert [s.name for s in trace.find(span_type="TOOL")] == ["lookup_order"]
    (run_id,) = seen.chain_runs  # the AgentEndpoint's own run
    assert [(n, rid) for n, rid, _ in seen.events] == [("databricks_trace", run_id)]
    (entry,) = collector
    assert (entry.run_id, entry.endpoint, entry.trace_id) == (run_id, "responder", trace.trace_id)
    assert entry.parsed().tree() == trace.tree()


# -- a trace id alone (MLflow AgentServer's x-mlflow-return-trace-id) ----------------------------
@pytest.mark.parametrize("mode", MODES)
async def test_agentserver_trace_id_alone_is_surfaced_the_same_way(
    agent_server: Any, mode: str
) -> None:
    llm = ChatDatabricksResponses(
        endpoint="agent", base_url=agent_server.url, token="t", return_trace=True
    )
    agent = AgentEndpoint(chat=llm)
    for runnable in (llm, agent):
        seen = Seen()
        out = await call(runnable, mode, "hello", {"callbacks": [seen]})
        last = out[-1] if mode.endswith("stream") else out
        if isinstance(runnable, AgentEndpoint):
            holder = last.response if mode.endswith("stream") else last
        else:
            holder = total(out) if mode.endswith("stream") else out
        trace_id = get_trace_id(holder)
        assert trace_id in {path.name for path in agent_server.trace_dirs()}
        assert get_trace(holder) is None  # AgentServer returns the id only
        ((name, _, data),) = seen.events
        assert (name, data["trace_id"], data["trace"]) == ("databricks_trace", trace_id, None)
        if not isinstance(runnable, AgentEndpoint):
            ((_, result),) = seen.llm_ends
            assert get_trace_id(result) == trace_id


# -- TraceCollector over a chain ------------------------------------------------------------------
async def test_collector_keys_every_trace_of_a_run_by_run_id_and_endpoint(
    serving: LocalEndpoint,
) -> None:
    queue(serving, Reply.text("from chat"), Reply.text("again"), name="chat")
    queue(serving, Reply.text("from responder"), Reply.text("agent says"), name="responder")
    fan_out = RunnableParallel(
        chat=chat("serving", serving) | StrOutputParser(),
        responder=chat("responses", serving) | StrOutputParser(),
        agent=AgentEndpoint("responder", host=serving.host, token=serving.token, return_trace=True)
        | RunnableLambda(lambda reply: reply.text),
    )
    seen, collector = Seen(), TraceCollector()
    result = await fan_out.ainvoke("hi", {"callbacks": [seen, collector], "tags": ["demo"]})
    assert sorted(result.values()) == ["agent says", "from chat", "from responder"]

    assert len(collector) == 3
    assert {e: len(v) for e, v in collector.by_endpoint.items()} == {"chat": 1, "responder": 2}
    assert set(collector.by_run_id) == {rid for _, rid, _ in seen.events}
    assert set(collector.by_run_id) <= set(seen.model_runs) | set(seen.chain_runs)
    assert all("demo" in entry.tags for entry in collector)
    assert {t.trace_id for t in collector.traces()} == {e.trace_id for e in collector}
    # A second run with the same collector adds to it; clear() starts over.
    chat("serving", serving).invoke("hi", {"callbacks": [collector]})
    assert len(collector.for_endpoint("chat")) == 2
    collector.clear()
    assert list(collector) == []


def test_collector_keeps_a_bad_trace_for_inspection(serving: LocalEndpoint) -> None:
    body = {
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}}],
        "databricks_output": {"trace": {"info": {"trace_id": "tr-1"}, "data": {"spans": [7]}}},
    }
    script(serving, "serving", RawReply(body=body))
    collector = TraceCollector()
    reply = chat("serving", serving, return_trace=False).invoke("hi", {"callbacks": [collector]})
    assert isinstance(reply, AIMessage)
    (entry,) = collector
    assert entry.trace_id == "tr-1"
    with pytest.raises(TraceParseError, match="span 0"):
        entry.parsed()
    with pytest.raises(TraceParseError):
        collector.traces()


async def test_collector_over_a_langgraph_graph_knows_each_node(serving: LocalEndpoint) -> None:
    graph_module = pytest.importorskip("langgraph.graph")
    queue(serving, Reply.text("Checking order 42."), name="chat")
    queue(serving, Reply.text("It shipped.", steps=[STEP]), name="responder")
    llm = chat("serving", serving)
    agent = AgentEndpoint("responder", host=serving.host, token=serving.token, return_trace=True)

    def triage(state: dict[str, Any]) -> dict[str, Any]:
        return {"messages": [llm.invoke(state["messages"])]}

    builder = graph_module.StateGraph(graph_module.MessagesState)
    builder.add_node("triage", triage)
    builder.add_node("support", agent.as_node())
    builder.add_edge(graph_module.START, "triage")
    builder.add_edge("triage", "support")
    graph = builder.compile()

    collector = TraceCollector()
    state = await graph.ainvoke(
        {"messages": [("user", "where is 42?")]}, {"callbacks": [collector]}
    )
    assert state["messages"][-1].text == "It shipped."
    assert [(e.endpoint, e.metadata["langgraph_node"]) for e in collector] == [
        ("chat", "triage"),
        ("responder", "support"),
    ]
    assert [s.name for s in collector.for_endpoint("responder")[0].parsed().spans] == [
        "responder",
        "lookup_order",
        "chat_model",
    ]
