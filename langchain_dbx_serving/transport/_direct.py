"""Sending the transport's own requests straight to httpx's transports, past ``Client.send``.

Used by :class:`~langchain_dbx_serving.transport.client.Transport` only. ``Client.send`` and
``Client.build_request`` run, per request, an auth flow generator, a redirect loop, event hooks,
mount matching, cookie merging and extraction, a timer around the body and a log line: about
a fifth of an invoke's CPU on loopback. The clients the transport builds itself (:func:`own`)
have no auth, hooks, base URL, params or redirects, and the transport neither follows redirects
(a 3xx is an error) nor keeps cookies, so for them :func:`request`, :func:`send` and
:func:`asend` do only what still matters:

- the request carries the client's default headers under ours (as ``build_request`` merges
  them) and the ``timeout`` extension httpx's transports read;
- it goes to the transport the client itself picks for the URL (``_transport_for_url``: its
  mounts, so the loopback mounts and the proxies httpx read from the environment), looked up
  once per URL origin and client; the deadline backend is installed in all of those pools
  (``_deadline.install``);
- a failure carries the request (``exc.request``), as ``Client.send`` sets it; the response
  carries it too (``response.request``, used by errors and redaction), and is returned
  unread, to be closed by the caller on every path, as with ``send(stream=True)``;
- httpx's INFO line ``HTTP Request: POST ... "HTTP/1.1 200 OK"`` on the ``httpx`` logger is
  still written when that level is enabled.

Not done on this path: cookies (a ``Set-Cookie`` of a reply is not stored, none is sent; a
Databricks serving endpoint needs none) and ``response.elapsed`` (never set). A client the user
injects (``http_client=``) is not "own": it goes through ``Client.send`` with all of its hooks,
auth, mounts and cookies; so does an own client if httpx's private ``_transport_for_url`` is
gone (a future httpx), or once the client is closed (``send`` then raises as it always did).

Example:
    >>> import httpx
    >>> client = own(httpx.Client())
    >>> req = request(client, "GET", httpx.URL("http://127.0.0.1:9/x"), b"", {}, httpx.Timeout(3))
    >>> req.headers["accept"], req.extensions["timeout"]["read"]
    ('*/*', 3)
    >>> client.close()
"""

from __future__ import annotations

import logging
import weakref
from typing import Any, TypeVar

import httpx

__all__ = ["asend", "own", "request", "send"]

_LOG = logging.getLogger("httpx")  # the line httpx's own send writes, on its logger
_INFO = logging.INFO
_ORIGINS_PER_CLIENT = 64

AnyClient = TypeVar("AnyClient", httpx.Client, httpx.AsyncClient)


class _Own:
    """What one own client's requests need: its default headers and its transport per origin."""

    __slots__ = ("defaults", "names", "routes")

    def __init__(self, client: httpx.Client | httpx.AsyncClient) -> None:
        encoding = client.headers.encoding
        self.defaults = [(k.decode(encoding), v.decode(encoding)) for k, v in client.headers.raw]
        self.names = [name.lower() for name, _ in self.defaults]
        self.routes: dict[tuple[bytes, bytes, int | None], Any] = {}


_OWN: weakref.WeakKeyDictionary[Any, _Own] = weakref.WeakKeyDictionary()


def own(client: AnyClient) -> AnyClient:
    """Mark ``client`` as built by the transport, to be sent past ``Client.send``; returned
    as it is. A client with anything ``send`` would apply (auth, event hooks, a base URL,
    params, redirects followed) is left to ``send``."""
    plain = (
        client.auth is None
        and not any(client.event_hooks.values())
        and not str(client.base_url)
        and not client.params
        and not client.follow_redirects
    )
    if plain:
        _OWN[client] = _Own(client)
    return client


def request(
    client: httpx.Client | httpx.AsyncClient,
    method: str,
    url: httpx.URL,
    content: bytes,
    headers: dict[str, str],
    timeout: Any,
) -> httpx.Request:
    """The request ``client.build_request`` would build (``headers`` over the client's)."""
    entry = _OWN.get(client)
    if entry is None or not isinstance(timeout, httpx.Timeout):
        return client.build_request(method, url, content=content, headers=headers, timeout=timeout)
    ours = {name.lower() for name in headers}
    merged = {}
    for (name, value), lower in zip(entry.defaults, entry.names, strict=True):
        if lower not in ours:
            merged[name] = value
    merged.update(headers)
    extensions = {"timeout": timeout.as_dict()}
    return httpx.Request(method, url, content=content, headers=merged, extensions=extensions)


def _route(client: Any, url: httpx.URL) -> Any:
    """The transport ``client`` sends ``url`` through, or ``None`` to use ``client.send``."""
    entry = _OWN.get(client)
    if entry is None or client.is_closed:
        return None
    origin = (url.raw_scheme, url.raw_host, url.port)
    transport = entry.routes.get(origin)
    if transport is None:
        try:
            transport = client._transport_for_url(url)
        except Exception:  # httpx's private helper moved or changed: the public way
            return None
        if len(entry.routes) >= _ORIGINS_PER_CLIENT:
            entry.routes.clear()
        entry.routes[origin] = transport
    return transport


def send(client: httpx.Client, request: httpx.Request) -> httpx.Response:
    """``client.send(request, stream=True)``, directly on the transport for an own client."""
    transport = _route(client, request.url)
    if not isinstance(transport, httpx.BaseTransport):
        return client.send(request, stream=True)
    try:
        response = transport.handle_request(request)
    except httpx.RequestError as exc:
        exc.request = request
        raise
    response.request = request
    if _LOG.isEnabledFor(_INFO):
        _log(request, response)
    return response


async def asend(client: httpx.AsyncClient, request: httpx.Request) -> httpx.Response:
    """Async :func:`send`."""
    transport = _route(client, request.url)
    if not isinstance(transport, httpx.AsyncBaseTransport):
        return await client.send(request, stream=True)
    try:
        response = await transport.handle_async_request(request)
    except httpx.RequestError as exc:
        exc.request = request
        raise
    response.request = request
    if _LOG.isEnabledFor(_INFO):
        _log(request, response)
    return response


def _log(request: httpx.Request, response: httpx.Response) -> None:
    _LOG.info(
        'HTTP Request: %s %s "%s %d %s"',
        request.method,
        request.url,
        response.http_version,
        response.status_code,
        response.reason_phrase,
    )
