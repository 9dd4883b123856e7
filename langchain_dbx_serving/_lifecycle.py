"""``close()``, ``aclose()`` and ``with`` / ``async with`` for every class that holds connections.

A class lists what it owns in ``_owned()``; closing closes those (their pooled HTTP clients), and
``async with``/``aclose()`` also closes the async client of the running event loop. Closing is
idempotent, and a closed object may still be used: it opens new connections when called again.

Example:
    >>> from langchain_dbx_serving import ChatDatabricksServing
    >>> with ChatDatabricksServing(endpoint="m", host="https://x.cloud.databricks.com", token="t") as llm:
    ...     llm.endpoint
    'm'
"""  # noqa: E501

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["Closeable"]


class Closeable:
    """Mixin: ``close``/``aclose`` and (async) context-manager use over ``_owned()``."""

    def _owned(self) -> Iterable[Any]:
        return ()

    def close(self) -> None:
        """Close the HTTP connections this object opened (injected clients are left open)."""
        for owned in self._owned():
            close = getattr(owned, "close", None)
            if callable(close):
                close()

    async def aclose(self) -> None:
        """Close this object's connections, the running event loop's included."""
        for owned in self._owned():
            aclose = getattr(owned, "aclose", None)
            if callable(aclose):
                await aclose()
            else:
                close = getattr(owned, "close", None)
                if callable(close):
                    close()

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Any:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
