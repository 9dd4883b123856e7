"""Returned traces inside the caller's MLflow trace, and the local endpoint's real MLflow trace.

MLflow (mlflow-skinny) traces to a file store in a tmp dir (``mlflow_store``, PROTOCOLS.md
section 8). With a store configured, the local endpoint runs its backend inside an MLflow span
and returns MLflow's own ``Trace.to_dict()``, as Model Serving does.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from langchain_core.output_parsers import StrOutputParser

from langchain_dbx_serving import (
    AgentEndpoint,
    ChatDatabricksResponses,
    ChatDatabricksServing,
    get_trace,
)
from langchain_dbx_serving.testing import (
    BackendRequest,
    LocalEndpoint,
    RawReply,
    Reply,
    ResponsesAgentBackend,
    ToolStep,
)
from tests.integration.test_traces import MODES, call, total
from tests.support.serving import queue
from tests.unit import test_tracing_mlflow

mlflow_store = test_tracing_mlflow.mlflow_store  # the fixture: MLflow tracing to a tmp store

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "traces"
STEP = ToolStep("lookup_order", {"order_id": 42}, "shipped", id="call_1")


def serving_chat(serving: LocalEndpoint, **fields: Any) -> ChatDatabricksServing:
    fields.setdefault("return_trace", True)
    return ChatDatabricksServing(endpoint="chat", host=serving.host, token=serving.token, **fields)


def spans_by_name(trace: Any) -> dict[str, Any]:
    return {span.name: span for span in trace.data.spans}


# -- merging into the caller's trace -------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
async def test_remote_spans_land_under_the_callers_span(
    serving: LocalEndpoint, mlflow_store: Any, mode: str
) -> None:
    mlflow = mlflow_store
    queue(serving, Reply.text("It shipped.", steps=[STEP], usage=(9, 4)))
    with mlflow.start_span("outer") as outer:
        out = await call(serving_chat(serving), mode, "where is order 42?", {})
    message = total(out) if mode.endswith("stream") else out
    remote = get_trace(message)

    merged = mlflow.get_trace(outer.trace_id)
    names = [span.name for span in merged.data.spans]
    assert names[0] == "outer"
    assert (
        sorted(names[1:]) == sorted(span.name for span in remote.spans) == ["chat", "lookup_order"]
    )
    spans = spans_by_name(merged)
    assert spans["chat"].parent_id == outer.span_id
    assert spans["lookup_order"].parent_id == spans["chat"].span_id
    assert spans["chat"].span_type == "CHAT_MODEL" and spans["lookup_order"].span_type == "TOOL"
    assert spans["lookup_order"].outputs == "shipped"
    assert merged.info.trace_id == outer.trace_id != remote.trace_id


@pytest.mark.parametrize("mode", ["invoke", "astream"])
async def test_agent_endpoint_merges_under_an_mlflow_trace_function(
    serving: LocalEndpoint, mlflow_store: Any, mode: str
) -> None:
    mlflow = mlflow_store
    queue(serving, Reply.text("It shipped.", steps=[STEP]), name="responder")
    agent = AgentEndpoint("responder", host=serving.host, token=serving.token, return_trace=True)

    @mlflow.trace(name="support_flow")
    async def support_flow(question: str) -> str:
        out = await call(agent, mode, question, {})
        return (out[-1].response if mode == "astream" else out).text

    assert await support_flow("where is order 42?") == "It shipped."
    merged = mlflow.get_trace(mlflow.get_last_active_trace_id())
    spans = spans_by_name(merged)
    assert next(iter(spans)) == "support_flow"
    assert spans["responder"].parent_id == spans["support_flow"].span_id
    assert spans["responder"].span_type == "AGENT"
    assert spans["lookup_order"].parent_id == spans["responder"].span_id


async def test_langchain_autolog_puts_remote_spans_under_the_chat_model_span(
    serving: LocalEndpoint, mlflow_store: Any
) -> None:
    mlflow = mlflow_store
    pytest.importorskip("mlflow.langchain")
    mlflow.langchain.autolog()
    try:
        chain = (
            ChatDatabricksResponses(
                endpoint="responder", host=serving.host, token=serving.token, return_trace=True
            )
            | StrOutputParser()
        )
        for mode in ("invoke", "astream"):
            queue(serving, Reply.text("It shipped.", steps=[STEP]), name="responder")
            await call(chain, mode, "where is order 42?", {})
            spans = spans_by_name(mlflow.get_trace(mlflow.get_last_active_trace_id()))
            model = spans["ChatDatabricksResponses"]
            assert model.span_type == "CHAT_MODEL"
            assert spans["responder"].parent_id == model.span_id, mode
            assert spans["lookup_order"].parent_id == spans["responder"].span_id
    finally:
        mlflow.langchain.autolog(disable=True)


def test_merge_can_be_turned_off(serving: LocalEndpoint, mlflow_store: Any) -> None:
    mlflow = mlflow_store
    queue(serving, Reply.text("It shipped.", steps=[STEP]))
    with mlflow.start_span("outer") as outer:
        message = serving_chat(serving, merge_mlflow_trace=False).invoke("hi")
    assert get_trace(message) is not None
    assert [s.name for s in mlflow.get_trace(outer.trace_id).data.spans] == ["outer"]


def test_no_active_span_no_merge(serving: LocalEndpoint, mlflow_store: Any) -> None:
    mlflow = mlflow_store
    queue(serving, Reply.text("It shipped."))
    message = serving_chat(serving).invoke("hi")
    # The only trace in the store is the endpoint's own (its id is the returned one).
    traces = mlflow.search_traces(return_type="list")
    assert [t.info.trace_id for t in traces] == [message.response_metadata["trace_id"]]


@pytest.mark.parametrize("name", ["v2_mlflow2_0x_ids.json", "v3_mlflow35_hex_ids.json"])
def test_v2_and_mlflow35_traces_merge_in_parent_order(
    serving: LocalEndpoint, mlflow_store: Any, name: str
) -> None:
    mlflow = mlflow_store
    remote = json.loads((FIXTURES / name).read_text())
    body = {
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}}],
        "databricks_output": {"trace": remote, "databricks_request_id": "r-1"},
    }
    queue(serving, RawReply(body=body))
    with mlflow.start_span("outer") as outer:
        serving_chat(serving, return_trace=False).invoke("hi")
    merged = mlflow.get_trace(outer.trace_id)
    parsed = get_trace(remote)
    assert merged.data.spans[0].name == "outer"
    assert len(merged.data.spans) == 1 + len(parsed.spans)
    root = next(s for s in merged.data.spans if s.span_id == parsed.root.span_id)
    assert root.parent_id == outer.span_id
    for span in parsed.spans[1:]:
        copy = next(s for s in merged.data.spans if s.span_id == span.span_id)
        assert copy.parent_id == span.parent_id and copy.name == span.name


def test_a_trace_mlflow_cannot_merge_is_logged_and_the_call_succeeds(
    serving: LocalEndpoint, mlflow_store: Any, caplog: pytest.LogCaptureFixture
) -> None:
    mlflow = mlflow_store
    body = {
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}}],
        "databricks_output": {"trace": {"info": {"trace_id": "tr-1"}, "data": {"spans": "x"}}},
    }
    queue(serving, RawReply(body=body))
    with caplog.at_level(logging.WARNING), mlflow.start_span("outer") as outer:
        message = serving_chat(serving, return_trace=False).invoke("hi")
    assert message.text == "ok"
    assert "could not merge returned trace tr-1" in caplog.text
    assert [s.name for s in mlflow.get_trace(outer.trace_id).data.spans] == ["outer"]


# -- the local endpoint's own trace ---------------------------------------------------------------
def test_local_endpoint_returns_mlflow_trace_of_the_backend_call(mlflow_store: Any) -> None:
    mlflow = mlflow_store

    @mlflow.trace(span_type="RETRIEVER")
    def search(query: str) -> list[str]:
        return ["Refunds within 30 days."]

    def backend(request: BackendRequest) -> Reply:
        with mlflow.start_span("plan", span_type="CHAIN"):
            docs = search(request.messages[-1].text)
        return Reply.text(docs[0], usage=(6, 5))

    with LocalEndpoint(backend) as ep:
        llm = ChatDatabricksServing(endpoint="kb", host=ep.host, token=ep.token, return_trace=True)
        invoked, streamed = llm.invoke("refunds?"), total(list(llm.stream("refunds?")))
    for message in (invoked, streamed):
        trace = get_trace(message)
        assert [(depth, s.name, s.span_type) for depth, s in trace.walk()] == [
            (0, "kb", "CHAT_MODEL"),
            (1, "plan", "CHAIN"),
            (2, "search", "RETRIEVER"),
        ]
        assert trace.find(name="search")[0].outputs == ["Refunds within 30 days."]
        assert trace.token_usage == {"input_tokens": 6, "output_tokens": 5, "total_tokens": 11}
        # MLflow's own trace: the same id is in the store, and the shape is MLflow's.
        stored = mlflow.get_trace(trace.trace_id)
        assert stored is not None
        assert stored.to_dict()["data"] == message.response_metadata["trace"]["data"]


def test_local_endpoint_traces_a_responses_agent_and_its_stream(mlflow_store: Any) -> None:
    mlflow = mlflow_store
    from mlflow.pyfunc import ResponsesAgent
    from mlflow.types.responses import ResponsesAgentResponse, ResponsesAgentStreamEvent

    class Echo(ResponsesAgent):
        def predict(self, request: Any) -> ResponsesAgentResponse:
            item = self.create_text_output_item(_text(request), "m1")
            return ResponsesAgentResponse(output=[item])

        def predict_stream(self, request: Any) -> Any:
            with mlflow.start_span("think"):
                item = self.create_text_output_item(_text(request), "m1")
            yield ResponsesAgentStreamEvent(type="response.output_item.done", item=item)

    with LocalEndpoint({"echo-agent": ResponsesAgentBackend(Echo())}) as ep:
        agent = AgentEndpoint(
            "echo-agent", host=ep.host, token=ep.token, route="invocations", return_trace=True
        )
        invoked = agent.invoke("hello")
        streamed = list(agent.stream("hello"))[-1].response
    assert invoked.text == streamed.text == "hello"
    for response, inner in ((invoked, "predict"), (streamed, "think")):
        trace = get_trace(response)
        assert trace.root.name == "echo-agent" and trace.root.span_type == "AGENT"
        assert inner in {s.name for s in trace.spans[1:]}
        assert mlflow.get_trace(trace.trace_id) is not None


def _text(request: Any) -> str:
    return request.input[-1].content if isinstance(request.input[-1].content, str) else "?"


def test_without_a_tracking_store_the_endpoint_builds_the_trace_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # mlflow imported but nothing configured: the endpoint must not make MLflow fall back to
    # ./mlruns or ./mlflow.db in the working directory, nor need any variable set.
    mlflow = pytest.importorskip("mlflow")
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_ALLOW_FILE_STORE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    mlflow.tracing.reset()
    with LocalEndpoint([Reply.text("hi", steps=[STEP])], chat_agents=True) as ep:
        llm = ChatDatabricksServing(endpoint="x", host=ep.host, token=ep.token, return_trace=True)
        trace = get_trace(llm.invoke("hi"))
    assert [(s.name, s.span_type) for s in trace.spans] == [
        ("x", "AGENT"),
        ("lookup_order", "TOOL"),
        ("chat_model", "CHAT_MODEL"),
    ]
    assert list(tmp_path.iterdir()) == []
    mlflow.tracing.reset()
