"""httpx transports whose first event stream dies after N frames (a connection dropped mid-stream).

For servers we cannot make drop a stream themselves (the real ``LongRunningAgentServer``): the
client's own connection breaks after the N-th SSE frame with ``httpx.ReadError``, the same error
a reset connection raises, and every later request passes through untouched.

Example::

    chat = ChatDatabricksResponses(..., http_client=httpx.Client(transport=CutAfterFrames(3)))
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx


def _cut_point(buffer: bytes, frames: int) -> int | None:
    """The end of the ``frames``-th frame in ``buffer`` (after its blank line), if there."""
    end = 0
    for _ in range(frames):
        found = buffer.find(b"\n\n", end)
        if found < 0:
            return None
        end = found + 2
    return end


class _CutStream(httpx.SyncByteStream):
    def __init__(self, inner: httpx.SyncByteStream, frames: int) -> None:
        self.inner = inner
        self.frames = frames

    def __iter__(self) -> Iterator[bytes]:
        buffer = b""
        for chunk in self.inner:
            buffer += chunk
            end = _cut_point(buffer, self.frames)
            if end is not None:
                yield buffer[:end]
                raise httpx.ReadError("connection dropped by the test")
        yield buffer

    def close(self) -> None:
        self.inner.close()


class _ACutStream(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, frames: int) -> None:
        self.inner = inner
        self.frames = frames

    async def __aiter__(self) -> AsyncIterator[bytes]:
        buffer = b""
        async for chunk in self.inner:
            buffer += chunk
            end = _cut_point(buffer, self.frames)
            if end is not None:
                yield buffer[:end]
                raise httpx.ReadError("connection dropped by the test")
        yield buffer

    async def aclose(self) -> None:
        await self.inner.aclose()


def _is_stream(response: httpx.Response) -> bool:
    return "text/event-stream" in response.headers.get("content-type", "")


class CutAfterFrames(httpx.BaseTransport):
    """Drop the first event stream after ``frames`` frames."""

    def __init__(self, frames: int) -> None:
        self.inner = httpx.HTTPTransport()
        self.frames = frames
        self.cut = False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if self.cut or not _is_stream(response):
            return response
        self.cut = True
        assert isinstance(response.stream, httpx.SyncByteStream)
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=_CutStream(response.stream, self.frames),
            extensions=response.extensions,
        )

    def close(self) -> None:
        self.inner.close()


class ACutAfterFrames(httpx.AsyncBaseTransport):
    """Async :class:`CutAfterFrames`."""

    def __init__(self, frames: int) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.frames = frames
        self.cut = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if self.cut or not _is_stream(response):
            return response
        self.cut = True
        assert isinstance(response.stream, httpx.AsyncByteStream)
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=_ACutStream(response.stream, self.frames),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self.inner.aclose()
