"""One event loop's async client, and the slots that bound its requests in flight.

Used by :class:`~langchain_dbx_serving.transport.client.Transport` only: async requests wait for
one of the pool's ``max_connections`` slots before entering httpx (see the transport's module
docstring for why), and each loop's client is closed when that loop shuts down.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx

from langchain_dbx_serving.transport._deadline import Deadline


class _LoopClient:
    """An event loop's AsyncClient and the semaphore bounding its requests in flight
    (``None`` for an injected client, whose pool is used as it is)."""

    __slots__ = ("client", "closer", "loop", "slots")

    def __init__(
        self,
        client: httpx.AsyncClient,
        slots: asyncio.Semaphore | None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.client = client
        self.slots = slots
        self.loop = loop
        self.closer: AsyncIterator[None] | None = None

    async def watch_loop(self) -> None:
        """Have the client closed when its event loop shuts down.

        asyncio has no loop-close callback, but ``asyncio.run`` (and ``asyncio.Runner``, which
        pytest-asyncio uses) closes every async generator still open on the loop before closing
        it: a started generator that closes the client in its ``finally`` is such a hook.
        Without it, each ``asyncio.run(model.ainvoke(...))`` leaves its sockets to the garbage
        collector ("unclosed transport").
        """
        if self.loop is None or self.closer is not None:
            return
        self.closer = _close_at_loop_shutdown(self.client)
        await self.closer.__anext__()

    async def aclose(self) -> None:
        if self.closer is not None:
            closer, self.closer = self.closer, None
            await closer.aclose()  # type: ignore[attr-defined]
        else:
            await self.client.aclose()

    async def acquire(self, deadline: Deadline, endpoint: str | None) -> None:
        if self.slots is None:
            return
        left = deadline.remaining()
        if left is None:
            await self.slots.acquire()
            return
        try:
            await asyncio.wait_for(self.slots.acquire(), max(left, 0.001))
        except TimeoutError:
            raise deadline.error("a free connection slot", endpoint=endpoint) from None

    def release(self) -> None:
        if self.slots is not None:
            self.slots.release()

    async def close(self, response: httpx.Response) -> None:
        """Close ``response`` (returning its connection) and free its slot, even if cancelled."""
        try:
            await response.aclose()
        finally:
            self.release()


def _close_on_loop(loop: asyncio.AbstractEventLoop, client: httpx.AsyncClient) -> None:
    if loop.is_closed() or client.is_closed:
        return
    with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
        loop.call_soon_threadsafe(lambda: loop.create_task(client.aclose()))


async def _close_at_loop_shutdown(client: httpx.AsyncClient) -> AsyncIterator[None]:
    try:
        yield
    finally:
        await client.aclose()
