"""Merging a returned trace never damages the caller's MLflow trace, whatever store either uses.

Returned traces are made by real MLflow in other processes: a file store, a SQLite store, the
SQLite trace with the tags real Databricks traces carry (found in MLflow's source: the
immutable storage tags of ``mlflow.utils.mlflow_tags.IMMUTABLE_TAGS`` and the metadata MLflow's
serving processor writes), and the trace of a real ``AgentServer`` on SQLite. The caller traces
to a file store or to SQLite, in this process. Each time the caller's trace is read back from
its store and checked span by span, the caller's own spans first.

Before the fix, a returned trace tagged ``mlflow.trace.spansLocation: TRACKING_STORE`` made the
file-store caller's whole trace unreadable (``mlflow.get_trace`` gave ``None``), and an archived
one (``ARCHIVE_REPO`` + ``mlflow.trace.archiveLocation``) left the SQLite caller's trace empty.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from langchain_dbx_serving import AgentEndpoint, ChatDatabricksResponses, ChatDatabricksServing
from langchain_dbx_serving import get_trace as parse_trace
from langchain_dbx_serving.testing import LocalEndpoint, RawReply
from tests.support import mlflow_process
from tests.support.agentserver import start_agent_server
from tests.support.serving import queue
from tests.unit import test_tracing_mlflow

mlflow_store = test_tracing_mlflow.mlflow_store  # the caller on a file store

# What MLflow's source says a Databricks trace may carry besides what a local store adds.
DATABRICKS_TAGS = {
    "mlflow.trace.spansLocation": "ARCHIVE_REPO",
    "mlflow.trace.archiveLocation": "dbfs:/databricks/mlflow-tracking/archive/tr-x",
    "mlflow.trace.archivalFailure": "false",
}
DATABRICKS_METADATA = {
    "mlflow.databricks.modelServingEndpointName": "support-agent",
    "mlflow.modelId": "m-0123456789abcdef",
    "mlflow.sourceRun": "0123456789abcdef0123456789abcdef",
    "mlflow.trace.session": "session-7",
    "mlflow.trace.user": "ana@example.com",
}
REMOTE_KINDS = ["file", "sqlite", "databricks", "agentserver"]
# Keys the merge must never bring onto the caller's trace (tags or metadata).
FOREIGN_KEYS = {*DATABRICKS_TAGS, *DATABRICKS_METADATA, "mlflow.trace.sizeStats"}


# -- returned traces, made in other processes ---------------------------------------------------
@pytest.fixture(scope="module")
def remote_traces(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    pytest.importorskip("sqlalchemy")
    root = tmp_path_factory.mktemp("remote-traces")
    file_uri = (root / "file-store").as_uri()
    traces = {
        "file": mlflow_process.make_trace(file_uri, root / "file"),
        "sqlite": mlflow_process.make_trace(mlflow_process.sqlite_uri(root / "r.db"), root / "sq"),
    }
    databricks = copy.deepcopy(traces["sqlite"])
    databricks["info"]["tags"].update(DATABRICKS_TAGS)
    databricks["info"]["trace_metadata"].update(DATABRICKS_METADATA)
    for span in databricks["data"]["spans"]:
        span["attributes"]["mlflow.experimentId"] = json.dumps("4242")
    traces["databricks"] = databricks

    # A real AgentServer tracing to SQLite: it returns the trace id; the trace is read back.
    server_db = mlflow_process.sqlite_uri(root / "agentserver.db")
    mlflow_process.make_trace(server_db, root / "as")  # creates the DB, artifacts under root
    env = mlflow_process.store_env(server_db)
    with start_agent_server(tracking_dir=root / "as-mlruns", env=env) as server:
        agent = ChatDatabricksResponses(
            endpoint="agent", base_url=server.url, token="t", return_trace=True
        )
        trace_id = agent.invoke("lookup refunds").response_metadata["trace_id"]
    served = mlflow_process.read_trace(server_db, trace_id, root / "as")
    assert served is not None
    traces["agentserver"] = served
    return traces


def test_the_returned_traces_carry_the_tags_that_broke_the_merge(
    remote_traces: dict[str, dict[str, Any]],
) -> None:
    tags = {kind: trace["info"]["tags"] for kind, trace in remote_traces.items()}
    assert "mlflow.artifactLocation" in tags["file"]
    for kind in ("sqlite", "agentserver"):
        assert tags[kind]["mlflow.trace.spansLocation"] == "TRACKING_STORE"
    assert tags["databricks"]["mlflow.trace.spansLocation"] == "ARCHIVE_REPO"


# -- the caller's store ---------------------------------------------------------------------------
@pytest.fixture
def mlflow_sqlite_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The mlflow module, tracing to a SQLite store under ``tmp_path`` (artifacts there too)."""
    mlflow = pytest.importorskip("mlflow")
    pytest.importorskip("sqlalchemy")
    monkeypatch.chdir(tmp_path)  # MLflow puts a SQL store's default artifact root in ./mlruns
    for name, value in mlflow_process.store_env(
        mlflow_process.sqlite_uri(tmp_path / "caller.db")
    ).items():
        monkeypatch.setenv(name, value)
    mlflow.tracing.reset()
    yield mlflow
    mlflow.tracing.reset()


