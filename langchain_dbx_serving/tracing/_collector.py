"""``TraceCollector``: a callback handler that keeps every trace returned during a run.

Each trace is kept with the run that received it, its endpoint and, in a LangGraph graph, the
node that made the call (``langgraph_node`` / ``langgraph_checkpoint_ns`` of the run's
metadata, so nodes of subgraphs are known by their path). ``tree()`` renders the whole run as
one text tree: nodes, then each endpoint call of a node with the spans its trace returned.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from pydantic import BaseModel, ConfigDict, Field

from langchain_dbx_serving.errors import TraceParseError
from langchain_dbx_serving.tracing._lookup import get_trace
from langchain_dbx_serving.tracing._model import Trace
from langchain_dbx_serving.tracing._render import render_lines, span_items
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

    @property
    def node_path(self) -> tuple[str, ...]:
        """The LangGraph node that made the call, with its parent graphs' nodes first
        (``("research", "search")`` for node ``search`` of subgraph node ``research``);
        ``()`` outside LangGraph."""
        namespace = self.metadata.get("langgraph_checkpoint_ns")
        if isinstance(namespace, str) and namespace:
            path = tuple(part.split(":", 1)[0] for part in namespace.split("|") if part)
            if path:
                return path
        node = self.metadata.get("langgraph_node")
        return (str(node),) if node else ()

    @property
    def node(self) -> str | None:
        """The LangGraph node that made the call (the innermost one), or ``None``."""
        path = self.node_path
        return path[-1] if path else None


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
                print(entry.node, entry.endpoint, entry.trace_id)
            print(collector.for_endpoint("support-agent")[0].parsed().tree())
            collector.by_node["support"]  # the calls LangGraph node "support" made
            collector.keyed()[("support", "support-agent")]
            print(collector.tree())  # the whole run: nodes, their calls, the remote spans
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

    @property
    def by_node(self) -> dict[str | None, list[CollectedTrace]]:
        """The entries of each LangGraph node (``None``: calls made outside a node)."""
        grouped: dict[str | None, list[CollectedTrace]] = {}
        for entry in self.entries:
            grouped.setdefault(entry.node, []).append(entry)
        return grouped

    def keyed(self) -> dict[tuple[str | None, str], list[CollectedTrace]]:
        """The entries by ``(node, endpoint)``, in the order the first of each arrived."""
        grouped: dict[tuple[str | None, str], list[CollectedTrace]] = {}
        for entry in self.entries:
            grouped.setdefault((entry.node, entry.endpoint), []).append(entry)
        return grouped

    def tree(self) -> str:
        """Every collected trace as one text tree: each LangGraph node (nested as the graphs
        are), each endpoint call it made, and under that call the spans its trace returned.

        Example output::

            run: 2 endpoint calls, 2 traces, 4 spans
            ├── node triage
            │   └── call chat  trace tr-7f0c...
            │       └── chat  CHAT_MODEL  3.1 ms  tokens 12 in / 5 out
            └── node support
                └── call support-agent  trace tr-91ab...
                    └── support-agent  AGENT  41.0 ms
                        └── lookup_order  TOOL  2.2 ms

        A call that returned only a trace id shows ``(spans not returned)``; one whose trace
        could not be read shows why.
        """
        entries = self.entries
        items: list[tuple[int, str]] = []
        opened: tuple[str, ...] = ()
        spans = 0
        for entry in sorted(entries, key=lambda e: _first_seen(entries, e.node_path)):
            path = entry.node_path
            shared = 0
            while shared < min(len(path), len(opened)) and path[shared] == opened[shared]:
                shared += 1
            items += [(1 + depth, f"node {path[depth]}") for depth in range(shared, len(path))]
            opened = path
            depth = 1 + len(path)
            items.append((depth, f"call {entry.endpoint}  trace {entry.trace_id or '?'}"))
            try:
                trace = entry.parsed()
            except TraceParseError as exc:
                items.append((depth + 1, f"(trace could not be read: {exc.message})"))
                continue
            if trace is None:
                items.append((depth + 1, "(spans not returned)"))
                continue
            spans += len(trace.spans)
            items += span_items(trace, depth + 1)
        traces = sum(1 for entry in entries if entry.trace is not None)
        header = (
            f"run: {len(entries)} endpoint call{'s' if len(entries) != 1 else ''}, "
            f"{traces} trace{'s' if traces != 1 else ''}, {spans} span{'s' if spans != 1 else ''}"
        )
        return "\n".join(render_lines([(0, header), *items]))

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


def _first_seen(entries: list[CollectedTrace], path: tuple[str, ...]) -> tuple[int, ...]:
    """Sort key keeping each node's calls together, nodes in the order they first called,
    subgraph nodes under their parent node."""
    key = []
    for depth in range(1, len(path) + 1):
        prefix = path[:depth]
        key.append(next(i for i, e in enumerate(entries) if e.node_path[:depth] == prefix))
    return tuple(key)
