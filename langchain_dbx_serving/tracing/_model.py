"""``Trace`` and ``Span``: a returned MLflow trace (schema V2 or V3), parsed for reading.

The raw dict stays available as ``Trace.to_dict()``; these models are a read-only view of it
with decoded attributes, normalised ids and times, and the span tree.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from typing import Any, Literal

from langchain_core.messages.ai import UsageMetadata, add_usage
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from langchain_dbx_serving._json import loads
from langchain_dbx_serving.errors import TraceParseError
from langchain_dbx_serving.protocols._common import map_usage, preview
from langchain_dbx_serving.tracing import _fields as f
from langchain_dbx_serving.tracing import _render

__all__ = ["Span", "SpanEvent", "Trace"]

# Where MLflow puts things (mlflow.tracing.constant.SpanAttributeKey / TraceMetadataKey).
SPAN_TYPE = "mlflow.spanType"
SPAN_INPUTS = "mlflow.spanInputs"
SPAN_OUTPUTS = "mlflow.spanOutputs"
SPAN_USAGE = "mlflow.chat.tokenUsage"
TRACE_USAGE = "mlflow.trace.tokenUsage"
TRACE_INPUTS = "mlflow.traceInputs"
TRACE_OUTPUTS = "mlflow.traceOutputs"
TRACE_NAME = "mlflow.traceName"
_MODEL_SPANS = ("CHAT_MODEL", "LLM")


class SpanEvent(BaseModel):
    """An event recorded on a span, e.g. ``exception`` with ``exception.message``."""

    model_config = ConfigDict(frozen=True)

    name: str
    time_ns: int | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)


class Span(BaseModel):
    """One span of a trace, with decoded attributes.

    Ids are lowercase hex whatever the schema wrote; times are nanoseconds since the epoch;
    ``status`` is ``"OK"``, ``"ERROR"`` or ``"UNSET"``.

    Example:
        .. code-block:: python

            span = trace.find(span_type="TOOL")[0]
            span.name, span.inputs, span.outputs, span.duration_ms, span.error
    """

    model_config = ConfigDict(frozen=True)

    span_id: str
    parent_id: str | None = None
    name: str = ""
    span_type: str = "UNKNOWN"
    status: Literal["OK", "ERROR", "UNSET"] = "UNSET"
    status_message: str = ""
    start_time_ns: int | None = None
    end_time_ns: int | None = None
    inputs: Any = None
    outputs: Any = None
    attributes: dict[str, Any] = Field(default_factory=dict)
    events: list[SpanEvent] = Field(default_factory=list)

    @property
    def duration_ms(self) -> float | None:
        if self.start_time_ns is None or self.end_time_ns is None:
            return None
        return max(self.end_time_ns - self.start_time_ns, 0) / 1e6

    @property
    def token_usage(self) -> UsageMetadata | None:
        """The span's token usage in LangChain's ``UsageMetadata`` shape.

        From ``mlflow.chat.tokenUsage`` (MLflow 3), else, on a model span, from the ``usage``
        of its outputs (MLflow 2 traces keep the whole chat completion there).
        """
        usage = map_usage(f.decode_value(self.attributes.get(SPAN_USAGE)))
        if usage is None and self.span_type in _MODEL_SPANS and isinstance(self.outputs, Mapping):
            usage = map_usage(self.outputs.get("usage"))
        return usage

    @property
    def error(self) -> str | None:
        """What went wrong: the status message, else the exception event's type and message."""
        exception = next((e for e in self.events if e.name == "exception"), None)
        if self.status != "ERROR" and exception is None:
            return None
        if self.status_message:
            return self.status_message
        if exception is not None:
            kind = exception.attributes.get("exception.type")
            message = exception.attributes.get("exception.message")
            return f"{kind}: {message}" if kind and message else str(message or kind or "error")
        return "error"


