"""GET requests through a :class:`~langchain_dbx_serving.transport.client.Transport`.

Background runs are polled and their event feeds re-opened with ``GET``. These helpers are the
transport's own methods with a GET body: its pools, credentials, URL safety check, deadline,
error mapping, size limits and retry policy (a GET is safe to re-send, so refused connections,
429 and 503 are retried like a POST that got no reply).

Example:
    .. code-block:: python

        body = get_json(model.transport, f"{base}/responses/{run_id}", endpoint="agent")
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

from langchain_dbx_serving.transport._call import _GET
from langchain_dbx_serving.transport.client import Transport

__all__ = ["aget_json", "aget_stream", "get_json", "get_stream"]

_SSE = {"Accept": "text/event-stream"}


def get_json(transport: Transport, url: str, *, endpoint: str | None = None) -> Any:
    """GET ``url`` and return the parsed JSON reply."""
    return transport.get_json(url, endpoint=endpoint)


async def aget_json(transport: Transport, url: str, *, endpoint: str | None = None) -> Any:
    """Async :func:`get_json`."""
    return await transport.aget_json(url, endpoint=endpoint)


def get_stream(transport: Transport, url: str, *, endpoint: str | None = None) -> Iterator[str]:
    """GET ``url`` and yield each SSE ``data`` payload (a JSON reply is yielded once, whole)."""
    return transport.stream(url, _GET, endpoint=endpoint, headers=_SSE)


def aget_stream(
    transport: Transport, url: str, *, endpoint: str | None = None
) -> AsyncIterator[str]:
    """Async :func:`get_stream`."""
    return transport.astream(url, _GET, endpoint=endpoint, headers=_SSE)
