"""Merging a returned trace into the caller's active MLflow trace (``mlflow.add_trace``).

mlflow is never imported here: the merge runs only when the caller's process already imported
it (``sys.modules``), which is the case whenever the caller can have an active MLflow span.

The returned trace is first reduced to its spans (``_remote``: no tag or metadata of it may
change how the caller's trace is stored or read), and it is not merged at all when the server
already put its spans in the caller's trace (it honoured our ``traceparent``): the returned
trace then has the caller's trace id, or a span whose parent is the caller's span.
"""

from __future__ import annotations

import copy
import json
import logging
import re
import sys
from collections.abc import Mapping
from typing import Any

from langchain_dbx_serving.protocols._common import trace_id_of
from langchain_dbx_serving.tracing import _fields as f
from langchain_dbx_serving.tracing._remote import reduce_for_merge

logger = logging.getLogger("langchain_dbx_serving.tracing")

_REQUEST_ID_ATTRIBUTE = "mlflow.traceRequestId"
_NO_OP_TRACE_ID = "MLFLOW_NO_OP_SPAN_TRACE_ID"
# The W3C trace id at the end of an MLflow trace id ("tr-<hex>", "trace:/<location>/<hex>").
_OTEL_TRACE_ID = re.compile(r"([0-9a-f]{32})$")


def _ids(raw: Mapping[str, Any]) -> tuple[str | None, str | None, str | None]:
    """(span id, parent id, the key the parent id is under) of a V3 or V2 span dict."""
    context = raw.get("context") if isinstance(raw.get("context"), Mapping) else {}
    span_id = raw.get("span_id") or context.get("span_id")
    key = "parent_span_id" if "parent_span_id" in raw else "parent_id"
    return f.normalize_id(span_id, 8), f.normalize_id(raw.get(key), 8), key


def parents_first(trace: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a trace dict fit for ``add_trace``: spans ordered parents first, and reduced
    to what describes spans (see ``_remote``).

    Spans whose parent is not in the trace (a partial trace) become roots, so MLflow attaches
    them under the target span instead of failing; a missing ``mlflow.traceRequestId``
    attribute (which MLflow requires on every span) is filled in with the trace id.
    """
    data = trace.get("data") if isinstance(trace.get("data"), Mapping) else {}
    spans = [copy.deepcopy(s) for s in data.get("spans") or [] if isinstance(s, Mapping)]
    ids = {_ids(s)[0] for s in spans}
    by_parent: dict[str | None, list[dict[str, Any]]] = {}
    request_id = json.dumps(trace_id_of(trace))
    for span in spans:
        _, parent, key = _ids(span)
        if parent is not None and parent not in ids:
            span[key] = None
            parent = None
        attributes = span.setdefault("attributes", {})
        if isinstance(attributes, dict):
            attributes.setdefault(_REQUEST_ID_ATTRIBUTE, request_id)
        by_parent.setdefault(parent, []).append(span)
    ordered: list[dict[str, Any]] = []
    roots = by_parent.get(None, [])
    stack = list(reversed(roots))
    while stack:
        span = stack.pop()
        ordered.append(span)
        stack.extend(reversed(by_parent.pop(_ids(span)[0], [])))
    reduced = {**trace, "data": {**data, "spans": ordered}}
    return reduce_for_merge(reduced, {id(span) for span in roots})


def otel_trace_id(trace_id: Any) -> str | None:
    """The 32-hex W3C trace id inside an MLflow trace id, or ``None``."""
    if not isinstance(trace_id, str):
        return None
    match = _OTEL_TRACE_ID.search(trace_id.strip().lower())
    return match.group(1) if match else None


def already_joined(trace: Mapping[str, Any], target: Any) -> bool:
    """Whether the server put the returned spans in the target's trace itself (it honoured
    our ``traceparent``): same trace id, or a span whose parent is the target span."""
    ours = otel_trace_id(getattr(target, "trace_id", None))
    if ours is not None and otel_trace_id(trace_id_of(trace)) == ours:
        return True
    target_span = f.normalize_id(getattr(target, "span_id", None), 8)
    data = trace.get("data") if isinstance(trace.get("data"), Mapping) else {}
    spans = [s for s in data.get("spans") or [] if isinstance(s, Mapping)]
    return target_span is not None and any(_ids(s)[1] == target_span for s in spans)


def _autolog_span(run_manager: Any) -> Any:
    """The span mlflow's LangChain autolog opened for this run, found through its handler."""
    # A run manager has run_id; a manager made for a stream has the run as parent_run_id.
    run_id = getattr(run_manager, "run_id", None) or getattr(run_manager, "parent_run_id", None)
    for handler in getattr(run_manager, "handlers", None) or []:
        if not type(handler).__module__.startswith("mlflow."):
            continue
        lookup = getattr(handler, "_get_span_by_run_id", None)
        span = lookup(run_id) if callable(lookup) and run_id is not None else None
        if span is not None:
            return span
    return None


def active_span(run_manager: Any = None) -> Any:
    """The caller's live MLflow span (autolog's span of this run first), or ``None``."""
    mlflow = sys.modules.get("mlflow")
    if mlflow is None:
        return None
    span = _autolog_span(run_manager)
    if span is None:
        getter = getattr(mlflow, "get_current_active_span", None)
        span = getter() if callable(getter) else None
    if span is None or getattr(span, "trace_id", None) in (None, _NO_OP_TRACE_ID):
        return None
    return span


def merge_into_active_span(trace: Any, run_manager: Any = None) -> bool:
    """Merge ``trace`` under the caller's active MLflow span; ``True`` when it was merged.

    Never raises: a trace MLflow cannot load is logged (at warning level) and skipped.
    """
    if "mlflow" not in sys.modules or not isinstance(trace, Mapping):
        return False
    try:
        target = active_span(run_manager)
        if target is None:
            return False
        if already_joined(trace, target):
            logger.debug(
                "returned trace %s is already part of the caller's trace: not merged",
                trace_id_of(trace),
            )
            return False
        sys.modules["mlflow"].add_trace(parents_first(trace), target=target)
    except Exception as exc:  # mlflow's own validation errors, or a trace it cannot read
        logger.warning(
            "could not merge returned trace %s into the active MLflow trace: %s",
            trace_id_of(trace),
            exc,
        )
        return False
    return True
