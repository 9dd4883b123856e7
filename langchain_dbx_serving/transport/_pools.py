"""One event loop's async clients, and the slots that bound its requests in flight.

Used by :class:`~langchain_dbx_serving.transport.client.Transport` only: async requests wait for
one of the pool's ``max_connections`` slots before entering httpx (see the transport's module
docstring for why), and each loop's clients are closed when that loop shuts down.

The ``max_connections`` of a loop are split over several small httpx clients (:func:`shards`),
each keeping all its connections alive, and a request goes to the one with the fewest requests
in flight. httpcore's pool walks every connection it holds, and for each idle one all the
others, whenever a request starts or ends: its cost per request grows with the square of the
connections pooled, and with 64 it was most of an ``abatch``'s CPU. Keeping fewer alive (httpx's
default 20) makes the walk cheap, but httpcore 1.0 then closes a connection at the end of nearly
every request once more are open than that, so a busy pool reconnects (on a real endpoint, a
TLS handshake) for almost every request. Small pools avoid both; see docs/benchmarks.md,
"Transport decision".
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from http.cookiejar import CookieJar
from typing import Any

import httpx

from langchain_dbx_serving.transport._deadline import Deadline

SHARD_SIZE = 8
"""At most this many connections in each httpx client of an event loop's pool."""


def shards(max_connections: int) -> list[httpx.Limits]:
    """The limits of the httpx clients that share ``max_connections`` (every connection of each
    kept alive; the sizes add up to ``max_connections``).

    Example:
        >>> [limits.max_connections for limits in shards(64)]
        [8, 8, 8, 8, 8, 8, 8, 8]
        >>> [limits.max_connections for limits in shards(10)]
        [5, 5]
    """
    count = max(1, -(-max_connections // SHARD_SIZE))
    base, extra = divmod(max(1, max_connections), count)
    sizes = [base + (i < extra) for i in range(count)]
    return [httpx.Limits(max_connections=n, max_keepalive_connections=n) for n in sizes]


def shard_clients(max_connections: int, **options: Any) -> list[httpx.AsyncClient]:
    """The AsyncClients of one event loop: :func:`shards` of ``max_connections``, built with
    the same ``options``, one cookie store and one TLS context between them (what httpx would
    build for each: the CA bundle loaded once, not once per client), so they behave as one."""
    if "verify" not in options:
        options["verify"] = httpx.create_ssl_context()
    jar = CookieJar()
    return [
        httpx.AsyncClient(limits=limits, cookies=jar, **options)
        for limits in shards(max_connections)
    ]


def _pools_of(client: httpx.AsyncClient) -> list[Any]:
    """httpcore's connection pools under ``client`` (private attributes: none if they move)."""
    transports = [getattr(client, "_transport", None), *getattr(client, "_mounts", {}).values()]
    pools = [getattr(transport, "_pool", None) for transport in transports]
    return [pool for pool in pools if isinstance(getattr(pool, "_requests", None), list)]


class _LoopClient:
    """An event loop's AsyncClients and the semaphore bounding its requests in flight
    (``None`` for an injected client, whose pool is used as it is)."""

    __slots__ = ("client", "clients", "closer", "loop", "pools", "slots", "turn")

    def __init__(
        self,
        client: httpx.AsyncClient | Sequence[httpx.AsyncClient],
        slots: asyncio.Semaphore | None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        clients = [client] if isinstance(client, httpx.AsyncClient) else list(client)
        self.client = clients[0]  # the one requests are built with; all are configured alike
        self.clients = clients
        self.pools = [_pools_of(c) for c in clients] if len(clients) > 1 else []
        self.turn = 0
        self.slots = slots
        self.loop = loop
        self.closer: AsyncIterator[None] | None = None

    def sender(self) -> httpx.AsyncClient:
        """The client to send the next request on: the one with the fewest requests in flight
        (httpcore adds a request to its pool before its first wait, so concurrent picks see
        each other)."""
        if len(self.clients) == 1:
            return self.client
        if not all(self.pools):  # httpx's internals moved: take turns instead
            self.turn = (self.turn + 1) % len(self.clients)
            return self.clients[self.turn]
        best, fewest = self.client, -1
        for client, pools in zip(self.clients, self.pools, strict=True):
            busy = sum(len(pool._requests) for pool in pools)
            if busy == 0:
                return client
            if fewest < 0 or busy < fewest:
                best, fewest = client, busy
        return best

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
        self.closer = _close_at_loop_shutdown(self.clients)
        await self.closer.__anext__()

    async def aclose(self) -> None:
        if self.closer is not None:
            closer, self.closer = self.closer, None
            await closer.aclose()  # type: ignore[attr-defined]
        else:
            await _close_all(self.clients)

    async def acquire(self, deadline: Deadline, endpoint: str | None) -> None:
        if self.slots is None:
            return
        if not self.slots.locked():  # a free slot is taken at once: no timer, no task
            await self.slots.acquire()
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


async def _close_all(clients: list[httpx.AsyncClient]) -> None:
    try:
        await clients[0].aclose()
    finally:
        if len(clients) > 1:
            await _close_all(clients[1:])


async def _close_at_loop_shutdown(clients: list[httpx.AsyncClient]) -> AsyncIterator[None]:
    try:
        yield
    finally:
        await _close_all(clients)