@pytest.fixture(params=["file", "sqlite"])
def caller_store(request: pytest.FixtureRequest) -> Any:
    fixture = "mlflow_store" if request.param == "file" else "mlflow_sqlite_store"
    return request.getfixturevalue(fixture)


def reply_with(remote: dict[str, Any]) -> RawReply:
    return RawReply(
        body={
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "It shipped."}}],
            "databricks_output": {"trace": remote, "databricks_request_id": "req-1"},
        }
    )


def plain_trace_keys(mlflow: Any) -> tuple[set[str], set[str]]:
    """The tag and metadata keys this store gives a trace of the caller's own."""
    with mlflow.start_span("plain") as span:
        pass
    plain = mlflow.get_trace(span.trace_id)
    return set(plain.info.tags), set(plain.info.trace_metadata)


def check_merged(mlflow: Any, outer: Any, remote: dict[str, Any]) -> None:
    """The caller's trace reads back whole: its spans first, then every remote span intact."""
    merged = mlflow.get_trace(outer.trace_id)
    assert merged is not None, "the caller's trace cannot be read back"
    spans = merged.data.spans
    by_id = {span.span_id: span for span in spans}
    assert spans[0].span_id == outer.span_id and spans[0].parent_id is None
    (before,) = [s for s in spans if s.name == "before"]
    assert before.parent_id == outer.span_id
    assert merged.info.tags["mlflow.traceName"] == "outer"

    expected = parse_trace(remote)
    assert len(spans) == 2 + len(expected.spans)
    for span in expected.spans:
        copy_ = by_id[span.span_id]
        parent = outer.span_id if span.parent_id is None else span.parent_id
        assert (copy_.name, copy_.parent_id, copy_.span_type) == (
            span.name,
            parent,
            span.span_type,
        )
        assert copy_.inputs == span.inputs and copy_.outputs == span.outputs
        assert copy_.status.status_code.value == span.status
        assert copy_.trace_id == outer.trace_id
        assert "mlflow.experimentId" not in copy_.attributes
    root = by_id[expected.root.span_id]
    assert root.attributes["databricks.remote.trace_id"] == expected.trace_id
    assert root.attributes["databricks.remote.tags"]["mlflow.traceName"] == expected.root.name

    tag_keys, metadata_keys = plain_trace_keys(mlflow)
    assert set(merged.info.tags) == tag_keys
    assert set(merged.info.trace_metadata) - metadata_keys <= {"mlflow.trace.tokenUsage"}
    assert not FOREIGN_KEYS & (set(merged.info.tags) - tag_keys)
    if expected.token_usage:  # the caller's own total, aggregated over the merged spans
        assert merged.info.token_usage == {**expected.token_usage}


@pytest.mark.parametrize("remote_kind", REMOTE_KINDS)
def test_merge_keeps_the_callers_trace_readable(
    serving: LocalEndpoint,
    caller_store: Any,
    remote_traces: dict[str, dict[str, Any]],
    remote_kind: str,
) -> None:
    mlflow = caller_store
    remote = remote_traces[remote_kind]
    queue(serving, reply_with(remote))
    llm = ChatDatabricksServing(endpoint="chat", host=serving.host, token=serving.token)
    with mlflow.start_span("outer") as outer:
        with mlflow.start_span("before"):
            pass
        message = llm.invoke("where is order 42?")
    assert message.response_metadata["trace"] == remote  # the reply itself is left as it came
    check_merged(mlflow, outer, remote)


@pytest.mark.parametrize("mode", ["ainvoke", "astream"])
async def test_agent_endpoint_merge_keeps_the_callers_trace_readable(
    serving: LocalEndpoint, mlflow_store: Any, remote_traces: dict[str, Any], mode: str
) -> None:
    mlflow = mlflow_store
    remote = remote_traces["agentserver"]
    item = {
        "type": "message",
        "id": "m1",
        "role": "assistant",
        "content": [{"type": "output_text", "text": "It shipped."}],
    }
    body = {"object": "response", "output": [item], "databricks_output": {"trace": remote}}
    queue(serving, RawReply(body=body), name="responder")
    agent = AgentEndpoint("responder", host=serving.host, token=serving.token)
    with mlflow.start_span("outer") as outer:
        with mlflow.start_span("before"):
            pass
        if mode == "ainvoke":
            reply = await agent.ainvoke("where is order 42?")
        else:
            reply = [event async for event in agent.astream("where is order 42?")][-1].response
    assert reply.text == "It shipped."
    check_merged(mlflow, outer, remote)
