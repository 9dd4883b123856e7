"""Returned MLflow traces: parsing, surfacing to LangChain, merging into MLflow, collecting.

An endpoint asked for ``databricks_options={"return_trace": True}`` (``return_trace=True`` on
our classes) returns the MLflow trace of the request. It reaches the caller as:

- ``response_metadata["trace"]`` / ``["trace_id"]`` on the message (and ``AgentResponse.trace``);
- ``llm_output["trace"]`` for ``on_llm_end`` (``generation_info`` for streams: use
  :func:`get_trace` on the ``LLMResult`` to read either);
- a ``databricks_trace`` custom callback event, visible in ``astream_events(version="v2")``
  and collected by :class:`TraceCollector`;
- spans under the caller's active MLflow span, when mlflow is in use (``merge_mlflow_trace``).

Modules: ``_fields`` (schema differences), ``_model`` (``Trace``/``Span``), ``_render``
(``Trace.tree()``), ``_lookup`` (``get_trace``), ``_surface`` (the LangChain glue),
``_mlflow`` (the merge), ``_collector`` (``TraceCollector``).
"""

from __future__ import annotations

from langchain_dbx_serving.tracing._collector import CollectedTrace, TraceCollector
from langchain_dbx_serving.tracing._lookup import get_trace, get_trace_id
from langchain_dbx_serving.tracing._model import Span, SpanEvent, Trace
from langchain_dbx_serving.tracing._surface import TRACE_EVENT, TraceSurfacer, returned_trace

__all__ = [
    "TRACE_EVENT",
    "CollectedTrace",
    "Span",
    "SpanEvent",
    "Trace",
    "TraceCollector",
    "TraceSurfacer",
    "get_trace",
    "get_trace_id",
    "returned_trace",
]
