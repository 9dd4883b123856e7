"""W3C trace context for outgoing calls: the ``traceparent`` header of the span making a call.

A call made inside an active span sends ``traceparent: 00-<trace id>-<span id>-<flags>``
(https://www.w3.org/TR/trace-context/#traceparent-header), the header MLflow's
``get_tracing_context_headers_for_http_request`` writes and
``set_tracing_context_from_http_request_headers`` reads, so a server that honours it puts its
spans in the caller's trace. The span is, first found:

1. the span mlflow's LangChain autolog opened for this call's run (the chat model's or the
   ``AgentEndpoint``'s), so the server's spans nest under the span of this very call;
2. the caller's active MLflow span (``@mlflow.trace``, ``mlflow.start_span``);
3. the active OpenTelemetry span, when OpenTelemetry is in use without an MLflow span.

No span, no header. Neither mlflow nor OpenTelemetry is imported here: a process that has not
imported them cannot have an active span of theirs.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from langchain_dbx_serving.tracing._mlflow import active_span

__all__ = ["TRACEPARENT", "traceparent", "with_trace_context"]

TRACEPARENT = "traceparent"


def _format(context: Any) -> str | None:
    """``traceparent`` of an OpenTelemetry ``SpanContext``; ``None`` when it is not valid."""
    trace_id = getattr(context, "trace_id", 0)
    span_id = getattr(context, "span_id", 0)
    if not isinstance(trace_id, int) or not isinstance(span_id, int):
        return None
    if not (0 < trace_id < 1 << 128) or not (0 < span_id < 1 << 64):
        return None
    flags = int(getattr(context, "trace_flags", 0) or 0) & 0xFF
    return f"00-{trace_id:032x}-{span_id:016x}-{flags:02x}"


def _mlflow_traceparent(run_manager: Any) -> str | None:
    span = active_span(run_manager)
    otel_span = getattr(span, "_span", None) if span is not None else None
    get_context = getattr(otel_span, "get_span_context", None)
    return _format(get_context()) if callable(get_context) else None


def _otel_traceparent() -> str | None:
    otel = sys.modules.get("opentelemetry.trace")
    get_current_span = getattr(otel, "get_current_span", None)
    if not callable(get_current_span):
        return None
    span = get_current_span()
    get_context = getattr(span, "get_span_context", None)
    return _format(get_context()) if callable(get_context) else None


def traceparent(run_manager: Any = None) -> str | None:
    """The ``traceparent`` of the span that represents this call, or ``None`` (no span).

    Never raises: tracing must not break a call.
    """
    try:
        return _mlflow_traceparent(run_manager) or _otel_traceparent()
    except Exception:  # a tracing library in an odd state
        return None


def with_trace_context(
    headers: Mapping[str, str] | None, run_manager: Any = None, *, enabled: bool = True
) -> dict[str, str] | None:
    """``headers`` plus ``traceparent`` when ``enabled`` and a span is active.

    A ``traceparent`` the caller put in ``headers`` itself is kept.
    """
    value = traceparent(run_manager) if enabled else None
    if value is None:
        return dict(headers) if headers else None
    merged = {TRACEPARENT: value}
    merged.update(headers or {})
    return merged
