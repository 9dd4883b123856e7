"""Turning HTTP failures into our error types, in one place.

Databricks error bodies come in several shapes (PROTOCOLS.md sections 1 and 7): JSON
``{"error_code", "message"}``; OpenAI-style ``{"error": {"code", "message"}}`` (``code`` may be an
integer); MLflow AgentServer's ``{"detail": ...}``; plain ``CODE: message`` text; and HTML pages
from proxies. Each becomes an :class:`~langchain_dbx_serving.errors.APIStatusError` subclass
whose message says what happened and what to do.
"""

from __future__ import annotations

import email.utils
import html
import math
import re
import time
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx

from langchain_dbx_serving._error_body import error_fields, error_text
from langchain_dbx_serving._json import loads
from langchain_dbx_serving._redact import redact, secrets_in
from langchain_dbx_serving.errors import (
    APIStatusError,
    ConfigurationError,
    DatabricksServingError,
    ServingConnectionError,
    ServingTimeoutError,
    StreamInterruptedError,
    TransportError,
    status_error_class,
)

_CODE_PREFIX = re.compile(r"^([A-Z][A-Z0-9_]{2,}):\s*(.*)$", re.DOTALL)
_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]+>")
_MAX_MESSAGE = 500
_MAX_RETRY_AFTER = 120.0
# Failures before any reply byte after which re-sending is safe: the request never reached the
# endpoint (refused, connect timeout), or the connection died before a status line came back
# (a reset, or a pooled keep-alive connection the server had already closed).
_RETRYABLE = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.ReadError,
    httpx.WriteError,
    httpx.RemoteProtocolError,
)

_HINTS = {
    400: "check the request parameters and the message format this endpoint accepts",
    401: "check that the token is valid and not expired (token=, DATABRICKS_TOKEN or your "
    "Databricks profile)",
    403: "check that your identity has CAN QUERY permission on the endpoint and that its rate "
    "limit is not 0",
    404: "check the endpoint name and that your token can see it",
    429: "the endpoint's rate limit was exceeded; lower the request rate or concurrency, or raise "
    "the endpoint's limit",
    503: "the endpoint is unavailable (scaling up from zero or overloaded); retry later",
}
_SERVER_HINT = "the endpoint failed while serving the request; retry later or check its logs"


def _hint(status: int) -> str:
    if 300 <= status < 400:
        return (
            "the server redirected the request, and redirects are not followed (the token must "
            "not go to another URL): point host= / base_url= at the final URL"
        )
    if status in _HINTS:
        return _HINTS[status]
    return _SERVER_HINT if status >= 500 else "check the request"


def _shorten(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_MESSAGE else text[:_MAX_MESSAGE] + "..."


def parse_error_body(text: str) -> tuple[str | None, str, Any]:
    """``(error_code, message, parsed_json_or_None)`` from any error body Databricks sends."""
    stripped = text.strip()
    if not stripped:
        return None, "", None
    try:
        parsed = loads(stripped)
    except ValueError:
        parsed = None
    if isinstance(parsed, Mapping):
        code, message = _from_json(parsed)
        if message is not None:
            return code, message, parsed
    if stripped[:1] == "<" or "<html" in stripped[:200].lower():
        title = _TITLE.search(stripped)
        body = title.group(1) if title else _TAG.sub(" ", stripped)
        return None, "an HTML error page: " + _shorten(html.unescape(body)), None
    match = _CODE_PREFIX.match(stripped)
    if match:
        return match.group(1), _shorten(match.group(2)), None
    return None, _shorten(stripped), parsed


def _from_json(body: Mapping[str, Any]) -> tuple[str | None, str | None]:
    found = error_fields(body)
    if found is not None:
        code, message = found
        return code, _display_text(message) or ""
    if "message" in body:
        return None, _display_text(body.get("message")) or ""
    if "detail" in body:
        return None, _display_text(body["detail"])
    return None, None


def _display_text(value: Any) -> str | None:
    """An error message shortened for an exception's text (``None`` when there is none)."""
    if value is None:
        return None
    return _shorten(error_text(value))


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date), capped."""
    if not value:
        return None
    try:
        seconds = float(value)
        if math.isnan(seconds):  # "NaN" parses, and time.sleep(nan) raises
            return None
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    return min(max(seconds, 0.0), _MAX_RETRY_AFTER)


secrets_of = secrets_in
"""The credential values of request headers (``langchain_dbx_serving._redact.secrets_in``)."""


def is_retryable(exc: httpx.HTTPError) -> bool:
    """Whether a failure before any reply byte leaves the request safe to send again."""
    return isinstance(exc, _RETRYABLE)


def request_id_of(headers: Mapping[str, str]) -> str | None:
    """The Databricks request id of a reply, from its headers."""
    return headers.get("x-request-id") or headers.get("x-databricks-request-id")


def status_error(
    response: httpx.Response,
    body: bytes,
    *,
    endpoint: str | None,
    retries: int = 0,
    secrets: Iterable[str] = (),
) -> APIStatusError:
    """The typed error for an HTTP error reply whose body has been read.

    ``secrets`` (the credentials sent) are masked in the message and the kept body.
    """
    status = response.status_code
    text = redact(body.decode("utf-8", "replace"), secrets)
    code, message, parsed = parse_error_body(text)
    message = message or response.reason_phrase or "no error message"
    if 300 <= status < 400 and response.headers.get("location"):
        message = f"{message} (to {_origin(response.headers['location'])})"
    who = f"endpoint {endpoint!r}" if endpoint else f"{response.request.url}"
    code_part = f" {code}" if code else ""
    summary = f"{who} returned {status}{code_part}: {message} — {_hint(status)}{_gave_up(retries)}"
    return status_error_class(status)(
        summary,
        status_code=status,
        error_code=code,
        endpoint=endpoint,
        request_id=request_id_of(response.headers),
        body=parsed if parsed is not None else text[:2000],
        retry_after=parse_retry_after(response.headers.get("retry-after")),
    )


def _origin(url: str) -> str:
    """The scheme and host of a URL, not its path or query (they may hold anything)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}" if parts.hostname else "a relative URL"


