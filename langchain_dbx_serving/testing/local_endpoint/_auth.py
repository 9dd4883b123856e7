"""The local endpoint's authentication: a bearer token, checked as Databricks checks it.

Example::

    BearerAuth("T").check(request)  # raises RequestRejected (401 UNAUTHENTICATED) on a mismatch
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.requests import Request

from langchain_dbx_serving.testing.local_endpoint._inbound import RequestRejected
from langchain_dbx_serving.testing.local_endpoint.replies import ErrorReply

__all__ = ["BearerAuth", "without_credential"]


class BearerAuth:
    """Requires ``Authorization: Bearer <token>``; with ``token=None`` every request passes."""

    def __init__(self, token: str | None) -> None:
        self.token = token

    def check(self, request: Request) -> None:
        """Raise :class:`RequestRejected` (401) unless the request carries the token."""
        if self.token is None:
            return
        header = request.headers.get("authorization")
        if not header:
            message = "Credential was not sent or was of an unsupported type for this API."
            raise RequestRejected(ErrorReply(401, "UNAUTHENTICATED", message))
        scheme, _, credential = header.partition(" ")
        if scheme.lower() != "bearer" or credential.strip() != self.token:
            raise RequestRejected(ErrorReply(401, "UNAUTHENTICATED", "Invalid access token."))


def without_credential(headers: Mapping[str, str]) -> dict[str, str]:
    """The headers with the credential of ``authorization`` replaced by ``***``.

    Example:
        >>> without_credential({"authorization": "Bearer dapi123", "x": "1"})
        {'authorization': 'Bearer ***', 'x': '1'}
    """
    out = dict(headers)
    if "authorization" in out:
        scheme, _, _ = out["authorization"].partition(" ")
        out["authorization"] = f"{scheme} ***"
    return out
