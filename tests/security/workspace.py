"""A fake Databricks workspace on the raw server: OAuth discovery and token exchange as
databricks-sdk performs them, and a chat endpoint that checks the bearer token it is sent.

databricks-sdk's OAuth M2M flow against a host (0.16x): ``GET /.well-known/databricks-config``
(host metadata: ``oidc_endpoint``), ``GET {oidc}/.well-known/oauth-authorization-server``,
``POST {oidc}/v1/token`` with the client id and secret as HTTP Basic; then our requests carry
``Authorization: Bearer <access_token>``.
"""

from __future__ import annotations

import base64
import gzip
import json
import secrets
from dataclasses import dataclass, field

from tests.security.rawserver import RawRequest, json_response, response

ANSWER = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "model": "ep",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "fine"}}],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
}


def jwt() -> str:
    """A JWT-shaped access token (header.payload.signature, base64url)."""

    def part(value: dict | bytes) -> str:
        raw = value if isinstance(value, bytes) else json.dumps(value).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    return ".".join(
        [part({"alg": "RS256"}), part({"sub": secrets.token_hex(8)}), part(secrets.token_bytes(24))]
    )


@dataclass
class Workspace:
    """The handler of a fake workspace served by a :class:`RawServer` at ``url``."""

    url: str = ""
    pat: str | None = None
    client_id: str = "sp-client-id"
    client_secret: str | None = None
    access_token: str = field(default_factory=jwt)
    encoding: str | None = None  # "gzip" or "zstd": compress replies that ask for it
    reply_headers: dict[str, str] = field(default_factory=dict)

    def __call__(self, request: RawRequest) -> bytes:
        if request.target == "/.well-known/databricks-config":
            return json_response(200, {"oidc_endpoint": f"{self.url}/oidc", "workspace_id": "1"})
        if request.target == "/oidc/.well-known/oauth-authorization-server":
            return json_response(
                200,
                {
                    "issuer": f"{self.url}/oidc",
                    "token_endpoint": f"{self.url}/oidc/v1/token",
                    "authorization_endpoint": f"{self.url}/oidc/v1/authorize",
                },
            )
        if request.target == "/oidc/v1/token":
            expected = f"{self.client_id}:{self.client_secret}".encode()
            if (
                request.headers.get("authorization")
                != "Basic " + base64.b64encode(expected).decode()
            ):
                return json_response(401, {"error": "invalid_client"})
            return json_response(
                200,
                {"access_token": self.access_token, "token_type": "Bearer", "expires_in": 3600},
            )
        wanted = self.pat if self.pat is not None else self.access_token
        if request.token != wanted:
            return json_response(401, {"error_code": "UNAUTHENTICATED", "message": "bad token"})
        return self._answer(request)

    def _answer(self, request: RawRequest) -> bytes:
        body = json.dumps(ANSWER).encode()
        headers = dict(self.reply_headers)
        accepted = request.headers.get("accept-encoding", "")
        if self.encoding and self.encoding in accepted:
            if self.encoding == "gzip":
                body = gzip.compress(body)
            else:
                import zstandard

                body = zstandard.ZstdCompressor().compress(body)
            headers["Content-Encoding"] = self.encoding
        return response(200, body, headers=headers)