def _describe(exc: httpx.HTTPError) -> str:
    """``ReadError: [Errno 104] Connection reset by peer``; asyncio resets have no text."""
    return f"{type(exc).__name__}: {str(exc) or 'the connection was closed or reset'}"


def _gave_up(retries: int) -> str:
    if not retries:
        return ""
    return f" (gave up after {retries} {'retry' if retries == 1 else 'retries'})"


def before_reply_error(
    exc: httpx.HTTPError, *, url: str, endpoint: str | None, retries: int = 0
) -> DatabricksServingError:
    """Map an httpx error raised before any byte of the reply arrived."""
    host = urlsplit(url).netloc
    who = f"endpoint {endpoint!r}" if endpoint else url
    tail = _gave_up(retries)
    if isinstance(exc, httpx.UnsupportedProtocol):
        return ConfigurationError(
            f"cannot send to {url!r}: {exc} — host= and base_url= need an https:// scheme",
            endpoint=endpoint,
        )
    if isinstance(exc, httpx.ConnectTimeout):
        return ServingTimeoutError(
            f"could not connect to {host} in time ({exc or 'connect timeout'}) — check the host "
            f"and your network{tail}",
            endpoint=endpoint,
        )
    if isinstance(exc, httpx.PoolTimeout):
        return ServingTimeoutError(
            "no free connection in the HTTP pool in time — lower concurrency or pass an "
            "http_client with larger limits",
            endpoint=endpoint,
        )
    if isinstance(exc, httpx.TimeoutException):
        return ServingTimeoutError(
            f"{who} did not answer in time ({type(exc).__name__}) — the model may be slow or "
            "overloaded; raise timeout=",
            endpoint=endpoint,
        )
    if isinstance(exc, httpx.ConnectError):
        return ServingConnectionError(
            f"could not connect to {host}: {exc} — check host= / DATABRICKS_HOST and your "
            f"network{tail}",
            endpoint=endpoint,
        )
    return ServingConnectionError(
        f"the connection to {host} failed before {who} replied ({_describe(exc)}) — "
        f"retry the call{tail}",
        endpoint=endpoint,
    )


def during_reply_error(
    exc: httpx.HTTPError, *, endpoint: str | None, request_id: str | None
) -> TransportError:
    """Map an httpx error raised while the reply body was arriving."""
    who = f"endpoint {endpoint!r}" if endpoint else "the endpoint"
    if isinstance(exc, httpx.TimeoutException):
        return ServingTimeoutError(
            f"{who} stopped sending data mid-reply and the read timeout fired — the reply is "
            "incomplete; retry, or raise timeout= for slow models",
            endpoint=endpoint,
            request_id=request_id,
        )
    return StreamInterruptedError(
        f"the connection dropped while the reply from {who} was arriving "
        f"({_describe(exc)}) — the reply is incomplete; retry the call",
        endpoint=endpoint,
        request_id=request_id,
    )
