"""``TraceCollector``: a callback handler that keeps every trace returned during a run."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from pydantic import BaseModel, ConfigDict, Field

from langchain_dbx_serving.tracing._lookup import get_trace
from langchain_dbx_serving.tracing._model import Trace
from langchain_dbx_serving.tracing._surface import TRACE_EVENT

__all__ = ["CollectedTrace", "TraceCollector"]


class CollectedTrace(BaseModel):
    """One returned trace, with the run that received it.

    ``run_id`` is the run of the chat model or ``AgentEndpoint`` call; ``tags`` and
    ``metadata`` are that run's (LangGraph puts ``langgraph_node`` there).
    """

    model_config = ConfigDict(frozen=True)

    run_id: UUID
    endpoint: str
    trace_id: str | None = None
    trace: dict[str, Any] | None = Field(default=None, repr=False)
    databricks_request_id: str | None = None
    tags: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict, repr=False)

    def parsed(self) -> Trace | None:
        """The trace parsed (``None`` when only the id came back); may raise TraceParseError."""
        return get_trace(self.trace) if self.trace is not None else None


class TraceCollector(BaseCallbackHandler):
    """Collects every trace returned during a chain or graph run, by run id and endpoint.

    Pass it in ``config={"callbacks": [collector]}``: LangChain hands it to every nested
    run, and each ``ChatDatabricksServing``/``ChatDatabricksResponses``/``AgentEndpoint`` call
    whose reply carries a trace (or a trace id) reports it with the ``databricks_trace`` event.

    Example:
        .. code-block:: python

            from langchain_dbx_serving import TraceCollector

            collector = TraceCollector()
            graph.invoke({"messages": [("user", "hi")]}, config={"callbacks": [collector]})
            for entry in collector:
                print(entry.endpoint, entry.trace_id)
            print(collector.for_endpoint("support-agent")[0].parsed().tree())
    """

    # Cheap and lock-protected: run it in the event loop rather than in a thread pool.
    run_inline = True

    def __init__(self) -> None:
        super().__init__()
        self._entries: list[CollectedTrace] = []
        self._lock = threading.Lock()

    def on_custom_event(
        self,
        name: str,
        data: Any,
        *,
        run_id: UUID,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if name != TRACE_EVENT or not isinstance(data, dict):
            return
        entry = CollectedTrace(
            run_id=run_id,
            endpoint=str(data.get("endpoint") or ""),
            trace_id=data.get("trace_id"),
            trace=data.get("trace") if isinstance(data.get("trace"), dict) else None,
            databricks_request_id=data.get("databricks_request_id"),
            tags=list(tags or []),
            metadata=dict(metadata or {}),
        )
        with self._lock:
            self._entries.append(entry)

    # -- reading ----------------------------------------------------------------------------
    @property
    def entries(self) -> list[CollectedTrace]:
        """Every collected trace, in the order the replies arrived."""
        with self._lock:
            return list(self._entries)

    @property
    def by_run_id(self) -> dict[UUID, CollectedTrace]:
        return {entry.run_id: entry for entry in self.entries}

    @property
    def by_endpoint(self) -> dict[str, list[CollectedTrace]]:
        grouped: dict[str, list[CollectedTrace]] = {}
        for entry in self.entries:
            grouped.setdefault(entry.endpoint, []).append(entry)
        return grouped

    def for_endpoint(self, endpoint: str) -> list[CollectedTrace]:
        return self.by_endpoint.get(endpoint, [])

    def traces(self) -> list[Trace]:
        """The collected traces, parsed (entries with only a trace id are skipped)."""
        return [trace for entry in self.entries if (trace := entry.parsed()) is not None]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __iter__(self) -> Iterator[CollectedTrace]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)
