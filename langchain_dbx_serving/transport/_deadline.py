"""One deadline per call, enforced at every socket operation.

``timeout`` bounds a whole call: resolving credentials, connecting, sending, every read of the
reply and every retry wait. httpx's own timeouts are per operation (a server that sends a
keep-alive comment every second, or one byte every 50 ms, would keep a call alive forever), so
the transport installs a thin network backend (:func:`install`) under the httpx clients it
creates. Each socket operation of an attempt is given ``min(its own timeout, time left)`` and
fails at once when no time is left; the same wrapper records whether any byte of a reply
arrived, which is what decides whether an attempt may be re-sent.

The attempt's book-keeping (:class:`Attempt`) travels to the socket in a context variable set
around ``client.send`` only; the connection keeps it for the reads of the body that follow.

Example:
    >>> deadline = Deadline(30)
    >>> 29 < deadline.remaining() <= 30
    True
    >>> Deadline(None).remaining() is None
    True
"""

from __future__ import annotations

import contextlib
import ssl
import time
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

import httpcore
import httpx

from langchain_dbx_serving.errors import ServingTimeoutError

__all__ = ["Attempt", "Deadline", "attempt_scope", "install", "is_tls_failure"]

_CONNECT_CAP = 10.0
_ATTEMPT: ContextVar[Attempt | None] = ContextVar("langchain_dbx_serving_attempt", default=None)


class Deadline:
    """The moment a call must end by (``seconds=None``: no bound)."""

    __slots__ = ("at", "seconds", "start")

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self.start = time.monotonic()
        self.at = None if seconds is None else self.start + max(0.0, seconds)

    def remaining(self) -> float | None:
        return None if self.at is None else self.at - time.monotonic()

    @property
    def expired(self) -> bool:
        return self.at is not None and time.monotonic() >= self.at

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def clamp(self, timeout: float | None) -> float | None:
        """``timeout`` shortened to the time left (at least 1 ms: 0 would mean non-blocking)."""
        left = self.remaining()
        if left is None:
            return timeout
        left = max(left, 0.001)
        return left if timeout is None else min(timeout, left)

    def httpx_timeout(self) -> httpx.Timeout:
        """Per-operation httpx timeouts, none longer than the time left."""
        left = self.remaining()
        if left is None:
            return httpx.Timeout(None, connect=_CONNECT_CAP)
        left = max(left, 0.001)
        return httpx.Timeout(left, connect=min(_CONNECT_CAP, left))

    def error(
        self, waiting_for: str, *, endpoint: str | None, request_id: str | None = None
    ) -> ServingTimeoutError:
        """The error of a call that ran out of time while ``waiting_for`` something."""
        who = f"endpoint {endpoint!r}" if endpoint else "the call"
        return ServingTimeoutError(
            f"{who} did not finish within timeout={self.seconds:g}s: gave up after "
            f"{self.elapsed():.1f}s waiting for {waiting_for} — timeout= bounds the whole call "
            "(retries, keep-alive comments and slow streams included); raise it for slow models "
            "or long streams",
            endpoint=endpoint,
            request_id=request_id,
        )


class Attempt:
    """What one HTTP attempt has done so far, as seen from its socket."""

    __slots__ = ("connecting", "deadline", "host", "received", "sent")

    def __init__(self, deadline: Deadline, host: str) -> None:
        self.deadline = deadline
        self.host = host
        self.connecting = False
        self.sent = False
        self.received = 0  # bytes of the reply (status line included) that arrived

    def waiting_for(self) -> str:
        if self.connecting or not self.sent:
            return f"a connection to {self.host}"
        if not self.received:
            return "the first byte of the reply"
        return (
            f"the rest of the reply ({self.received} bytes received; keep-alive comments and "
            "slow trickles do not extend the deadline)"
        )

    def clamp(self, timeout: float | None, exc: type[Exception]) -> float | None:
        if self.deadline.expired:
            raise exc(f"the call's deadline passed while waiting for {self.waiting_for()}")
        return self.deadline.clamp(timeout)


@contextlib.contextmanager
def attempt_scope(attempt: Attempt) -> Iterator[None]:
    """Make ``attempt`` visible to the sockets used while the request is sent."""
    token = _ATTEMPT.set(attempt)
    try:
        yield
    finally:
        _ATTEMPT.reset(token)