class Trace(BaseModel):
    """A returned MLflow trace, parsed from schema V3 (MLflow 3.x) or V2 (MLflow 2.x) JSON.

    ``spans`` are ordered parents first (siblings by start time). Read it with
    :meth:`tree`, :meth:`find`, :meth:`children`, or go back to the raw dict with
    :meth:`to_dict`.

    Example:
        .. code-block:: python

            from langchain_dbx_serving import get_trace

            reply = agent.invoke("Where is order 42?", return_trace=True)
            trace = get_trace(reply)
            print(trace.tree())
            [span.outputs for span in trace.find(span_type="TOOL")]
            trace.token_usage  # {"input_tokens": ..., "output_tokens": ..., "total_tokens": ...}
    """

    model_config = ConfigDict(frozen=True)

    trace_id: str
    state: Literal["OK", "ERROR", "IN_PROGRESS", "UNSPECIFIED"] = "UNSPECIFIED"
    schema_version: Literal[2, 3] = 3
    request_time_ms: int | None = None
    execution_duration_ms: int | None = None
    client_request_id: str | None = None
    experiment_id: str | None = None
    request_preview: str | None = None
    response_preview: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    """``trace_metadata`` (V3) or ``request_metadata`` (V2)."""
    tags: dict[str, str] = Field(default_factory=dict)
    spans: list[Span] = Field(default_factory=list)
    _raw: dict[str, Any] = PrivateAttr(default_factory=dict)
    _children: dict[str, list[Span]] | None = PrivateAttr(default=None)

    # -- building ---------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Any) -> Trace:
        """Parse MLflow trace JSON (a dict, or a JSON string of one).

        Raises:
            TraceParseError: ``data`` is not an ``{"info": ..., "data": {"spans": [...]}}``
                trace (missing fields inside spans and info are tolerated).
        """
        if isinstance(data, (str, bytes)):
            try:
                data = loads(data)
            except ValueError as exc:
                raise TraceParseError(f"the returned trace is not JSON ({exc})") from None
        if not isinstance(data, Mapping):
            raise TraceParseError(
                f"a returned trace must be a JSON object, got {type(data).__name__}: "
                f"{preview(data)!r}"
            )
        info = data.get("info")
        body = data.get("data") or {}
        if not isinstance(info, Mapping) or not isinstance(body, Mapping):
            raise TraceParseError(
                "a returned trace needs an 'info' object and a 'data' object (MLflow "
                f"Trace.to_dict() JSON); got keys {sorted(map(str, data))}"
            )
        raw_spans = body.get("spans") or []
        trace_id = _trace_id(info, raw_spans)
        if not isinstance(raw_spans, list):
            raise TraceParseError(
                f"trace {trace_id}: 'data.spans' must be a list, got {type(raw_spans).__name__}",
                trace_id=trace_id,
            )
        spans = [_span(raw, i, trace_id) for i, raw in enumerate(raw_spans)]
        trace = cls(trace_id=trace_id, spans=_parents_first(spans), **_info_fields(info))
        trace._raw = dict(data)
        return trace

    def to_dict(self) -> dict[str, Any]:
        """The trace JSON as it was returned (a deep copy)."""
        return copy.deepcopy(self._raw)

    # -- the tree ---------------------------------------------------------------------------
    @property
    def roots(self) -> list[Span]:
        """Spans without a parent in this trace (normally exactly one)."""
        ids = {span.span_id for span in self.spans}
        return [span for span in self.spans if span.parent_id not in ids]

    @property
    def root(self) -> Span | None:
        roots = self.roots
        return roots[0] if roots else None

    def children(self, span: Span) -> list[Span]:
        """The direct children of ``span``, by start time."""
        if self._children is None:
            children: dict[str, list[Span]] = {}
            for child in self.spans:
                if child.parent_id is not None:
                    children.setdefault(child.parent_id, []).append(child)
            self._children = children
        return list(self._children.get(span.span_id, []))

    def parent(self, span: Span) -> Span | None:
        return next((p for p in self.spans if p.span_id == span.parent_id), None)

    def walk(self) -> Iterator[tuple[int, Span]]:
        """``(depth, span)`` pairs, depth first, parents before children."""
        seen: set[int] = set()
        stack = [(0, span) for span in reversed(self.roots)]
        while stack:
            depth, span = stack.pop()
            if id(span) in seen:
                continue
            seen.add(id(span))
            yield depth, span
            stack.extend((depth + 1, child) for child in reversed(self.children(span)))
        # Spans in a parent cycle (a corrupt trace) are reachable from no root: list them flat.
        yield from ((0, span) for span in self.spans if id(span) not in seen)

    def find(self, name: str | None = None, span_type: str | None = None) -> list[Span]:
        """Spans with this name and/or span type (``"TOOL"``, ``"CHAT_MODEL"``, ...)."""
        wanted_type = span_type.upper() if span_type else None
        return [
            span
            for span in self.spans
            if (name is None or span.name == name)
            and (wanted_type is None or span.span_type.upper() == wanted_type)
        ]

    # -- summaries --------------------------------------------------------------------------
    @property
    def name(self) -> str | None:
        root = self.root
        return self.tags.get(TRACE_NAME) or (root.name if root else None)

    @property
    def errors(self) -> list[Span]:
        """Spans that failed, also inside a trace whose state is ``OK``."""
        return [span for span in self.spans if span.status == "ERROR"]

    @property
    def duration_ms(self) -> float | None:
        if self.execution_duration_ms is not None:
            return float(self.execution_duration_ms)
        root = self.root
        return root.duration_ms if root else None

    @property
    def inputs(self) -> Any:
        root = self.root
        if root is not None and root.inputs is not None:
            return root.inputs
        return f.decode_value(self.metadata.get(TRACE_INPUTS))

    @property
    def outputs(self) -> Any:
        root = self.root
        if root is not None and root.outputs is not None:
            return root.outputs
        return f.decode_value(self.metadata.get(TRACE_OUTPUTS))

    @property
    def token_usage(self) -> UsageMetadata | None:
        """The trace's token usage: ``mlflow.trace.tokenUsage``, else the sum over spans.

        Summing skips spans whose ancestor already reports usage (MLflow's own rule), so an
        agent span that rolls up its model calls is not counted twice.
        """
        usage = map_usage(f.decode_value(self.metadata.get(TRACE_USAGE)))
        if usage is not None:
            return usage
        total: UsageMetadata | None = None
        counted: set[str] = set()
        for _, span in self.walk():
            parent = span.parent_id
            if parent in counted:
                counted.add(span.span_id)
                continue
            own = span.token_usage
            if own is not None:
                counted.add(span.span_id)
                total = own if total is None else add_usage(total, own)
        return total

    def tree(self) -> str:
        """An indented, human-readable tree: name, span type, duration, tokens, errors.

        Example output::

            trace tr-3f2a... OK, 812.0 ms, 3 spans, tokens 9 in / 4 out
            support-agent  AGENT  812.0 ms
            ├── lookup_order  TOOL  200.1 ms
            └── chat_model  CHAT_MODEL  600.3 ms  tokens 9 in / 4 out
        """
        return _render.render_tree(self)


