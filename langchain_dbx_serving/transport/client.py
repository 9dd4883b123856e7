"""Sending requests to serving endpoints: pooled clients, auth headers, retries, SSE, errors.

:class:`Transport` is the only place that performs HTTP. Its retry discipline:

- ``timeout`` bounds the whole call (credentials, connect, every read, retry waits), enforced
  at the socket (``_deadline``);
- it retries 429, 503 and failures that leave the request safe to re-send (refused
  connections, connect timeouts, connections that broke before any byte of a reply, seen at
  the socket; ``_classify``): once a byte of a reply (the status line included) has arrived,
  a failure is raised (with what arrived), never re-sent;
- at most ``max_retries`` retries (``0`` disables them), waiting ``Retry-After`` when the server
  says, else exponential backoff with jitter (0.5 s, 1 s, 2 s, ... capped at 8 s), and never more
  than ``retry_budget`` seconds in total;
- every retry is logged at DEBUG on the ``langchain_dbx_serving`` logger, with no credentials,
  and dispatched as the ``databricks_retry`` custom event (``_retry_events``).

Async requests wait for one of the pool's ``max_connections`` slots before entering httpx:
httpcore's pool rescans every queued request whenever one is added, so 2,000 requests queued
on a 64-connection pool cost minutes of CPU, while a semaphore queues them in O(1).

Credentials are attached here and nowhere else, so this is also where a plain ``http://`` URL
to a host that is not loopback is refused (unless ``allow_insecure_http``), and where a token a
server echoes back in an error message is masked.

Example:
    >>> from langchain_dbx_serving.auth import TokenCredentials
    >>> transport = Transport(lambda: TokenCredentials("t"), timeout=30, max_retries=2)
    >>> transport.max_retries
    2
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any

import httpx

from langchain_dbx_serving.auth import Credentials, TokenCredentials, check_url_is_safe
from langchain_dbx_serving.errors import APIStatusError, DatabricksServingError
from langchain_dbx_serving.transport import _deadline, _direct, _retry_events
from langchain_dbx_serving.transport._body import (
    ReplyReader,
    araw_chunks,
    aread_error_body,
    raw_chunks,
    read_error_body,
)
from langchain_dbx_serving.transport._call import _GET, _Call, url_of
from langchain_dbx_serving.transport._classify import attempt_failure
from langchain_dbx_serving.transport._credentials import (
    aheaders_within,
    auth_method,
    headers_within,
)
from langchain_dbx_serving.transport._deadline import Deadline, attempt_scope
from langchain_dbx_serving.transport._decompress import ACCEPT_ENCODING
from langchain_dbx_serving.transport._errors import secrets_of, status_error
from langchain_dbx_serving.transport._pools import _close_on_loop, _LoopClient, shard_clients
from langchain_dbx_serving.transport._proxy import check_first_hop, client_options
from langchain_dbx_serving.transport.sse import DEFAULT_MAX_EVENT_BYTES, SSEDecoder

__all__ = ["Transport"]

logger = logging.getLogger("langchain_dbx_serving")

_RETRY_STATUSES = frozenset({429, 503})
_INITIAL_BACKOFF = 0.5
_MAX_BACKOFF = 8.0
_RETRY_BUDGET = 60.0
_MAX_REPLY_BYTES = 256 * 1024 * 1024
_MAX_CONNECTIONS = 64
_USER_AGENT = "langchain-dbx-serving/0.1"


class Transport:
    """POSTs JSON to serving endpoints and returns parsed JSON or SSE ``data`` payloads.

    ``credentials`` is a factory called once, on the first request, so that constructing a
    chat model never reads profiles or imports databricks-sdk. Injected ``http_client`` /
    ``http_async_client`` are used as they are (their own timeouts apply) and never closed by us.
    ``max_reply_bytes`` bounds a whole reply and ``max_event_bytes`` one streamed event: a
    runaway reply raises :class:`~langchain_dbx_serving.errors.MalformedResponseError` instead
    of exhausting memory. ``max_connections`` sizes the pools this transport creates (and how
    many async requests are in flight at once on them).
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
        allow_insecure_http: bool = False,
        retry_budget: float = _RETRY_BUDGET,
        max_reply_bytes: int = _MAX_REPLY_BYTES,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        max_connections: int = _MAX_CONNECTIONS,
    ) -> None:
        self._credentials_factory = credentials
        self._credentials: Credentials | None = None
        self.timeout = timeout
        self.max_retries = max(0, max_retries)
        self.allow_insecure_http = allow_insecure_http
        self.retry_budget = retry_budget
        self.max_reply_bytes = max_reply_bytes
        self.max_event_bytes = max_event_bytes
        self.max_connections = max(1, max_connections)
        self._injected_client = http_client
        self._injected_async_client = http_async_client
        self._client: httpx.Client | None = None
        self._async_clients: dict[int, _LoopClient] = {}
        self._lock = threading.Lock()
        self._sleep = sleep
        self._probed = False

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
        return httpx.Limits(
            max_connections=self.max_connections, max_keepalive_connections=self.max_connections
        )

    def _sync_client(self) -> httpx.Client:
        if self._injected_client is not None:
            return self._injected_client
        if self._client is None:
            with self._lock:
                if self._client is None:
                    client = httpx.Client(
                        timeout=self._timeout(), limits=self._limits(), **client_options()
                    )
                    self._probed = _deadline.install(_direct.own(client))  # sent past .send
                    # A model dropped without close() closes its sockets when it is collected,
                    # instead of leaving them to the garbage collector ("unclosed socket").
                    weakref.finalize(self, client.close)
                    self._client = client
        return self._client

    def _async_client(self) -> _LoopClient:
        if self._injected_async_client is not None:
            return _LoopClient(self._injected_async_client, None)
        # An AsyncClient's connections belong to the event loop that opened them: keep one
        # client per running loop, so code calling asyncio.run() twice keeps working.
        loop = asyncio.get_running_loop()
        entry = self._async_clients.get(id(loop))
        if entry is None or entry.loop is not loop:
            for key, old in list(self._async_clients.items()):
                if old.loop is not None and old.loop.is_closed():
                    del self._async_clients[key]
            # Several small pools, not one of max_connections (see _pools.shards).
            options = client_options()
            clients = shard_clients(self.max_connections, timeout=self._timeout(), **options)
            self._probed = all([_deadline.install(_direct.own(client)) for client in clients])
            entry = _LoopClient(clients, asyncio.Semaphore(self.max_connections), loop)
            for client in clients:  # a model dropped while its loop runs: closed on that loop
                weakref.finalize(self, _close_on_loop, loop, client)
            self._async_clients[id(loop)] = entry
        return entry

    def close(self) -> None:
        """Close the clients this transport created (not injected ones).

        Async clients are closed by their event loop's shutdown (``asyncio.run`` ends) or by
        :meth:`aclose`; those of loops already closed are dropped here.
        """
        if self._client is not None:
            self._client.close()
            self._client = None
        for key, entry in list(self._async_clients.items()):
            if entry.loop is None or entry.loop.is_closed():
                self._async_clients.pop(key, None)

    async def aclose(self) -> None:
        """Close the running loop's async client and the sync client, if this transport
        created them."""
        entry = self._async_clients.pop(id(asyncio.get_running_loop()), None)
        if entry is not None:
            await entry.aclose()
        self.close()

    # -- requests and retries ---------------------------------------------------------------------
    def _credentials_are_static(self) -> bool:
        return isinstance(self._credentials, TokenCredentials)

    def _auth_headers(self) -> dict[str, str]:
        return self.credentials.headers()

    def _auth(self, call: _Call) -> None:
        """Resolve the attempt's credential headers within the deadline, on a worker thread
        unless they are a static token (``_credentials``)."""
        check_url_is_safe(call.url, allow_insecure_http=self.allow_insecure_http)
        call.auth = headers_within(
            self._auth_headers,
            call.deadline,
            host=call.host,
            fast=self._credentials_are_static(),
            describe=lambda: auth_method(self._credentials),
        )

    async def _aauth(self, call: _Call) -> None:
        """Async :meth:`_auth`: the event loop runs on while credentials resolve."""
        check_url_is_safe(call.url, allow_insecure_http=self.allow_insecure_http)
        call.auth = await aheaders_within(
            self._auth_headers,
            call.deadline,
            host=call.host,
            fast=self._credentials_are_static(),
            describe=lambda: auth_method(self._credentials),
        )

    def _headers(
        self, url: str, extra: Mapping[str, str] | None, auth: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        """The headers of one attempt; the one place credentials are attached to a request."""
        check_url_is_safe(url, allow_insecure_http=self.allow_insecure_http)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": _USER_AGENT,
            "Accept-Encoding": ACCEPT_ENCODING,
        }
        headers.update(auth if auth is not None else self.credentials.headers())
        if extra:
            headers.update(extra)
        return headers

    def _request(
        self,
        client: httpx.Client | httpx.AsyncClient,
        call: _Call,
        extra: Mapping[str, str] | None,
        timeout: Any,
    ) -> httpx.Request:
        """The request of one attempt. The plain headers dict lives only in this frame, which
        has returned before anything can fail: a traceback formatted with its locals (pytest
        ``--showlocals``, error trackers) shows the request, whose repr masks the token."""
        check_first_hop(client, call.url, allow_insecure_http=self.allow_insecure_http)
        headers = self._headers(call.url, extra, call.auth)
        call.auth = None
        call.secrets = secrets_of(headers)
        url = url_of(call.url)
        return _direct.request(client, call.method, url, call.content, headers, timeout)

    def _retry_delay(
        self, attempt: int, waited: float, error: DatabricksServingError, retryable: bool
    ) -> float | None:
        """Seconds to wait before retrying after ``error``, or ``None`` to give up."""
        if attempt >= self.max_retries:
            return None
        if isinstance(error, APIStatusError):
            if error.status_code not in _RETRY_STATUSES:
                return None
            delay = error.retry_after
        elif retryable:
            delay = None
        else:
            return None
        if delay is None:
            ceiling = min(_MAX_BACKOFF, _INITIAL_BACKOFF * 2**attempt)
            delay = ceiling / 2 + random.uniform(0, ceiling / 2)
        if waited + delay > self.retry_budget:
            budget = f"the {self.retry_budget:.0f}s retry budget"
            error.message = f"{error.message} (not retried: waiting {delay:.0f}s exceeds {budget})"
            error.args = (error.message,)
            logger.debug("%s", error.message)
            return None
        return delay

    def _log_retry(
        self, error: DatabricksServingError, delay: float, attempt: int
    ) -> dict[str, Any]:
        data = _retry_events.retry_data(error, delay, attempt, self.max_retries)
        _retry_events.log(error, data)
        return data

    def _status_failure(
        self, response: httpx.Response, body: bytes, call: _Call
    ) -> DatabricksServingError:
        return status_error(
            response, body, endpoint=call.endpoint, retries=call.attempt, secrets=call.secrets
        )

    def _connection_failure(
        self, exc: httpx.HTTPError, call: _Call, injected: bool
    ) -> tuple[DatabricksServingError, bool]:
        """The error of an attempt that got no reply, and whether re-sending is safe."""
        return attempt_failure(
            exc,
            call.current,
            url=call.url,
            endpoint=call.endpoint,
            retries=call.attempt,
            probed=self._probed and not injected,
        )

    def _wait_before_retry(
        self, call: _Call, error: DatabricksServingError, retryable: bool
    ) -> float | None:
        """The wait before the next attempt, or None to give up (no time left included)."""
        delay = self._retry_delay(call.attempt, call.waited, error, retryable)
        left = call.deadline.remaining()
        if delay is not None and left is not None and delay >= left:
            note = (
                f" (not retried: waiting {delay:.1f}s would pass the call's deadline, "
                f"timeout={call.deadline.seconds:g}s)"
            )
            error.message += note
            error.args = (error.message,)
            return None
        return delay

    def _during_reply(
        self, exc: httpx.HTTPError, reader: ReplyReader, call: _Call
    ) -> DatabricksServingError:
        if call.deadline.expired:
            return call.deadline.error(
                call.current.waiting_for(), endpoint=call.endpoint, request_id=reader.request_id
            )
        return reader.interrupted(exc)

    def _check_deadline(self, reader: ReplyReader, call: _Call) -> None:
        """Between two chunks of a reply: stop when the call's time is up (an injected
        client's sockets do not see the deadline; a trickle of bytes never ends otherwise)."""
        if call.deadline.expired:
            raise call.deadline.error(
                call.current.waiting_for(), endpoint=call.endpoint, request_id=reader.request_id
            )

    # -- sync -------------------------------------------------------------------------------------
    def _send(
        self,
        url: str,
        body: Any,
        endpoint: str | None,
        headers: Mapping[str, str] | None,
        info: Any = None,
    ) -> tuple[httpx.Response, _Call]:
        client = self._sync_client()
        call = _Call(url, endpoint, body, Deadline(self.timeout))
        injected = self._injected_client is not None
        while True:
            attempt = call.begin()
            self._auth(call)
            timeout = httpx.USE_CLIENT_DEFAULT if injected else call.deadline.httpx_timeout()
            request = self._request(client, call, headers, timeout)
            failure: httpx.HTTPError | None = None
            try:
                with attempt_scope(attempt):
                    response = _direct.send(client, request)
            except httpx.HTTPError as exc:
                failure = exc
                error, retryable = self._connection_failure(exc, call, injected)
            else:
                if response.status_code < 300:  # a redirect is not followed: an error
                    return response, call
                # A server may echo the token in an error body: drop it before raising, so
                # that a traceback formatted with its frames' locals cannot show it.
                error_body = read_error_body(response)
                error, retryable = self._status_failure(response, error_body, call), True
                del error_body
            delay = self._wait_before_retry(call, error, retryable)
            if delay is None:
                raise error from failure
            _retry_events.emit(self._log_retry(error, delay, call.attempt), info)
            self._sleep(delay)
            call.next(delay)

    def post_json(
        self,
        url: str,
        body: Any,
        *,
        endpoint: str | None = None,
        headers: Mapping[str, str] | None = None,
        info: Any = None,
    ) -> Any:
        """POST ``body`` and return the parsed JSON reply."""
        response, call = self._send(url, body, endpoint, headers, info)
        try:
            reader = ReplyReader(response, endpoint, self.max_reply_bytes)
            if info is not None:  # e.g. a chat model's Decoding: names the request in errors
                info.request_id = reader.request_id
            for raw in raw_chunks(response):
                for piece in reader.decoded(raw):
                    reader.add(piece)
                self._check_deadline(reader, call)
            for piece in reader.rest():
                reader.add(piece)
        except httpx.HTTPError as exc:
            raise self._during_reply(exc, reader, call) from exc
        finally:
            response.close()
        return reader.json()

    def get_json(self, url: str, *, endpoint: str | None = None) -> Any:
        """GET ``url`` (a workspace API) and return the parsed JSON reply, with the same
        deadline, retries and typed errors as :meth:`post_json`."""
        return self.post_json(url, _GET, endpoint=endpoint)

    async def aget_json(self, url: str, *, endpoint: str | None = None) -> Any:
        """Async :meth:`get_json`."""
        return await self.apost_json(url, _GET, endpoint=endpoint)

    def stream(
        self,
        url: str,
        body: Any,
        *,
        endpoint: str | None = None,
        headers: Mapping[str, str] | None = None,
        info: Any = None,
    ) -> Iterator[str]:
        """POST ``body`` and yield each SSE ``data`` payload as it arrives.

        A reply that is not an event stream (a plain JSON body) is yielded once, whole.
        """
        response, call = self._send(url, body, endpoint, headers, info)
        try:
            reader = ReplyReader(response, endpoint, self.max_reply_bytes)
            if info is not None:  # e.g. a chat model's Decoding: names the request in errors
                info.request_id = reader.request_id
            if not reader.is_event_stream:
                for raw in raw_chunks(response):
                    for piece in reader.decoded(raw):
                        reader.add(piece)
                    self._check_deadline(reader, call)
                for piece in reader.rest():
                    reader.add(piece)
                yield reader.text()
                return
            decoder, at = SSEDecoder(self.max_event_bytes), call.deadline.at
            for raw in raw_chunks(response):
                for piece in reader.decoded(raw):
                    yield from reader.payloads(decoder, piece)
                if at is not None and time.monotonic() >= at:  # _check_deadline, inline
                    self._check_deadline(reader, call)
            yield from reader.rest_payloads(decoder)
        except httpx.HTTPError as exc:
            raise self._during_reply(exc, reader, call) from exc
        finally:
            response.close()

    # -- async ------------------------------------------------------------------------------------
    async def _asend(
        self,
        url: str,
        body: Any,
        endpoint: str | None,
        headers: Mapping[str, str] | None,
        info: Any = None,
    ) -> tuple[httpx.Response, _LoopClient, _Call]:
        """The response of the first successful attempt. It holds one of ``pool``'s slots:
        the caller ends it with ``await pool.close(response)``."""
        pool = self._async_client()
        await pool.watch_loop()
        client = pool.client
        call = _Call(url, endpoint, body, Deadline(self.timeout))
        injected = self._injected_async_client is not None
        while True:
            attempt = call.begin()
            await self._aauth(call)
            timeout = httpx.USE_CLIENT_DEFAULT if injected else call.deadline.httpx_timeout()
            request = self._request(client, call, headers, timeout)
            failure: httpx.HTTPError | None = None
            await pool.acquire(call.deadline, call.endpoint)
            try:
                with attempt_scope(attempt):
                    response = await _direct.asend(pool.sender(), request)
            except httpx.HTTPError as exc:
                pool.release()
                failure = exc
                error, retryable = self._connection_failure(exc, call, injected)
            except BaseException:
                pool.release()
                raise
            else:
                if response.status_code < 300:  # a redirect is not followed: an error
                    return response, pool, call
                try:
                    error_body = await aread_error_body(response)
                    error, retryable = self._status_failure(response, error_body, call), True
                    del error_body  # see _send
                finally:
                    pool.release()
            delay = self._wait_before_retry(call, error, retryable)
            if delay is None:
                raise error from failure
            await _retry_events.aemit(self._log_retry(error, delay, call.attempt), info)
            await asyncio.sleep(delay)
            call.next(delay)

    async def apost_json(
        self,
        url: str,
        body: Any,
        *,
        endpoint: str | None = None,
        headers: Mapping[str, str] | None = None,
        info: Any = None,
    ) -> Any:
        """Async :meth:`post_json`."""
        response, pool, call = await self._asend(url, body, endpoint, headers, info)
        try:
            reader = ReplyReader(response, endpoint, self.max_reply_bytes)
            if info is not None:  # e.g. a chat model's Decoding: names the request in errors
                info.request_id = reader.request_id
            async for raw in araw_chunks(response):
                for piece in reader.decoded(raw):
                    reader.add(piece)
                self._check_deadline(reader, call)
            for piece in reader.rest():
                reader.add(piece)
        except httpx.HTTPError as exc:
            raise self._during_reply(exc, reader, call) from exc
        finally:
            await pool.close(response)
        return reader.json()

    async def astream(
        self,
        url: str,
        body: Any,
        *,
        endpoint: str | None = None,
        headers: Mapping[str, str] | None = None,
        info: Any = None,
    ) -> AsyncIterator[str]:
        """Async :meth:`stream`."""
        response, pool, call = await self._asend(url, body, endpoint, headers, info)
        try:
            reader = ReplyReader(response, endpoint, self.max_reply_bytes)
            if info is not None:  # e.g. a chat model's Decoding: names the request in errors
                info.request_id = reader.request_id
            if not reader.is_event_stream:
                async for raw in araw_chunks(response):
                    for piece in reader.decoded(raw):
                        reader.add(piece)
                    self._check_deadline(reader, call)
                for piece in reader.rest():
                    reader.add(piece)
                yield reader.text()
                return
            decoder, at = SSEDecoder(self.max_event_bytes), call.deadline.at
            async for raw in araw_chunks(response):
                for piece in reader.decoded(raw):
                    for data in reader.payloads(decoder, piece):
                        yield data
                if at is not None and time.monotonic() >= at:  # _check_deadline, inline
                    self._check_deadline(reader, call)
            for data in reader.rest_payloads(decoder):
                yield data
        except httpx.HTTPError as exc:
            raise self._during_reply(exc, reader, call) from exc
        finally:
            # Also runs when the caller stops early or is cancelled: the connection is released.
            await pool.close(response)
