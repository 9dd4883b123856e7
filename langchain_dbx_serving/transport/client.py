"""Sending requests to serving endpoints: pooled clients, auth headers, retries, SSE, errors.

:class:`Transport` is the only place that performs HTTP. It retries 429, 503 and failures to
connect, but only before any byte of the reply has reached the caller: once a stream has
started, a failure is raised (with what arrived), never silently re-sent.

Example:
    >>> from langchain_dbx_serving.auth import TokenCredentials
    >>> transport = Transport(lambda: TokenCredentials("t"), timeout=30, max_retries=2)
    >>> transport.max_retries
    2
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any

import httpx

from langchain_dbx_serving.auth import Credentials
from langchain_dbx_serving.errors import (
    APIStatusError,
    DatabricksServingError,
    MalformedResponseError,
    ServingConnectionError,
    ServingTimeoutError,
)
from langchain_dbx_serving.transport._errors import (
    before_reply_error,
    during_reply_error,
    request_id_of,
    status_error,
)
from langchain_dbx_serving.transport.sse import SSEDecoder

__all__ = ["Transport"]

logger = logging.getLogger("langchain_dbx_serving")

_RETRY_STATUSES = frozenset({429, 503})
_INITIAL_BACKOFF = 0.5
_MAX_BACKOFF = 8.0
_USER_AGENT = "langchain-dbx-serving/0.1"


def _dumps(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


class Transport:
    """POSTs JSON to serving endpoints and returns parsed JSON or SSE ``data`` payloads.

    ``credentials`` is a factory called once, on the first request, so that constructing a
    chat model never reads profiles or imports databricks-sdk. Injected ``http_client`` /
    ``http_async_client`` are used as they are (their own timeouts apply) and never closed by us.
    """

    def __init__(
        self,
        credentials: Callable[[], Credentials],
        *,
        timeout: float | None = 120.0,
        max_retries: int = 3,
        http_client: httpx.Client | None = None,
        http_async_client: httpx.AsyncClient | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._credentials_factory = credentials
        self._credentials: Credentials | None = None
        self.timeout = timeout
        self.max_retries = max(0, max_retries)
        self._injected_client = http_client
        self._injected_async_client = http_async_client
        self._client: httpx.Client | None = None
        self._async_clients: dict[int, tuple[asyncio.AbstractEventLoop, httpx.AsyncClient]] = {}
        self._lock = threading.Lock()
        self._sleep = sleep

    # -- state that must not cross process boundaries -------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.update(
            _client=None,
            _async_clients={},
            _lock=None,
            _credentials=None,
            _injected_client=None,
            _injected_async_client=None,
        )
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    @property
    def credentials(self) -> Credentials:
        """The resolved credentials (resolved on first use)."""
        if self._credentials is None:
            self._credentials = self._credentials_factory()
        return self._credentials

    def _timeout(self) -> httpx.Timeout:
        if self.timeout is None:
            return httpx.Timeout(None, connect=10.0)
        return httpx.Timeout(self.timeout, connect=min(10.0, self.timeout))

    def _limits(self) -> httpx.Limits:
        return httpx.Limits(max_connections=100, max_keepalive_connections=64)

    def _sync_client(self) -> httpx.Client:
        if self._injected_client is not None:
            return self._injected_client
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = httpx.Client(timeout=self._timeout(), limits=self._limits())
        return self._client

    def _async_client(self) -> httpx.AsyncClient:
        if self._injected_async_client is not None:
            return self._injected_async_client
        # An AsyncClient's connections belong to the event loop that opened them: keep one
        # client per running loop, so code calling asyncio.run() twice keeps working.
        loop = asyncio.get_running_loop()
        entry = self._async_clients.get(id(loop))
        if entry is None or entry[0] is not loop:
            for key, (old_loop, _) in list(self._async_clients.items()):
                if old_loop.is_closed():
                    del self._async_clients[key]
            client = httpx.AsyncClient(timeout=self._timeout(), limits=self._limits())
            self._async_clients[id(loop)] = (loop, client)
            return client
        return entry[1]

    def close(self) -> None:
        """Close the clients this transport created (not injected ones)."""
        if self._client is not None:
            self._client.close()
            self._client = None

    async def aclose(self) -> None:
        """Close the async client of the running loop, if this transport created it."""
        entry = self._async_clients.pop(id(asyncio.get_running_loop()), None)
        if entry is not None:
            await entry[1].aclose()

    # -- retries ----------------------------------------------------------------------------------
    def _headers(self, extra: Mapping[str, str] | None) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "User-Agent": _USER_AGENT}
        headers.update(self.credentials.headers())
        if extra:
            headers.update(extra)
        return headers

    def _retry_delay(self, attempt: int, error: DatabricksServingError) -> float | None:
        """Seconds to wait before retrying after ``error``, or ``None`` to give up."""
        if attempt >= self.max_retries:
            return None
        if isinstance(error, APIStatusError):
            if error.status_code not in _RETRY_STATUSES:
                return None
            if error.retry_after is not None:
                return error.retry_after
        elif isinstance(error, ServingTimeoutError):
            # Only a connect timeout is safe to retry: nothing reached the server.
            if "could not connect" not in error.message:
                return None
        elif not isinstance(error, ServingConnectionError):
            return None
        ceiling = min(_MAX_BACKOFF, _INITIAL_BACKOFF * 2**attempt)
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def _log_retry(self, error: DatabricksServingError, delay: float, attempt: int) -> None:
        logger.debug(
            "%s; retrying in %.2fs (retry %d of %d)",
            error.message,
            delay,
            attempt + 1,
            self.max_retries,
        )

    # -- sync -------------------------------------------------------------------------------------
    def _send(
        self, url: str, body: Any, endpoint: str | None, headers: Mapping[str, str] | None
    ) -> httpx.Response:
        client = self._sync_client()
        content = _dumps(body)
        timeout = self._timeout() if self._injected_client is None else httpx.USE_CLIENT_DEFAULT
        attempt = 0
        while True:
            request = client.build_request(
                "POST", url, content=content, headers=self._headers(headers), timeout=timeout
            )
            try:
                response = client.send(request, stream=True)
            except httpx.HTTPError as exc:
                error: DatabricksServingError = before_reply_error(exc, url=url, endpoint=endpoint)
            else:
                if response.status_code < 400:
                    return response
                try:
                    raw = response.read()
                except httpx.HTTPError:
                    raw = b""
                finally:
                    response.close()
                error = status_error(response, raw, endpoint=endpoint, retries=attempt)
            delay = self._retry_delay(attempt, error)
            if delay is None:
                raise error
            self._log_retry(error, delay, attempt)
            self._sleep(delay)
            attempt += 1

    def post_json(
        self,
        url: str,
        body: Any,
        *,
        endpoint: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """POST ``body`` and return the parsed JSON reply."""
        response = self._send(url, body, endpoint, headers)
        try:
            raw = response.read()
        except httpx.HTTPError as exc:
            raise during_reply_error(
                exc, endpoint=endpoint, request_id=request_id_of(response.headers)
            ) from exc
        finally:
            response.close()
        return _parse_json(raw, response, endpoint)

    def stream(
        self,
        url: str,
        body: Any,
        *,
        endpoint: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Iterator[str]:
        """POST ``body`` and yield each SSE ``data`` payload as it arrives.

        A reply that is not an event stream (a plain JSON body) is yielded once, whole.
        """
        response = self._send(url, body, endpoint, headers)
        request_id = request_id_of(response.headers)
        try:
            if not _is_event_stream(response):
                yield response.read().decode("utf-8", "replace")
                return
            decoder = SSEDecoder()
            for chunk in response.iter_bytes():
                for event in decoder.feed(chunk):
                    yield event.data
            for event in decoder.flush():
                yield event.data
        except httpx.HTTPError as exc:
            raise during_reply_error(exc, endpoint=endpoint, request_id=request_id) from exc
        finally:
            response.close()

    # -- async ------------------------------------------------------------------------------------
    async def _asend(
        self, url: str, body: Any, endpoint: str | None, headers: Mapping[str, str] | None
    ) -> httpx.Response:
        client = self._async_client()
        content = _dumps(body)
        timeout = (
            self._timeout() if self._injected_async_client is None else httpx.USE_CLIENT_DEFAULT
        )
        attempt = 0
        while True:
            request = client.build_request(
                "POST", url, content=content, headers=self._headers(headers), timeout=timeout
            )
            try:
                response = await client.send(request, stream=True)
            except httpx.HTTPError as exc:
                error: DatabricksServingError = before_reply_error(exc, url=url, endpoint=endpoint)
            else:
                if response.status_code < 400:
                    return response
                try:
                    raw = await response.aread()
                except httpx.HTTPError:
                    raw = b""
                finally:
                    await response.aclose()
                error = status_error(response, raw, endpoint=endpoint, retries=attempt)
            delay = self._retry_delay(attempt, error)
            if delay is None:
                raise error
            self._log_retry(error, delay, attempt)
            await asyncio.sleep(delay)
            attempt += 1

    async def apost_json(
        self,
        url: str,
        body: Any,
        *,
        endpoint: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """Async :meth:`post_json`."""
        response = await self._asend(url, body, endpoint, headers)
        try:
            raw = await response.aread()
        except httpx.HTTPError as exc:
            raise during_reply_error(
                exc, endpoint=endpoint, request_id=request_id_of(response.headers)
            ) from exc
        finally:
            await response.aclose()
        return _parse_json(raw, response, endpoint)

    async def astream(
        self,
        url: str,
        body: Any,
        *,
        endpoint: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> AsyncIterator[str]:
        """Async :meth:`stream`."""
        response = await self._asend(url, body, endpoint, headers)
        request_id = request_id_of(response.headers)
        try:
            if not _is_event_stream(response):
                yield (await response.aread()).decode("utf-8", "replace")
                return
            decoder = SSEDecoder()
            async for chunk in response.aiter_bytes():
                for event in decoder.feed(chunk):
                    yield event.data
            for event in decoder.flush():
                yield event.data
        except httpx.HTTPError as exc:
            raise during_reply_error(exc, endpoint=endpoint, request_id=request_id) from exc
        finally:
            await response.aclose()


def _is_event_stream(response: httpx.Response) -> bool:
    return "event-stream" in response.headers.get("content-type", "")


def _parse_json(raw: bytes, response: httpx.Response, endpoint: str | None) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        who = f"endpoint {endpoint!r}" if endpoint else "the endpoint"
        kind = response.headers.get("content-type", "no content-type")
        preview = raw[:200].decode("utf-8", "replace")
        raise MalformedResponseError(
            f"{who} returned a reply that is not JSON ({kind}): {preview!r} — check that the URL "
            "points at a serving endpoint",
            event=preview,
            endpoint=endpoint,
            request_id=request_id_of(response.headers),
        ) from None
