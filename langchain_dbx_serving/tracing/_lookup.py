"""Finding a returned trace on whatever a caller holds: a message, a result, a response, a dict."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult, Generation, LLMResult

from langchain_dbx_serving.protocols._common import trace_id_of
from langchain_dbx_serving.tracing._model import Trace

__all__ = ["get_trace", "get_trace_id", "raw_trace"]


def _places(obj: Any) -> Iterator[Mapping[str, Any]]:
    """The dicts, most specific first, where ``obj`` may keep ``trace`` / ``trace_id``."""
    if isinstance(obj, BaseMessage):
        yield obj.response_metadata
    elif isinstance(obj, Generation):
        yield obj.generation_info or {}
        if isinstance(obj, ChatGeneration):
            yield obj.message.response_metadata
    elif isinstance(obj, (ChatResult, LLMResult)):
        # A stream's LLMResult (what on_llm_end receives) has no llm_output: LangChain builds
        # it from the chunks, so the trace is on the generation (generation_info and message).
        yield obj.llm_output or {}
        generations = obj.generations
        if generations and isinstance(generations[0], list):
            generations = generations[0]
        for generation in generations[:1]:
            yield from _places(generation)
    elif isinstance(obj, Mapping):
        out = obj.get("databricks_output")
        yield out if isinstance(out, Mapping) else obj
    elif hasattr(obj, "trace") or hasattr(obj, "trace_id"):  # AgentResponse, CollectedTrace
        yield {"trace": getattr(obj, "trace", None), "trace_id": getattr(obj, "trace_id", None)}


def raw_trace(obj: Any) -> Any:
    """The returned trace as it arrived (a dict, normally), or ``None``.

    ``obj`` is an ``AIMessage``/chunk, a ``ChatResult``/``LLMResult``/generation, an
    ``AgentResponse``, a ``TraceCollector`` entry, a ``response_metadata`` dict, a reply body
    with ``databricks_output``, a ``databricks_trace`` event's data, or a trace dict itself.
    """
    if isinstance(obj, Trace):
        return obj.to_dict()
    if isinstance(obj, Mapping) and "info" in obj:
        return obj
    for place in _places(obj):
        if place.get("trace") is not None:
            return place["trace"]
    return None


def get_trace_id(obj: Any) -> str | None:
    """The MLflow trace id a reply came with (also when only the id was returned), or ``None``.

    Accepts everything :func:`get_trace` accepts.
    """
    if isinstance(obj, Trace):
        return obj.trace_id
    if isinstance(obj, Mapping) and "info" in obj:
        return trace_id_of(obj)
    for place in _places(obj):
        value = place.get("trace_id") or trace_id_of(place.get("trace"))
        if isinstance(value, str) and value:
            return value
    return None


def get_trace(obj: Any) -> Trace | None:
    """The MLflow trace an endpoint returned with a reply, parsed; ``None`` when there is none.

    Works on what a LangChain user holds: the ``AIMessage`` (or aggregated chunks) of
    ``ChatDatabricksServing``/``ChatDatabricksResponses``, an ``AgentResponse``, the
    ``LLMResult`` an ``on_llm_end`` handler receives, a ``databricks_trace`` event's data, a
    ``TraceCollector`` entry, ``response_metadata``, or the trace dict itself.

    Raises:
        TraceParseError: the endpoint returned something that is not MLflow trace JSON (the
            raw value stays where it was, e.g. in ``response_metadata["trace"]``).

    Example:
        .. code-block:: python

            reply = llm.invoke("hi", return_trace=True)
            if (trace := get_trace(reply)) is not None:
                print(trace.tree())
    """
    if isinstance(obj, Trace):
        return obj
    raw = raw_trace(obj)
    return None if raw is None else Trace.from_dict(raw)
