"""Reading reply bodies within limits, and without keeping what they may echo.

:class:`ReplyReader` collects a successful reply (whole, or an event stream's SSE events) up to
``max_reply_bytes``; :func:`read_error_body` reads the start of an error reply, where its
message is, and drops the connection instead of downloading a whole error page.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any

import httpx

from langchain_dbx_serving._json import loads
from langchain_dbx_serving._redact import redact, secrets_in
from langchain_dbx_serving.errors import DatabricksServingError, MalformedResponseError
from langchain_dbx_serving.transport._decompress import BodyDecoder
from langchain_dbx_serving.transport._errors import during_reply_error, request_id_of
from langchain_dbx_serving.transport.sse import SSEDecoder

__all__ = ["MAX_ERROR_BODY", "ReplyReader", "aread_error_body", "read_error_body"]

MAX_ERROR_BODY = 64 * 1024


class ReplyReader:
    """Collects a successful reply's body within ``limit`` bytes; shared by sync and async."""

    __slots__ = (
        "declared",
        "decoder",
        "endpoint",
        "limit",
        "parts",
        "request_id",
        "response",
        "size",
    )

    def __init__(self, response: httpx.Response, endpoint: str | None, limit: int) -> None:
        self.response = response
        self.endpoint = endpoint
        self.limit = limit
        self.request_id = request_id_of(response.headers)
        self.parts: list[bytes] = []
        self.size = 0
        declared = response.headers.get("content-length", "")
        encoding = _encoding(response)
        self.decoder = _decoder(encoding, endpoint, self.request_id)
        # A declared length counts against the bound only when it is the decoded length.
        plain = (encoding or "").strip().lower() in ("", "identity")
        self.declared = int(declared) if declared.isdigit() and plain else 0

    def decoded(self, raw: bytes) -> Iterable[bytes]:
        """The decoded pieces of ``raw`` (undoing ``Content-Encoding`` within bounds)."""
        return self.decoder.feed(raw)

    def rest(self) -> Iterable[bytes]:
        """Decoded bytes still held by the decompressor once the raw body ended."""
        return self.decoder.flush()

    @property
    def is_event_stream(self) -> bool:
        return "event-stream" in self.response.headers.get("content-type", "")

    def add(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if max(self.size, self.declared) > self.limit:
            raise self._too_large(max(self.size, self.declared))
        self.parts.append(chunk)

    def payloads(self, decoder: SSEDecoder, chunk: bytes) -> list[str]:
        """The ``data`` of the events ``chunk`` (decoded bytes) completes."""
        try:
            return decoder.payloads(chunk)
        except MalformedResponseError as exc:
            exc.endpoint, exc.request_id = self.endpoint, self.request_id
            raise

    def rest_payloads(self, decoder: SSEDecoder) -> Iterator[str]:
        """Once the raw body ended: the payloads of what the decompressor and ``decoder``
        still hold (a last event whose blank line never came, see ``SSEDecoder.flush``)."""
        for piece in self.rest():
            yield from self.payloads(decoder, piece)
        for event in decoder.flush():
            yield event.data

    def _too_large(self, size: int) -> MalformedResponseError:
        who = f"endpoint {self.endpoint!r}" if self.endpoint else "the endpoint"
        return MalformedResponseError(
            f"the reply from {who} is larger than {self.limit} bytes ({size} announced or "
            "received) — refusing to hold it in memory; raise the transport's max_reply_bytes "
            "if such replies are expected",
            event=f"<{size} bytes>",
            endpoint=self.endpoint,
            request_id=self.request_id,
        )

    def interrupted(self, exc: httpx.HTTPError) -> DatabricksServingError:
        return during_reply_error(exc, endpoint=self.endpoint, request_id=self.request_id)

    def text(self) -> str:
        return b"".join(self.parts).decode("utf-8", "replace")

    def json(self) -> Any:
        try:
            return loads(b"".join(self.parts))
        except ValueError:
            pass
        raise self._not_json()  # no local holds the body (it may echo the token)

    def _not_json(self) -> MalformedResponseError:
        who = f"endpoint {self.endpoint!r}" if self.endpoint else "the endpoint"
        kind = self.response.headers.get("content-type", "no content-type")
        raw = b"".join(self.parts)[:200].decode("utf-8", "replace")
        preview = redact(raw, secrets_in(self.response.request.headers))
        return MalformedResponseError(
            f"{who} returned a reply that is not JSON ({kind}): {preview!r} — check that the URL "
            "points at a serving endpoint",
            event=preview,
            endpoint=self.endpoint,
            request_id=self.request_id,
        )


def raw_chunks(response: httpx.Response) -> Iterator[bytes]:
    """The body as received (still compressed). A response built from bytes (mock
    transports) was read, and decoded, when it was made: its content is yielded as it is."""
    if response.is_stream_consumed:
        yield response.content
    else:
        yield from response.iter_raw()


async def araw_chunks(response: httpx.Response) -> AsyncIterator[bytes]:
    """Async :func:`raw_chunks`."""
    if response.is_stream_consumed:
        yield response.content
    else:
        async for raw in response.aiter_raw():
            yield raw


def _encoding(response: httpx.Response) -> str | None:
    return None if response.is_stream_consumed else response.headers.get("content-encoding")


def _decoder(encoding: str | None, endpoint: str | None, request_id: str | None) -> BodyDecoder:
    try:
        return BodyDecoder(encoding)
    except MalformedResponseError as exc:
        exc.endpoint, exc.request_id = endpoint, request_id
        raise


def _decoded_error_chunks(response: httpx.Response) -> Iterable[bytes]:
    try:
        decoder = BodyDecoder(_encoding(response))
    except MalformedResponseError:
        return
    for raw in raw_chunks(response):
        yield from decoder.feed(raw)
    yield from decoder.flush()


def read_error_body(response: httpx.Response) -> bytes:
    """At most ``MAX_ERROR_BODY`` bytes of an error reply (its message is near the start);
    the response is closed."""
    parts: list[bytes] = []
    size = 0
    try:
        for chunk in _decoded_error_chunks(response):
            parts.append(chunk)
            size += len(chunk)
            if size >= MAX_ERROR_BODY:
                break
    except (httpx.HTTPError, MalformedResponseError):
        pass
    finally:
        response.close()
    return b"".join(parts)[:MAX_ERROR_BODY]


async def aread_error_body(response: httpx.Response) -> bytes:
    """Async :func:`read_error_body`."""
    parts: list[bytes] = []
    size = 0
    try:
        decoder = BodyDecoder(_encoding(response))
        async for raw in araw_chunks(response):
            for chunk in decoder.feed(raw):
                parts.append(chunk)
                size += len(chunk)
            if size >= MAX_ERROR_BODY:
                break
    except (httpx.HTTPError, MalformedResponseError):
        pass
    finally:
        await response.aclose()
    return b"".join(parts)[:MAX_ERROR_BODY]
