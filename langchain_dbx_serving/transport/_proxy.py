"""The first hop of a request: which proxy httpx will send it through, and whether a
credential may travel that way.

A proxy from the environment (``HTTP_PROXY``, ``ALL_PROXY``, ...) is the first machine a request
reaches. Over ``https://`` it only relays an encrypted tunnel (``CONNECT``), but a plain
``http://`` request is handed to it whole, ``Authorization`` header included. So:

- requests to loopback hosts never go through a proxy (:data:`LOOPBACK_MOUNTS`, given to the
  clients the transport creates; ``NO_PROXY`` is not needed for ``localhost``);
- :func:`check_first_hop` refuses a credentialed plain-``http://`` request whose first hop (the
  proxy httpx picked, else the host itself) is not loopback, unless ``allow_insecure_http``.

The proxy is read from the client itself, so injected clients (their ``proxy=``, ``mounts=`` or
``trust_env``) are judged by what they will actually do.
"""

from __future__ import annotations

import weakref
from typing import Any
from urllib.parse import urlsplit

import httpx

from langchain_dbx_serving.auth import check_url_is_safe, is_loopback
from langchain_dbx_serving.errors import ConfigurationError

__all__ = ["LOOPBACK_MOUNTS", "check_first_hop", "proxy_of"]

LOOPBACK_MOUNTS: dict[str, None] = {
    "all://localhost": None,
    "all://*.localhost": None,
    "all://127.0.0.1": None,
    "all://[::1]": None,
}
"""httpx ``mounts`` sending loopback traffic directly, whatever proxy the environment names."""

# Plain-http:// URLs each client was found to send directly or through a loopback proxy. A
# client's proxies (env, proxy=, mounts) are fixed when it is built, so the answer holds for
# its lifetime; this saves parsing the URL and looking up its transport on every attempt.
_CHECKED: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()
_CHECKED_PER_CLIENT = 256


def proxy_of(client: httpx.Client | httpx.AsyncClient, url: str) -> str | None:
    """The proxy URL ``client`` will send ``url`` through, or ``None`` for a direct connection."""
    try:
        transport = client._transport_for_url(httpx.URL(url))
    except Exception:  # pragma: no cover - a client of another shape: assume direct
        return None
    pool = getattr(transport, "_pool", None)
    proxy = getattr(pool, "_proxy_url", None)
    if proxy is None:
        return None
    scheme, host, port = proxy.scheme.decode(), proxy.host.decode(), proxy.port
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}" + (f":{port}" if port else "")


def check_first_hop(
    client: httpx.Client | httpx.AsyncClient, url: str, *, allow_insecure_http: bool = False
) -> None:
    """Refuse to send credentials where they would travel in clear text off this machine."""
    check_url_is_safe(url, allow_insecure_http=allow_insecure_http)
    if allow_insecure_http or urlsplit(url).scheme.lower() != "http":
        return
    checked = _CHECKED.get(client)
    if checked is not None and url in checked:
        return
    proxy = proxy_of(client, url)
    if proxy is None or is_loopback(proxy):
        _remember(client, url)
        return
    raise ConfigurationError(
        f"refusing to send the Databricks token over plain http:// through the proxy "
        f"{urlsplit(proxy).netloc!r} (from HTTP_PROXY/ALL_PROXY or the http client's proxy=): "
        "the proxy would read it. Use an https:// host, add the host to NO_PROXY, or pass "
        "allow_insecure_http=True if this network is trusted"
    )


def _remember(client: Any, url: str) -> None:
    try:
        checked = _CHECKED.setdefault(client, set())
    except TypeError:  # pragma: no cover - a client that cannot be weakly referenced
        return
    if len(checked) >= _CHECKED_PER_CLIENT:
        checked.clear()
    checked.add(url)


def client_options() -> dict[str, Any]:
    """Keyword arguments for the httpx clients the transport creates."""
    return {"mounts": dict(LOOPBACK_MOUNTS)}
