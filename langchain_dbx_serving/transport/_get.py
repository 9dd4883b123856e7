"""GET requests through a :class:`~langchain_dbx_serving.transport.client.Transport`.

Background runs are polled and their event feeds re-opened with ``GET``. These helpers use the
transport's pools, credentials, URL safety check, error mapping, size limits and retry policy
(a GET is safe to re-send, so refused connections, 429 and 503 are retried like a POST that
got no reply), and add nothing to the transport's own methods.

Example:
    .. code-block:: python

        body = get_json(model.transport, f"{base}/responses/{run_id}", endpoint="agent")
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx

from langchain_dbx_serving.transport._body import ReplyReader, aread_error_body, read_error_body
from langchain_dbx_serving.transport._errors import secrets_of
from langchain_dbx_serving.transport.client import Transport, _Call
from langchain_dbx_serving.transport.sse import SSEDecoder

__all__ = ["aget_json", "aget_stream", "get_json", "get_stream"]

_SSE = {"Accept": "text/event-stream"}


def _build(transport: Transport, client: Any, call: _Call, accept: dict[str, str] | None) -> Any:
    headers = transport._headers(call.url, accept)
    headers.pop("Content-Type", None)
    call.secrets = secrets_of(headers)
    injected = transport._injected_client or transport._injected_async_client
    timeout = httpx.USE_CLIENT_DEFAULT if injected is not None else transport._timeout()
    return client.build_request("GET", call.url, headers=headers, timeout=timeout)


def _send(
    transport: Transport, url: str, endpoint: str | None, accept: dict[str, str] | None
) -> httpx.Response:
    client = transport._sync_client()
    call = _Call(url, endpoint, b"")
    while True:
        request = _build(transport, client, call, accept)
        failure: httpx.HTTPError | None = None
        try:
            response = client.send(request, stream=True)
        except httpx.HTTPError as exc:
            failure = exc
            error, retryable = transport._connection_failure(exc, call)
        else:
            if response.status_code < 400:
                return response
            body = read_error_body(response)
            error, retryable = transport._status_failure(response, body, call), True
            del body
        delay = transport._retry_delay(call.attempt, call.waited, error, retryable)
        if delay is None:
            raise error from failure
        transport._log_retry(error, delay, call.attempt)
        transport._sleep(delay)
        call.next(delay)


async def _asend(
    transport: Transport, url: str, endpoint: str | None, accept: dict[str, str] | None
) -> tuple[httpx.Response, Any]:
    pool = transport._async_client()
    call = _Call(url, endpoint, b"")
    while True:
        request = _build(transport, pool.client, call, accept)
        failure: httpx.HTTPError | None = None
        await pool.acquire()
        try:
            response = await pool.client.send(request, stream=True)
        except httpx.HTTPError as exc:
            pool.release()
            failure = exc
            error, retryable = transport._connection_failure(exc, call)
        except BaseException:
            pool.release()
            raise
        else:
            if response.status_code < 400:
                return response, pool
            try:
                body = await aread_error_body(response)
                error, retryable = transport._status_failure(response, body, call), True
                del body
            finally:
                pool.release()
        delay = transport._retry_delay(call.attempt, call.waited, error, retryable)
        if delay is None:
            raise error from failure
        transport._log_retry(error, delay, call.attempt)
        await asyncio.sleep(delay)
        call.next(delay)


def get_json(transport: Transport, url: str, *, endpoint: str | None = None) -> Any:
    """GET ``url`` and return the parsed JSON reply."""
    response = _send(transport, url, endpoint, None)
    reader = ReplyReader(response, endpoint, transport.max_reply_bytes)
    try:
        for chunk in response.iter_bytes():
            reader.add(chunk)
    except httpx.HTTPError as exc:
        raise reader.interrupted(exc) from exc
    finally:
        response.close()
    return reader.json()


async def aget_json(transport: Transport, url: str, *, endpoint: str | None = None) -> Any:
    """Async :func:`get_json`."""
    response, pool = await _asend(transport, url, endpoint, None)
    reader = ReplyReader(response, endpoint, transport.max_reply_bytes)
    try:
        async for chunk in response.aiter_bytes():
            reader.add(chunk)
    except httpx.HTTPError as exc:
        raise reader.interrupted(exc) from exc
    finally:
        await pool.close(response)
    return reader.json()


def get_stream(transport: Transport, url: str, *, endpoint: str | None = None) -> Iterator[str]:
    """GET ``url`` and yield each SSE ``data`` payload (a JSON reply is yielded once, whole)."""
    response = _send(transport, url, endpoint, _SSE)
    reader = ReplyReader(response, endpoint, transport.max_reply_bytes)
    try:
        if not reader.is_event_stream:
            for chunk in response.iter_bytes():
                reader.add(chunk)
            yield reader.text()
            return
        decoder = SSEDecoder(transport.max_event_bytes)
        for chunk in response.iter_bytes():
            for event in reader.events(decoder, chunk):
                yield event.data
        for event in decoder.flush():
            yield event.data
    except httpx.HTTPError as exc:
        raise reader.interrupted(exc) from exc
    finally:
        response.close()


async def aget_stream(
    transport: Transport, url: str, *, endpoint: str | None = None
) -> AsyncIterator[str]:
    """Async :func:`get_stream`."""
    response, pool = await _asend(transport, url, endpoint, _SSE)
    reader = ReplyReader(response, endpoint, transport.max_reply_bytes)
    try:
        if not reader.is_event_stream:
            async for chunk in response.aiter_bytes():
                reader.add(chunk)
            yield reader.text()
            return
        decoder = SSEDecoder(transport.max_event_bytes)
        async for chunk in response.aiter_bytes():
            for event in reader.events(decoder, chunk):
                yield event.data
        for event in decoder.flush():
            yield event.data
    except httpx.HTTPError as exc:
        raise reader.interrupted(exc) from exc
    finally:
        await pool.close(response)
