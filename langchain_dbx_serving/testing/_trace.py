"""A faithful MLflow trace (schema V3, ``Trace.to_dict()`` of MLflow 3.x) for one request.

Model Serving returns such a trace under ``databricks_output.trace`` when the request asks for
``databricks_options: {"return_trace": true}``. The shape matches MLflow 3.17's output: ``info``
with ``trace_id`` ``"tr-<32 hex>"``, ``trace_location``, ISO 8601 ``request_time``,
``execution_duration_ms``, ``state``, previews, ``trace_metadata`` and ``tags``; ``data.spans``
with base64 ids, nanosecond times, a ``status`` object and attributes whose values are
JSON-encoded strings (``mlflow.spanType``, ``mlflow.spanInputs``, ``mlflow.spanOutputs``...).

Everything goes through :func:`build_trace`, so that it can later defer to MLflow itself.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from langchain_dbx_serving.testing.replies import ToolStep, Usage

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