def is_tls_failure(exc: BaseException) -> bool:
    """Whether a connect failure was a TLS handshake failure (never transient)."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLError) or "[SSL" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


# -- the network backend ----------------------------------------------------------------------
class _Stream(httpcore.NetworkStream):
    __slots__ = ("attempt", "inner")

    def __init__(self, inner: httpcore.NetworkStream, attempt: Attempt | None) -> None:
        self.inner = inner
        self.attempt = attempt

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        attempt = self.attempt
        if attempt is not None:
            timeout = attempt.clamp(timeout, httpcore.ReadTimeout)
        data = self.inner.read(max_bytes, timeout)
        if attempt is not None:
            attempt.received += len(data)
        return data

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        attempt = self.attempt = _ATTEMPT.get()  # a pooled connection serves a new attempt
        if attempt is not None:
            timeout = attempt.clamp(timeout, httpcore.WriteTimeout)
            attempt.sent = True
        self.inner.write(buffer, timeout)

    def close(self) -> None:
        self.inner.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: Any = None
    ) -> httpcore.NetworkStream:
        if self.attempt is not None:
            timeout = self.attempt.clamp(timeout, httpcore.ConnectTimeout)
        return _Stream(self.inner.start_tls(ssl_context, server_hostname, timeout), self.attempt)

    def get_extra_info(self, info: str) -> Any:
        return self.inner.get_extra_info(info)


class _AsyncStream(httpcore.AsyncNetworkStream):
    __slots__ = ("attempt", "inner")

    def __init__(self, inner: httpcore.AsyncNetworkStream, attempt: Attempt | None) -> None:
        self.inner = inner
        self.attempt = attempt

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        attempt = self.attempt
        if attempt is not None:
            timeout = attempt.clamp(timeout, httpcore.ReadTimeout)
        data = await self.inner.read(max_bytes, timeout)
        if attempt is not None:
            attempt.received += len(data)
        return data

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        attempt = self.attempt = _ATTEMPT.get()
        if attempt is not None:
            timeout = attempt.clamp(timeout, httpcore.WriteTimeout)
            attempt.sent = True
        await self.inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: Any = None
    ) -> httpcore.AsyncNetworkStream:
        if self.attempt is not None:
            timeout = self.attempt.clamp(timeout, httpcore.ConnectTimeout)
        inner = await self.inner.start_tls(ssl_context, server_hostname, timeout)
        return _AsyncStream(inner, self.attempt)

    def get_extra_info(self, info: str) -> Any:
        return self.inner.get_extra_info(info)


class _Backend(httpcore.NetworkBackend):
    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self.inner = inner

    def connect_tcp(
        self, host: str, port: int, timeout: float | None = None, **kwargs: Any
    ) -> httpcore.NetworkStream:
        attempt = _ATTEMPT.get()
        if attempt is None:
            return self.inner.connect_tcp(host, port, timeout, **kwargs)
        timeout = attempt.clamp(timeout, httpcore.ConnectTimeout)
        attempt.connecting = True
        try:
            stream = self.inner.connect_tcp(host, port, timeout, **kwargs)
        finally:
            attempt.connecting = False
        return _Stream(stream, attempt)

    def connect_unix_socket(self, *args: Any, **kwargs: Any) -> httpcore.NetworkStream:
        return _Stream(self.inner.connect_unix_socket(*args, **kwargs), _ATTEMPT.get())

    def sleep(self, seconds: float) -> None:
        self.inner.sleep(seconds)


class _AsyncBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, inner: httpcore.AsyncNetworkBackend) -> None:
        self.inner = inner

    async def connect_tcp(
        self, host: str, port: int, timeout: float | None = None, **kwargs: Any
    ) -> httpcore.AsyncNetworkStream:
        attempt = _ATTEMPT.get()
        if attempt is None:
            return await self.inner.connect_tcp(host, port, timeout, **kwargs)
        timeout = attempt.clamp(timeout, httpcore.ConnectTimeout)
        attempt.connecting = True
        try:
            stream = await self.inner.connect_tcp(host, port, timeout, **kwargs)
        finally:
            attempt.connecting = False
        return _AsyncStream(stream, attempt)

    async def connect_unix_socket(self, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        return _AsyncStream(await self.inner.connect_unix_socket(*args, **kwargs), _ATTEMPT.get())

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


def install(client: httpx.Client | httpx.AsyncClient) -> bool:
    """Put the deadline-enforcing backend under every connection pool of ``client``.

    Returns whether it could (httpx keeps its pools in private attributes; if a future httpx
    moves them, the transport still works, with httpx's per-operation timeouts and a more
    cautious retry rule).
    """
    transports = [getattr(client, "_transport", None), *getattr(client, "_mounts", {}).values()]
    done = False
    for transport in transports:
        pool = getattr(transport, "_pool", None)
        backend = getattr(pool, "_network_backend", None)
        if backend is None or isinstance(backend, (_Backend, _AsyncBackend)):
            continue
        wrapper = _AsyncBackend if isinstance(client, httpx.AsyncClient) else _Backend
        pool._network_backend = wrapper(backend)  # type: ignore[union-attr]
        done = True
    return done
