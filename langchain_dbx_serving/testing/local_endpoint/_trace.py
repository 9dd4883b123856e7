"""The MLflow trace (schema V3, ``Trace.to_dict()`` of MLflow 3.x) of one served request.

Model Serving returns such a trace under ``databricks_output.trace`` when the request asks for
``databricks_options: {"return_trace": true}``: MLflow traces the served model and its
inference-table exporter hands over ``Trace.to_dict()``. The local endpoint does the same
with :class:`TraceRecorder`:

- when MLflow tracing can work in this process (mlflow installed and a tracking URI set by
  the user, e.g. ``MLFLOW_TRACKING_URI=file:///tmp/mlruns``), the backend runs inside an
  MLflow span, so spans the backend makes itself (``@mlflow.trace``, a ``ResponsesAgent``,
  LangChain autolog) nest under it, and the returned trace is MLflow's own;
- otherwise (no mlflow, no store, a ``databricks`` URI, any MLflow failure) :func:`build_trace`
  builds a faithful copy of MLflow 3.17's output: ``info`` with ``trace_id`` ``"tr-<32 hex>"``,
  ``trace_location``, ISO 8601 ``request_time``, ``execution_duration_ms``, ``state``,
  previews, ``trace_metadata`` and ``tags``; ``data.spans`` with base64 ids, nanosecond times,
  a ``status`` object and attributes whose values are JSON-encoded strings.

The endpoint never sets MLflow environment variables, never imports mlflow unless the user
configured a tracking URI, and never writes files the user's configuration did not ask for.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import sys
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from langchain_dbx_serving.testing.local_endpoint.replies import (
    ErrorReply,
    RawReply,
    ToolStep,
    Usage,
)

logger = logging.getLogger("langchain_dbx_serving.testing")

_PREVIEW = 1000


def new_trace_id() -> str:
    """A V3 trace id: ``tr-`` and 32 hex digits."""
    return "tr-" + uuid.uuid4().hex


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _attr(value: Any) -> str:
    return json.dumps(value)


def _preview(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text[:_PREVIEW]


def _span(
    trace_id: str,
    parent: str | None,
    name: str,
    span_type: str,
    times: tuple[int, int],
    io: tuple[Any, Any],
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One span: ``io`` is (inputs, outputs); attribute values are JSON-encoded strings."""
    return {
        "trace_id": _b64(bytes.fromhex(trace_id[3:])),
        "span_id": _b64(os.urandom(8)),
        "parent_span_id": parent,
        "name": name,
        "start_time_unix_nano": times[0],
        "end_time_unix_nano": times[1],
        "events": [],
        "status": {"code": "STATUS_CODE_OK", "message": ""},
        "attributes": {
            "mlflow.traceRequestId": _attr(trace_id),
            "mlflow.spanType": _attr(span_type),
            "mlflow.spanFunctionName": _attr(name),
            "mlflow.spanInputs": _attr(io[0]),
            "mlflow.spanOutputs": _attr(io[1]),
            **{k: _attr(v) for k, v in (extra or {}).items()},
        },
        "links": [],
    }


def _usage_dict(usage: Usage) -> dict[str, int]:
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "total_tokens": usage.total,
    }


