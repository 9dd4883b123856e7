"""What the local endpoint received: every request, credential redacted, oldest first."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from langchain_dbx_serving.testing.local_endpoint import _inbound as inbound
from langchain_dbx_serving.testing.local_endpoint._auth import without_credential

__all__ = ["RecordedRequest", "RequestLog"]


@dataclass(frozen=True)
class RecordedRequest:
    """A request the endpoint received: ``headers`` (lowercase names) have the credential of
    ``authorization`` replaced by ``***``; ``body`` is the parsed JSON (``None`` if not JSON).

    Example::

        assert ep.requests[-1].body["messages"][0]["content"] == "hi"
    """

    method: str
    path: str
    headers: Mapping[str, str]
    body: Any


class RequestLog:
    """The requests received so far (``requests``), appended from any server thread."""

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()

    def record(self, request: Request, raw: bytes) -> None:
        """Append ``request`` with its raw body ``raw`` (parsed when it is JSON)."""
        try:
            body = inbound.parse_body(raw)
        except inbound.RequestRejected:
            body = None
        headers = without_credential(request.headers)
        entry = RecordedRequest(request.method, request.url.path, headers, body)
        with self._lock:
            self.requests.append(entry)
