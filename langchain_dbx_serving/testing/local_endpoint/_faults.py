"""How the local endpoint carries out a :class:`~langchain_dbx_serving.testing.replies.Fault`,
and the connection drops a reply itself asks for (``cut_after``).

Faults happen below HTTP: a reset needs the TCP socket, a stall must hold the connection open
without answering. Starlette does not expose the socket, so :class:`ExposeConnection` (the
outermost ASGI layer) records uvicorn's asyncio transport in the request scope; the responses
here use it. Under another ASGI server a reset degrades to closing without a reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import logging
import socket
import struct
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from typing import Any

from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from langchain_dbx_serving.testing.local_endpoint._error_replies import error_response
from langchain_dbx_serving.testing.local_endpoint._exchange import Exchange
from langchain_dbx_serving.testing.local_endpoint._wire import sse_frame
from langchain_dbx_serving.testing.local_endpoint.replies import Delta, ErrorReply, Fault, Reply

__all__ = [
    "CUT",
    "STALL",
    "CutBodyResponse",
    "ExposeConnection",
    "ResetResponse",
    "SSEResponse",
    "StallResponse",
    "before_model",
    "early_fault_response",
    "fault_frames",
    "frames",
    "padded",
    "wait_for_disconnect",
]

CUT = object()  # stream sentinel: drop the connection here
STALL = object()  # stream sentinel: stop sending and wait for the client to give up
_TRANSPORT = "langchain_dbx_serving.transport"
_INTENTIONAL_CUT: contextvars.ContextVar[bool] = contextvars.ContextVar("cut", default=False)
_UNCOMPLETED = "ASGI callable returned without completing response."


class _QuietIntentionalCuts(logging.Filter):
    """uvicorn logs an error when a response is left incomplete; ours are on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (_INTENTIONAL_CUT.get() and record.getMessage() == _UNCOMPLETED)


_uvicorn_logger = logging.getLogger("uvicorn.error")
if not any(isinstance(f, _QuietIntentionalCuts) for f in _uvicorn_logger.filters):
    _uvicorn_logger.addFilter(_QuietIntentionalCuts())


class ExposeConnection:
    """ASGI middleware: put the connection's asyncio transport in ``scope`` for faults."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            # uvicorn's ``send`` is a bound method of its request cycle, which has .transport.
            owner = getattr(send, "__self__", None)
            scope[_TRANSPORT] = getattr(owner, "transport", None)
        await self.app(scope, receive, send)


async def wait_for_disconnect(receive: Receive, seconds: float) -> None:
    """Wait (at most ``seconds``) until the client closes the connection."""

    async def disconnected() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(disconnected(), seconds)


class ResetResponse(Response):
    """Reset the TCP connection (RST, not a clean close) without sending any reply byte."""

    def __init__(self) -> None:
        super().__init__(status_code=500)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        transport = scope.get(_TRANSPORT)
        if transport is None:
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # SO_LINGER with a zero timeout makes close() send RST instead of FIN.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
        await wait_for_disconnect(receive, 5.0)


class StallResponse(Response):
    """Send nothing at all until the client disconnects (or ``seconds`` pass, then close)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(status_code=500)
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await wait_for_disconnect(receive, self.seconds)
        transport = scope.get(_TRANSPORT)
        if transport is not None:
            transport.close()  # never answer, even after the wait


def early_fault_response(fault: Fault, stream: bool, headers: dict[str, str]) -> Response | None:
    """The whole answer when ``fault`` strikes before any event: a stall before the reply, or
    a whole reply replaced by garbage."""
    if fault.kind == "stall" and (fault.after == 0 or not stream):
        return StallResponse(fault.seconds)
    if fault.kind == "garbage" and not stream:
        return Response(fault.data, 200, headers, "application/json")
    return None


def fault_frames(fault: Fault, frame: Any) -> Iterator[Any]:
    """The frames to send instead of ``frame`` (the next event) when ``fault`` strikes."""
    if fault.kind == "stall":
        yield STALL
    elif fault.kind == "drop":
        yield CUT
    elif fault.kind == "garbage":
        yield f"data: {fault.data}\n\n".encode()
        yield frame
    else:
        yield frame


def padded(result: Any, size: int) -> Any:
    """A backend result with ``size`` bytes of extra answer text, as one stream piece."""
    filler = "x" * size
    if isinstance(result, Reply):
        return dataclasses.replace(result, content=(*result.content, filler))
    if isinstance(result, Iterable) and not isinstance(result, (str, bytes, dict)):
        return _then(result, Delta(text=filler))
    return result  # errors and relayed raw replies are left as they are


def _then(pieces: Iterable[Any], last: Any) -> Iterator[Any]:
    yield from pieces
    yield last


def before_model(planned: Fault | ErrorReply | None, request_id: str) -> Response | None:
    """The answer when the planned failure strikes before the model is asked: an error from a
    proxy in front of it, or a reset connection."""
    if isinstance(planned, ErrorReply):
        return error_response(planned, request_id)
    if isinstance(planned, Fault) and planned.kind == "reset":
        return ResetResponse()
    return None


def frames(ex: Exchange, events: Iterable[Mapping[str, Any] | str]) -> Iterator[Any]:
    """SSE frames (bytes) of ``events``, or ``CUT``/``STALL`` where the connection must
    drop/stall: where the reply asks (``cut_after``) or the exchange's planned fault strikes."""
    for sent, event in enumerate(events):
        if ex.cut_after is not None and sent >= ex.cut_after:
            yield CUT
            return
        frame = sse_frame(event, ex.ctx.quirks)
        if ex.fault is not None and sent == ex.fault.after:
            yield from fault_frames(ex.fault, frame)
        else:
            yield frame


class SSEResponse(StreamingResponse):
    """An SSE stream that can stop without completing the HTTP response (a dropped stream)."""

    def __init__(
        self, frames: AsyncIterator[Any], headers: Mapping[str, str], stall: float = 30.0
    ) -> None:
        headers = {**headers, "cache-control": "no-cache"}
        super().__init__(frames, 200, headers, "text/event-stream")
        self.stall = stall  # longest a STALL frame holds the connection

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        async for frame in self.body_iterator:
            if frame is CUT or frame is STALL:
                _INTENTIONAL_CUT.set(True)
                if frame is STALL:
                    await wait_for_disconnect(receive, self.stall)
                return
            await send({"type": "http.response.body", "body": frame, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


class CutBodyResponse(JSONResponse):
    """A JSON reply whose connection drops after half of the announced body."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        half = self.body[: len(self.body) // 2]
        await send({"type": "http.response.body", "body": half, "more_body": True})
        _INTENTIONAL_CUT.set(True)