def _trace_id(info: Mapping[str, Any], raw_spans: Any) -> str:
    value = info.get("trace_id") or info.get("request_id")
    if isinstance(value, str) and value:
        return value
    for raw in raw_spans if isinstance(raw_spans, list) else []:
        if isinstance(raw, Mapping):
            context = raw.get("context")
            found = context.get("trace_id") if isinstance(context, Mapping) else None
            found = found or raw.get("trace_id")
            if found:
                return "tr-" + str(f.normalize_id(found, 16))
    raise TraceParseError(
        "the returned trace has no id (no 'info.trace_id', 'info.request_id' or span trace id)"
    )


def _info_fields(info: Mapping[str, Any]) -> dict[str, Any]:
    """The ``Trace`` fields of a V3 or V2 ``info`` object."""
    if "request_id" in info and "trace_id" not in info:  # V2
        return {
            "schema_version": 2,
            "state": f.trace_state(info.get("status")),
            "request_time_ms": f.to_int(info.get("timestamp_ms")),
            "execution_duration_ms": f.to_int(info.get("execution_time_ms")),
            "experiment_id": f.to_text(info.get("experiment_id")),
            "metadata": f.string_map(info.get("request_metadata")),
            "tags": f.string_map(info.get("tags")),
        }
    location = info.get("trace_location")
    experiment = location.get("mlflow_experiment") if isinstance(location, Mapping) else None
    return {
        "schema_version": 3,
        "state": f.trace_state(info.get("state") or info.get("status")),
        "request_time_ms": f.iso_to_ms(info.get("request_time"))
        or f.to_int(info.get("request_time")),
        "execution_duration_ms": f.to_int(info.get("execution_duration_ms")),
        "client_request_id": f.to_text(info.get("client_request_id")),
        "experiment_id": f.to_text(experiment.get("experiment_id"))
        if isinstance(experiment, Mapping)
        else None,
        "request_preview": f.to_text(info.get("request_preview")),
        "response_preview": f.to_text(info.get("response_preview")),
        "metadata": f.string_map(info.get("trace_metadata")),
        "tags": f.string_map(info.get("tags")),
    }


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _span(raw: Any, index: int, trace_id: str) -> Span:
    """One V3 (``span_id``/``parent_span_id``) or V2 (``context``/``parent_id``) span."""
    if not isinstance(raw, Mapping):
        raise TraceParseError(
            f"trace {trace_id}: span {index} is not a JSON object: {preview(raw)!r}",
            trace_id=trace_id,
        )
    context = raw.get("context") if isinstance(raw.get("context"), Mapping) else {}
    span_id = f.normalize_id(raw.get("span_id") or context.get("span_id"), 8)
    parent = raw.get("parent_span_id", raw.get("parent_id"))
    status = raw.get("status")
    if isinstance(status, Mapping):  # V3: {"code", "message"}
        code, message = status.get("code"), status.get("message")
    else:  # V2: status_code / status_message
        code, message = raw.get("status_code", status), raw.get("status_message")
    raw_attributes = raw.get("attributes")
    attributes = (
        {str(k): f.decode_value(v) for k, v in raw_attributes.items()}
        if isinstance(raw_attributes, Mapping)
        else {}
    )
    span_type = attributes.get(SPAN_TYPE)
    return Span(
        span_id=span_id or f"span-{index}",
        parent_id=f.normalize_id(parent, 8),
        name=str(raw.get("name") or ""),
        span_type=span_type if isinstance(span_type, str) and span_type else "UNKNOWN",
        status=f.span_status(code),  # type: ignore[arg-type]
        status_message=message if isinstance(message, str) else "",
        start_time_ns=f.to_ns(raw.get("start_time_unix_nano", raw.get("start_time"))),
        end_time_ns=f.to_ns(raw.get("end_time_unix_nano", raw.get("end_time"))),
        inputs=attributes.get(SPAN_INPUTS),
        outputs=attributes.get(SPAN_OUTPUTS),
        attributes=attributes,
        events=[_event(e) for e in _list(raw.get("events")) if isinstance(e, Mapping)],
    )


