"""The book-keeping of one transport call across its attempts: :class:`_Call`.

Used by :class:`~langchain_dbx_serving.transport.client.Transport` only. ``_GET`` is the body
that makes a call a ``GET`` (workspace APIs, background-run polls and feeds).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import httpx

from langchain_dbx_serving._json import dumps_request
from langchain_dbx_serving.transport._deadline import Attempt, Deadline

_GET = object()  # the body of a GET request (workspace APIs: model.check())


def _dumps(body: Any) -> bytes:
    return dumps_request(body)


@lru_cache(maxsize=256)
def url_of(url: str) -> httpx.URL:
    """``httpx.URL(url)``, parsed once per URL string (httpx URLs are immutable); a call's
    URL is one of a few endpoint URLs, and parsing it costs more than the rest of the call's
    book-keeping."""
    return httpx.URL(url)


class _Call:
    """Book-keeping of one call across its attempts."""

    __slots__ = (
        "attempt",
        "auth",
        "content",
        "current",
        "deadline",
        "endpoint",
        "host",
        "method",
        "secrets",
        "url",
        "waited",
    )

    def __init__(self, url: str, endpoint: str | None, body: Any, deadline: Deadline) -> None:
        self.url = url
        self.endpoint = endpoint
        self.method = "GET" if body is _GET else "POST"
        self.content = b"" if body is _GET else _dumps(body)
        self.deadline = deadline
        self.host = url_of(url).netloc.decode("ascii", "replace")
        self.current = Attempt(deadline, self.host)
        self.attempt = 0
        self.waited = 0.0
        self.secrets: tuple[str, ...] = ()
        self.auth: dict[str, str] | None = None  # this attempt's credential headers, briefly

    def begin(self) -> Attempt:
        """Start the next attempt, or raise when the call has no time left."""
        if self.deadline.expired:
            raise self.deadline.error("a retry to start", endpoint=self.endpoint)
        self.current = Attempt(self.deadline, self.host)
        return self.current

    def next(self, delay: float) -> None:
        self.attempt += 1
        self.waited += delay

    def __repr__(self) -> str:  # never show the secrets, e.g. in a traceback with locals
        return f"_Call(url={self.url!r}, attempt={self.attempt})"
