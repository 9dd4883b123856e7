"""Which failed attempts may be sent again, and what their errors say.

The rule: re-send only what provably was not processed. That is a connection that never
opened, and a connection that broke before a single byte of a reply came back (the classic
case: a pooled keep-alive connection the server had already closed). Once any byte of a reply
has arrived, the status line included, the endpoint has started answering, so the request is
never sent again. A TLS handshake failure is a configuration problem (usually ``https://`` to a
plain-HTTP server), never transient. A call whose deadline passed is never retried.

Whether a byte arrived is known from the socket (see ``_deadline``). For an injected httpx client
(whose sockets we do not see) the rule falls back to what httpx can tell: only connect failures
and "disconnected without sending a response" are re-sent.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx

from langchain_dbx_serving.errors import (
    DatabricksServingError,
    ServingConnectionError,
    StreamInterruptedError,
)
from langchain_dbx_serving.transport._deadline import Attempt, is_tls_failure
from langchain_dbx_serving.transport._errors import before_reply_error

__all__ = ["attempt_failure"]

_NO_RESPONSE = "without sending a response"
_BROKEN = (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError)


def attempt_failure(
    exc: httpx.HTTPError,
    attempt: Attempt,
    *,
    url: str,
    endpoint: str | None,
    retries: int,
    probed: bool,
) -> tuple[DatabricksServingError, bool]:
    """The error of an attempt that got no usable reply, and whether re-sending is safe."""
    who = f"endpoint {endpoint!r}" if endpoint else url
    if isinstance(exc, httpx.TimeoutException) and attempt.deadline.expired:
        return attempt.deadline.error(attempt.waiting_for(), endpoint=endpoint), False
    if isinstance(exc, httpx.ConnectError) and is_tls_failure(exc):
        parts = urlsplit(url)
        plain = f"http://{parts.netloc}"
        return (
            ServingConnectionError(
                f"the TLS handshake with {parts.netloc} failed ({exc}) — not retried: TLS "
                "errors are not transient. If this is a plain-HTTP server (a local endpoint, a "
                f"tunnel), use host={plain!r}; otherwise check the host name and any "
                "TLS-intercepting proxy (SSL_CERT_FILE / REQUESTS_CA_BUNDLE)",
                endpoint=endpoint,
            ),
            False,
        )
    if attempt.received:
        return (
            StreamInterruptedError(
                f"the connection to {urlsplit(url).netloc} broke after {who} had started "
                f"replying ({attempt.received} bytes received; {type(exc).__name__}: "
                f"{str(exc) or 'closed or reset'}) — not re-sent, because the endpoint may "
                "already have processed the request",
                endpoint=endpoint,
            ),
            False,
        )
    error = before_reply_error(exc, url=url, endpoint=endpoint, retries=retries)
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
        return error, True
    if isinstance(exc, httpx.TimeoutException):
        return error, False  # the model may be running: re-sending would run it twice
    if probed:
        return error, isinstance(exc, _BROKEN)
    return error, isinstance(exc, httpx.RemoteProtocolError) and _NO_RESPONSE in str(exc)
