"""Traces written by real MLflow (mlflow-skinny, file store in a tmp dir) read by ``Trace``.

The ``mlflow_store`` fixture gives MLflow tracing a store (PROTOCOLS.md section 8) through
environment variables set with monkeypatch, and resets MLflow's tracer before and after, so no
MLflow state leaks into other tests. Other trace test modules import it.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from langchain_dbx_serving import Trace, get_trace

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "traces"


@pytest.fixture
def mlflow_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The mlflow module, tracing to a file store under ``tmp_path``."""
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "mlruns").as_uri())
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.setenv("MLFLOW_ENABLE_ASYNC_TRACE_LOGGING", "false")
    mlflow.tracing.reset()
    yield mlflow
    mlflow.tracing.reset()


def real_agent_trace(mlflow: Any) -> dict[str, Any]:
    """``Trace.to_dict()`` of an agent call traced by MLflow: an AGENT root, a CHAT_MODEL span
    with token usage, a RETRIEVER span, and a TOOL span that raised (caught by the agent)."""

    @mlflow.trace(span_type="TOOL")
    def lookup_order(order_id: int) -> dict[str, Any]:
        raise TimeoutError("orders-db did not answer")

    @mlflow.trace(span_type="RETRIEVER")
    def search(query: str) -> list[dict[str, Any]]:
        return [{"page_content": "Refunds within 30 days.", "metadata": {"doc_uri": "r.md"}}]

    @mlflow.trace(name="support-agent", span_type="AGENT")
    def agent(question: str) -> str:
        search(question)
        with mlflow.start_span("chat_model", span_type="CHAT_MODEL") as span:
            span.set_inputs({"messages": [{"role": "user", "content": question}]})
            usage = {"input_tokens": 31, "output_tokens": 7, "total_tokens": 38}
            span.set_attribute("mlflow.chat.tokenUsage", usage)
            span.set_outputs("You can get a refund within 30 days.")
        with contextlib.suppress(TimeoutError):
            lookup_order(42)
        return "You can get a refund within 30 days."

    agent("refund window?")
    trace = mlflow.get_trace(mlflow.get_last_active_trace_id())
    assert trace is not None, "MLflow tracing did not record (no tracking store?)"
    return trace.to_dict()


def test_real_mlflow_v3_trace_reads_like_mlflow_reads_it(mlflow_store: Any) -> None:
    raw = real_agent_trace(mlflow_store)
    ours = Trace.from_dict(raw)
    theirs = mlflow_store.entities.Trace.from_dict(raw)

    assert ours.schema_version == 3
    assert ours.trace_id == theirs.info.trace_id
    assert ours.state == "OK"
    assert ours.execution_duration_ms == theirs.info.execution_duration
    assert ours.request_time_ms == theirs.info.request_time
    by_id = {span.span_id: span for span in theirs.data.spans}
    assert {span.span_id for span in ours.spans} == set(by_id)
    for span in ours.spans:
        mirror = by_id[span.span_id]
        assert span.parent_id == mirror.parent_id
        assert span.name == mirror.name
        assert span.span_type == mirror.span_type
        assert span.inputs == mirror.inputs
        assert span.outputs == mirror.outputs
        assert span.start_time_ns == mirror.start_time_ns
        assert span.end_time_ns == mirror.end_time_ns
        assert span.status == mirror.status.status_code.value
    assert ours.token_usage == {"input_tokens": 31, "output_tokens": 7, "total_tokens": 38}
    assert ours.token_usage == {
        k: v for k, v in (theirs.info.token_usage or {}).items() if k in ours.token_usage
    }


def test_real_trace_error_span_tree_and_find(mlflow_store: Any) -> None:
    trace = Trace.from_dict(real_agent_trace(mlflow_store))
    (tool,) = trace.find(span_type="TOOL")
    assert tool.status == "ERROR" and trace.state == "OK"
    assert tool.error == "TimeoutError: orders-db did not answer"
    assert tool.inputs == {"order_id": 42}
    assert trace.errors == [tool]
    lines = trace.tree().splitlines()
    assert lines[0].startswith(f"trace {trace.trace_id} OK, ")
    assert lines[0].endswith("4 spans, tokens 31 in / 7 out, 1 failed")
    assert lines[1].startswith("support-agent  AGENT  ")
    assert [line.split("  ")[0] for line in lines[2:]] == [
        "├── search",
        "├── chat_model",
        "└── lookup_order",
    ]
    assert "ERROR: TimeoutError: orders-db did not answer" in lines[-1]


def test_real_trace_with_microsecond_exception_time(mlflow_store: Any) -> None:
    raw = real_agent_trace(mlflow_store)
    for span in raw["data"]["spans"]:
        for event in span["events"]:
            event["time_unix_nano"] //= 1000  # as seen in recorded Databricks traffic
    (tool,) = Trace.from_dict(raw).find(span_type="TOOL")
    (event,) = tool.events
    assert tool.start_time_ns <= event.time_ns <= tool.end_time_ns


def test_get_trace_reads_the_real_trace_from_a_reply_body(mlflow_store: Any) -> None:
    raw = real_agent_trace(mlflow_store)
    body = {"choices": [], "databricks_output": {"trace": raw, "databricks_request_id": "r-1"}}
    trace = get_trace(body)
    assert trace is not None and trace.to_dict() == raw


@pytest.mark.parametrize("name", ["v2_mlflow2_0x_ids.json", "v3_mlflow35_hex_ids.json"])
def test_hand_written_fixtures_read_the_same_in_mlflow(name: str) -> None:
    mlflow = pytest.importorskip("mlflow")
    raw = json.loads((FIXTURES / name).read_text())
    ours = Trace.from_dict(raw)
    theirs = mlflow.entities.Trace.from_dict(raw)
    assert sorted((s.span_id, s.parent_id, s.name, s.status) for s in ours.spans) == sorted(
        (s.span_id, s.parent_id, s.name, s.status.status_code.value) for s in theirs.data.spans
    )
    assert [s.span_type for s in ours.spans] == [
        next(t.span_type for t in theirs.data.spans if t.span_id == s.span_id) for s in ours.spans
    ]