def _iso(ns: int) -> str:
    moment = datetime.fromtimestamp(ns / 1e9, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _mark_error(span: dict[str, Any], message: str, at_ns: int) -> None:
    span["status"] = {"code": "STATUS_CODE_ERROR", "message": message}
    span["events"].append(
        {
            "name": "exception",
            "time_unix_nano": at_ns,
            "attributes": {"exception.type": "Exception", "exception.message": message},
        }
    )


@dataclass(frozen=True)
class TraceFacts:
    """What the endpoint knows about one served request, to build its trace from."""

    endpoint: str
    agent: bool
    request: Mapping[str, Any]
    response: Any
    answer: str
    start_ns: int
    end_ns: int
    trace_id: str = field(default_factory=new_trace_id)
    usage: Usage | None = None
    steps: Sequence[ToolStep] = ()
    client_request_id: str | None = None
    error: str | None = None


def _spans(facts: TraceFacts, end_ns: int) -> list[dict[str, Any]]:
    """An agent: ``AGENT`` root, a ``TOOL`` span per step, a ``CHAT_MODEL`` span with usage.
    A model: one ``CHAT_MODEL`` span with usage."""
    start_ns, trace_id = facts.start_ns, facts.trace_id
    usage = {"mlflow.chat.tokenUsage": _usage_dict(facts.usage)} if facts.usage else {}
    io = (facts.request, facts.response)
    if not facts.agent:
        return [_span(trace_id, None, facts.endpoint, "CHAT_MODEL", (start_ns, end_ns), io, usage)]
    root = _span(trace_id, None, facts.endpoint, "AGENT", (start_ns, end_ns), io)
    spans = [root]
    slot = (end_ns - start_ns) // (len(facts.steps) + 1)
    for i, step in enumerate(facts.steps):
        times = (start_ns + i * slot, start_ns + (i + 1) * slot)
        step_io = (step.call.arguments, step.output)
        spans.append(_span(trace_id, root["span_id"], step.name, "TOOL", times, step_io))
    times = (start_ns + len(facts.steps) * slot, end_ns)
    model_io = (
        {"messages": facts.request.get("messages", facts.request.get("input"))},
        facts.answer,
    )
    spans.append(
        _span(trace_id, root["span_id"], "chat_model", "CHAT_MODEL", times, model_io, usage)
    )
    return spans


def _info(facts: TraceFacts, end_ns: int) -> dict[str, Any]:
    metadata = {
        "mlflow.trace_schema.version": "3",
        "mlflow.traceInputs": _preview(facts.request),
        "mlflow.traceOutputs": _preview(facts.response),
        "mlflow.source.type": "MODEL_SERVING",
    }
    if facts.usage:
        metadata["mlflow.trace.tokenUsage"] = json.dumps(_usage_dict(facts.usage))
    digest = hashlib.sha256(facts.endpoint.encode()).hexdigest()[:12]
    return {
        "trace_id": facts.trace_id,
        "client_request_id": facts.client_request_id,
        "trace_location": {
            "type": "MLFLOW_EXPERIMENT",
            "mlflow_experiment": {"experiment_id": str(int(digest, 16)).zfill(16)},
        },
        "request_time": _iso(facts.start_ns),
        "execution_duration_ms": (end_ns - facts.start_ns) // 1_000_000,
        "state": "ERROR" if facts.error else "OK",
        "request_preview": _preview(facts.request),
        "response_preview": _preview(facts.answer),
        "trace_metadata": metadata,
        "tags": {"mlflow.traceName": facts.endpoint},
    }


def build_trace(facts: TraceFacts) -> dict[str, Any]:
    """The V3 trace dict of one served request (``Trace.to_dict()`` shape).

    ``facts.error`` marks the root span (with an exception event) and the trace as failed.
    """
    end_ns = max(facts.end_ns, facts.start_ns + len(facts.steps) + 2)
    spans = _spans(facts, end_ns)
    if facts.error:
        _mark_error(spans[0], facts.error, end_ns)
    return {"info": _info(facts, end_ns), "data": {"spans": spans}}


# -- MLflow's own trace -----------------------------------------------------------------------
_NO_OP_TRACE_ID = "MLFLOW_NO_OP_SPAN_TRACE_ID"


def _mlflow_for_tracing() -> Any:
    """The mlflow module when tracing can record here, else ``None`` (see the module doc)."""
    mlflow = sys.modules.get("mlflow")
    if mlflow is None:
        if not os.environ.get("MLFLOW_TRACKING_URI"):
            return None  # nothing configured: do not pay for importing mlflow
        try:
            import mlflow
        except ImportError:
            return None
    try:
        from mlflow.tracking._tracking_service.utils import is_tracking_uri_set

        configured = is_tracking_uri_set()
    except ImportError:  # another MLflow layout: trust only what the environment says
        configured = bool(os.environ.get("MLFLOW_TRACKING_URI"))
    # Without a configured URI MLflow would use ./mlruns or ./mlflow.db; with a databricks URI
    # a local test endpoint would write traces to a real workspace.
    if not configured or str(mlflow.get_tracking_uri()).startswith("databricks"):
        return None
    return mlflow


def _active(span: Any) -> contextlib.AbstractContextManager[Any]:
    """Make ``span`` the current MLflow span (so the backend's own spans nest under it)."""
    try:
        from mlflow.tracing.provider import safe_set_span_in_context
    except ImportError:
        return contextlib.nullcontext()
    return safe_set_span_in_context(span)


class TraceRecorder:
    """Runs one request's backend inside an MLflow span and returns its trace.

    An idle recorder (``TraceRecorder()``, or when MLflow cannot trace here) runs the backend
    as it is and :meth:`finish` builds the trace with :func:`build_trace`.

    Example::

        recorder = TraceRecorder.start("my-agent", agent=True, body=body)
        result = recorder.call(backend.respond, request)
        ...  # the reply is streamed or collected
        trace = recorder.finish(facts)
    """

    def __init__(self, span: Any = None, mlflow: Any = None) -> None:
        self._span = span
        self._mlflow = mlflow

    @property
    def trace_id(self) -> str | None:
        """MLflow's id of the trace being recorded (``None`` when idle)."""
        return self._span.trace_id if self._span is not None else None

    @classmethod
    def start(cls, endpoint: str, *, agent: bool, body: Mapping[str, Any]) -> TraceRecorder:
        """A recorder for a request; recording only if it asked for a trace and MLflow can."""
        options = body.get("databricks_options")
        if not (isinstance(options, Mapping) and options.get("return_trace") is True):
            return cls()
        mlflow = _mlflow_for_tracing()
        if mlflow is None:
            return cls()
        try:
            inputs = {k: v for k, v in body.items() if k != "databricks_options"}
            span = mlflow.start_span_no_context(
                name=endpoint, span_type="AGENT" if agent else "CHAT_MODEL", inputs=inputs
            )
        except Exception:
            logger.debug("MLflow could not start a span; using the built trace", exc_info=True)
            return cls()
        if getattr(span, "trace_id", _NO_OP_TRACE_ID) == _NO_OP_TRACE_ID:
            return cls()  # tracing disabled, or no usable store
        return cls(span, mlflow)

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` with the span current; a streamed result is consumed with it current."""
        if self._span is None:
            return fn(*args)
        try:
            with _active(self._span):
                result = fn(*args)
        except Exception as exc:
            self._abandon(f"{type(exc).__name__}: {exc}")
            raise
        if isinstance(result, ErrorReply):  # no trace is returned with an HTTP error
            self._abandon(f"{result.status} {result.error_code}: {result.message}")
            return result
        if isinstance(result, RawReply) and result.events is not None:
            return dataclasses.replace(result, events=self._steps(result.events))
        if isinstance(result, Iterable) and not isinstance(result, (str, bytes, Mapping)):
            return self._steps(result)
        return result

    def _steps(self, pieces: Iterable[Any]) -> Iterator[Any]:
        iterator = iter(pieces)
        while True:
            with _active(self._span):
                try:
                    piece = next(iterator)
                except StopIteration:
                    return
            yield piece

    def _abandon(self, error: str) -> None:
        """End the span as failed: the request gets no trace, MLflow still keeps it."""
        with contextlib.suppress(Exception):
            self._span.record_exception(error)
            self._span.end()
        self._span = None

    def finish(self, facts: TraceFacts) -> dict[str, Any]:
        """End the span and return MLflow's ``Trace.to_dict()``; the built trace if that fails."""
        if self._span is None:
            return build_trace(facts)
        span, self._span = self._span, None
        try:
            return self._mlflow_trace(span, facts)
        except Exception:
            logger.debug("MLflow did not give the trace back; using the built one", exc_info=True)
            return build_trace(dataclasses.replace(facts, trace_id=span.trace_id))

    def _mlflow_trace(self, span: Any, facts: TraceFacts) -> dict[str, Any]:
        mlflow = self._mlflow
        for step, times in zip(facts.steps, _step_times(span, facts), strict=True):
            tool = mlflow.start_span_no_context(
                name=step.name,
                span_type="TOOL",
                parent_span=span,
                inputs=step.call.arguments,
                start_time_ns=times[0],
            )
            tool.end(outputs=step.output, end_time_ns=times[1])
        if facts.usage is not None:
            span.set_attribute("mlflow.chat.tokenUsage", _usage_dict(facts.usage))
        if facts.client_request_id:
            with _active(span), contextlib.suppress(Exception):
                mlflow.update_current_trace(client_request_id=facts.client_request_id)
        if facts.error:
            span.record_exception(facts.error)
        span.end(outputs=facts.response)
        trace = mlflow.get_trace(span.trace_id, silent=True)
        if trace is None:  # asynchronous trace logging: wait for the write
            mlflow.flush_trace_async_logging()
            trace = mlflow.get_trace(span.trace_id, silent=True)
        if trace is None:
            raise LookupError(f"MLflow has no trace {span.trace_id}")
        return trace.to_dict()


def _step_times(span: Any, facts: TraceFacts) -> list[tuple[int, int]]:
    """Scripted tool steps did not really run: give each a slot inside the root span."""
    start = span.start_time_ns or facts.start_ns
    slot = max((max(facts.end_ns, start) - start) // (len(facts.steps) + 1), 1)
    return [(start + i * slot, start + (i + 1) * slot) for i in range(len(facts.steps))]
