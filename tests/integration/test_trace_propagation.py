"""``traceparent`` on calls made inside an active span, ``trace_destination``, no double spans.

Every class (chat completions, responses, ``AgentEndpoint``, embeddings) and every call path
(invoke, ainvoke, stream, astream) is checked against what the local endpoint received.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.output_parsers import StrOutputParser

from langchain_dbx_serving import (
    AgentEndpoint,
    ChatDatabricksResponses,
    ChatDatabricksServing,
    DatabricksServingEmbeddings,
    TraceCollector,
    get_trace,
)
from langchain_dbx_serving.testing import HashEmbeddingBackend, LocalEndpoint, Reply
from tests.integration.test_traces import MODES, call
from tests.support.serving import queue
from tests.unit import test_tracing_mlflow

mlflow_store = test_tracing_mlflow.mlflow_store

TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}")
STEP_REPLY = Reply.text("It shipped.")


def expected_traceparent(span: Any) -> str:
    """What MLflow itself sends for ``span`` (its distributed-tracing client helper)."""
    from mlflow.tracing.distributed import _get_tracing_headers_from_span

    return _get_tracing_headers_from_span(span)["traceparent"]


def runnable(kind: str, serving: LocalEndpoint, **fields: Any) -> Any:
    common = {"host": serving.host, "token": serving.token, **fields}
    if kind == "serving":
        return ChatDatabricksServing(endpoint="chat", **common)
    if kind == "responses":
        return ChatDatabricksResponses(endpoint="responder", **common)
    return AgentEndpoint("responder", **common)


def script(serving: LocalEndpoint, kind: str, *replies: Any) -> None:
    queue(serving, *replies, name="chat" if kind == "serving" else "responder")


def received_traceparent(serving: LocalEndpoint) -> str | None:
    return serving.last_request.headers.get("traceparent")


# -- sent inside a span, never outside ---------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", ["serving", "responses", "agent"])
async def test_traceparent_is_the_active_mlflow_span(
    serving: LocalEndpoint, mlflow_store: Any, kind: str, mode: str
) -> None:
    mlflow = mlflow_store
    script(serving, kind, STEP_REPLY)
    with mlflow.start_span("caller") as span:
        await call(runnable(kind, serving), mode, "hi", {})
    sent = received_traceparent(serving)
    assert sent == expected_traceparent(span)
    match = TRACEPARENT.fullmatch(sent)
    assert match and match.group(2) == span.span_id
    assert span.trace_id == "tr-" + match.group(1)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", ["serving", "responses", "agent"])
async def test_no_span_no_traceparent(
    serving: LocalEndpoint, mlflow_store: Any, kind: str, mode: str
) -> None:
    script(serving, kind, STEP_REPLY)
    await call(runnable(kind, serving), mode, "hi", {})
    assert "traceparent" not in serving.last_request.headers


@pytest.mark.parametrize("kind", ["serving", "responses", "agent"])
async def test_propagation_turned_off_by_field_or_bound_kwarg(
    serving: LocalEndpoint, mlflow_store: Any, kind: str
) -> None:
    mlflow = mlflow_store
    script(serving, kind, STEP_REPLY, STEP_REPLY)
    with mlflow.start_span("caller"):
        await call(runnable(kind, serving, propagate_trace_context=False), "ainvoke", "hi", {})
        assert "traceparent" not in serving.last_request.headers
        if kind != "agent":
            bound = runnable(kind, serving).bind(propagate_trace_context=False)
            await call(bound, "invoke", "hi", {})
            assert "traceparent" not in serving.last_request.headers
            assert "propagate_trace_context" not in serving.last_request.body
        else:
            await call(runnable(kind, serving), "invoke", "hi", {})  # on by default
            assert "traceparent" in serving.last_request.headers


@pytest.fixture(scope="module")
def _embedding_endpoint() -> Iterator[LocalEndpoint]:
    with LocalEndpoint({"hash": HashEmbeddingBackend(dimensions=8)}) as ep:
        yield ep


async def test_embeddings_send_traceparent_on_every_batch(
    _embedding_endpoint: LocalEndpoint, mlflow_store: Any
) -> None:
    mlflow, ep = mlflow_store, _embedding_endpoint
    ep.requests.clear()
    embeddings = DatabricksServingEmbeddings(
        endpoint="hash", host=ep.host, token=ep.token, batch_size=2
    )
    with mlflow.start_span("index") as span:
        embeddings.embed_documents(["a", "b", "c"])
        await embeddings.aembed_documents(["d", "e", "f"])
        await embeddings.aembed_query("g")
    embeddings.embed_query("outside")
    sent = [request.headers.get("traceparent") for request in ep.requests]
    assert sent == [expected_traceparent(span)] * 5 + [None]
    off = DatabricksServingEmbeddings(
        endpoint="hash", host=ep.host, token=ep.token, propagate_trace_context=False
    )
    with mlflow.start_span("index"):
        off.embed_query("x")
    assert "traceparent" not in ep.last_request.headers


# -- the span that represents the call ------------------------------------------------------------
@pytest.mark.parametrize("kind", ["responses", "agent"])
async def test_with_langchain_autolog_the_traceparent_is_the_calls_own_span(
    serving: LocalEndpoint, mlflow_store: Any, kind: str
) -> None:
    mlflow = mlflow_store
    pytest.importorskip("mlflow.langchain")
    mlflow.langchain.autolog()
    try:
        for mode in ("invoke", "astream"):
            script(serving, kind, STEP_REPLY)
            chain = runnable(kind, serving) | (
                StrOutputParser() if kind != "agent" else (lambda reply: reply)
            )
            await call(chain, mode, "hi", {})
            trace = mlflow.get_trace(mlflow.get_last_active_trace_id())
            (model,) = [s for s in trace.data.spans if s.span_type == "CHAT_MODEL"]
            assert model.name == ("ChatDatabricksResponses" if kind != "agent" else "responder")
            match = TRACEPARENT.fullmatch(received_traceparent(serving))
            assert match and match.group(2) == model.span_id, mode
            assert trace.info.trace_id == "tr-" + match.group(1)
    finally:
        mlflow.langchain.autolog(disable=True)


def test_opentelemetry_span_without_mlflow_span(serving: LocalEndpoint) -> None:
    sdk = pytest.importorskip("opentelemetry.sdk.trace")
    tracer = sdk.TracerProvider().get_tracer("caller")
    queue(serving, STEP_REPLY)
    with tracer.start_as_current_span("otel-caller") as span:
        runnable("serving", serving).invoke("hi")
    context = span.get_span_context()
    flags = int(context.trace_flags)
    expected = f"00-{context.trace_id:032x}-{context.span_id:016x}-{flags:02x}"
    assert received_traceparent(serving) == expected


# -- trace_destination ----------------------------------------------------------------------------
DESTINATION = {"catalog_name": "main", "schema_name": "agents", "table_prefix": "support"}


@pytest.mark.parametrize("kind", ["serving", "responses", "agent"])
async def test_trace_destination_is_sent_in_the_body(serving: LocalEndpoint, kind: str) -> None:
    script(serving, kind, STEP_REPLY, STEP_REPLY)
    await call(runnable(kind, serving, trace_destination=DESTINATION), "ainvoke", "hi", {})
    assert serving.last_request.body["trace_destination"] == DESTINATION
    other = {"catalog_name": "dev", "schema_name": "traces"}
    target = runnable(kind, serving)
    if kind == "agent":
        await call(target, "astream", {"input": "hi", "trace_destination": other}, {})
    else:
        await call(target.bind(trace_destination=other), "astream", "hi", {})
    assert serving.last_request.body["trace_destination"] == other


# -- no double spans ------------------------------------------------------------------------------
def server_trace(mlflow: Any) -> dict[str, Any]:
    with (
        mlflow.start_span("server-root", span_type="AGENT"),
        mlflow.start_span("server-tool", span_type="TOOL"),
    ):
        pass
    return mlflow.get_trace(mlflow.get_last_active_trace_id()).to_dict()


def joined(raw: dict[str, Any], caller: Any, *, same_trace_id: bool) -> dict[str, Any]:
    """``raw`` as a server that honoured our traceparent returns it: its root's parent is the
    caller's span, and (``same_trace_id``) its trace id is the caller's."""
    raw["data"]["spans"][0]["parent_span_id"] = base64.b64encode(
        bytes.fromhex(caller.span_id)
    ).decode()
    if same_trace_id:
        raw["info"]["trace_id"] = caller.trace_id
    return raw


@pytest.mark.parametrize("same_trace_id", [True, False])
@pytest.mark.parametrize("kind", ["serving", "agent"])
async def test_a_trace_the_server_joined_is_not_merged_again(
    serving: LocalEndpoint, mlflow_store: Any, kind: str, same_trace_id: bool
) -> None:
    from langchain_dbx_serving.testing import RawReply

    mlflow = mlflow_store
    collector = TraceCollector()
    raw = server_trace(mlflow)
    with mlflow.start_span("caller") as caller:
        returned = joined(raw, caller, same_trace_id=same_trace_id)
        if kind == "serving":
            message = {"role": "assistant", "content": "ok"}
            body = {"choices": [{"index": 0, "message": message}]}
        else:
            item = {"type": "message", "id": "m", "role": "assistant", "content": "ok"}
            body = {"object": "response", "output": [item]}
        body["databricks_output"] = {"trace": returned}
        script(serving, kind, RawReply(body=body))
        out = await call(runnable(kind, serving), "ainvoke", "hi", {"callbacks": [collector]})
    assert get_trace(out).trace_id == returned["info"]["trace_id"]  # still surfaced
    (entry,) = collector
    assert entry.trace == returned
    names = [s.name for s in mlflow.get_trace(caller.trace_id).data.spans]
    assert names == ["caller"]  # the server's spans are not copied a second time