def _event(raw: Mapping[str, Any]) -> SpanEvent:
    attributes = raw.get("attributes")
    return SpanEvent(
        name=str(raw.get("name") or ""),
        time_ns=f.to_ns(raw.get("time_unix_nano", raw.get("timestamp"))),
        attributes=(
            {str(k): f.decode_value(v) for k, v in attributes.items()}
            if isinstance(attributes, Mapping)
            else {}
        ),
    )


def _parents_first(spans: list[Span]) -> list[Span]:
    """Depth-first from the roots, siblings by start time; spans in a cycle come last."""
    by_parent: dict[str | None, list[Span]] = {}
    ids = {span.span_id for span in spans}
    for span in spans:
        key = span.parent_id if span.parent_id in ids else None
        by_parent.setdefault(key, []).append(span)
    for siblings in by_parent.values():
        siblings.sort(key=lambda s: s.start_time_ns if s.start_time_ns is not None else 0)
    ordered: list[Span] = []
    seen: set[int] = set()
    stack = list(reversed(by_parent.get(None, [])))
    while stack:
        span = stack.pop()
        if id(span) in seen:
            continue
        seen.add(id(span))
        ordered.append(span)
        stack.extend(reversed(by_parent.get(span.span_id, [])))
    ordered += [span for span in spans if id(span) not in seen]
    return ordered
