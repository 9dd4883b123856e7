"""How a hostile server echoes a credential back, and where in its reply.

``ENCODINGS`` turn a token into the text a server would send; ``leaked_forms`` lists the strings
that must then appear nowhere (the token itself and the encoded form, or for base64 the part
of it that depends on the token only). ``SINKS`` build the reply that carries the echo: an
error status with a JSON, HTML or text body, a 200 that is not JSON, an SSE ``error`` event, a
malformed SSE event, a stream cut after an echoing event.
"""

from __future__ import annotations

import base64
import json
import secrets
import string
from collections.abc import Callable
from urllib.parse import quote

from hypothesis import strategies as st

from tests.security.rawserver import RawRequest, json_response, response

HEX = "0123456789abcdef"


def dapi() -> str:
    return "dapi" + secrets.token_hex(16)


# -- token shapes ------------------------------------------------------------------------------

_hex32 = st.text(alphabet=HEX, min_size=32, max_size=32)
_b64url = st.text(alphabet=string.ascii_letters + string.digits + "-_", min_size=8, max_size=40)
_opaque = st.text(
    alphabet=string.ascii_letters + string.digits + "._~+/=-", min_size=16, max_size=60
).filter(lambda t: any(c.isalnum() for c in t[:4]))

tokens = st.one_of(
    _hex32.map(lambda h: "dapi" + h),
    _hex32.map(lambda h: "dose" + h),
    _hex32.map(lambda h: "doau" + h),
    st.tuples(_b64url, _b64url, _b64url).map(lambda p: f"eyJ{p[0]}.eyJ{p[1]}.{p[2]}"),
    _opaque,
)
"""Every token shape: PAT, OAuth client secret and refresh token, JWT, an opaque access token."""


# -- encodings ---------------------------------------------------------------------------------


def _b64_core(text: str, secret: str) -> str:
    """The part of base64(``text``) that depends on ``secret``'s bytes only."""
    prefix = text.index(secret)
    start = -(-8 * prefix // 6)
    end = (8 * (prefix + len(secret))) // 6
    return base64.b64encode(text.encode()).decode()[start:end]


ENCODINGS: dict[str, Callable[[str], str]] = {
    "raw": lambda t: t,
    "bearer": lambda t: f"Bearer {t}",
    "json \\u": lambda t: "".join(f"\\u{ord(c):04x}" for c in t),
    "json \\u mixed": lambda t: "".join(
        f"\\u{ord(c):04X}" if i % 2 else c for i, c in enumerate(t)
    ),
    "json escaped slash": lambda t: t.replace("/", "\\/"),
    "url-encoded": lambda t: "".join(f"%{ord(c):02X}" for c in t),
    "url-encoded lower": lambda t: "".join(f"%{ord(c):02x}" for c in t),
    "url quote": lambda t: quote(t, safe=""),
    "html decimal": lambda t: "".join(f"&#{ord(c)};" for c in t),
    "html hex": lambda t: "".join(f"&#x{ord(c):x};" for c in t),
    "html escape": lambda t: (
        t.replace("+", "&plus;").replace("/", "&sol;").replace("=", "&equals;")
    ),
    "base64 token:": lambda t: base64.b64encode(f"token:{t}".encode()).decode(),
    "base64 user:": lambda t: base64.b64encode(f"ab:{t}".encode()).decode(),
    "base64": lambda t: base64.b64encode(t.encode()).decode(),
    "base64url": lambda t: base64.urlsafe_b64encode(t.encode()).decode().rstrip("="),
}


def leaked_forms(token: str, encoding: str) -> list[str]:
    """Strings that would show the credential if they appeared in what we render."""
    echo = ENCODINGS[encoding](token)
    if encoding == "base64 token:":
        return [token, _b64_core(f"token:{token}", token)]
    if encoding == "base64 user:":
        return [token, _b64_core(f"ab:{token}", token)]
    if encoding == "base64":
        return [token, _b64_core(token, token)]
    if encoding == "base64url":
        core = _b64_core(token, token)
        return [token, core.replace("+", "-").replace("/", "_")]
    return [token, echo] if echo != f"Bearer {token}" else [token]


# -- sinks -------------------------------------------------------------------------------------


def _sse(*events: str, truncate: bool = False) -> bytes:
    body = "".join(events)
    length = len(body.encode()) + (100 if truncate else 0)
    return response(200, body, content_type="text/event-stream", length=length)


SINKS: dict[str, Callable[[str], bytes]] = {
    "401 json": lambda e: json_response(
        401, {"error_code": "UNAUTHENTICATED", "message": f"bad {e}"}
    ),
    "400 openai json": lambda e: json_response(400, {"error": {"code": 400, "message": f"x {e}"}}),
    "500 html": lambda e: response(
        500, f"<html><title>Error {e}</title><body>{e}</body></html>", content_type="text/html"
    ),
    "403 text": lambda e: response(403, f"PERMISSION_DENIED: token {e}", content_type="text/plain"),
    "200 not json": lambda e: response(
        200, f"<html>Authorization: {e}</html>", content_type="text/html"
    ),
    "200 json error": lambda e: json_response(200, {"error": {"code": "BAD", "message": e}}),
    "401 header": lambda e: response(
        401,
        "{}",
        headers={"WWW-Authenticate": f'Bearer error="invalid_token", error_description="{e}"'},
    ),
    "sse error event": lambda e: _sse(
        f"event: error\ndata: {json.dumps({'error': {'message': e}})}\n\n"
    ),
    "sse malformed event": lambda e: _sse(f"data: {{not json {e}\n\n"),
    "sse cut after echo": lambda e: _sse(
        'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":"hi"}}]}\n\n'
        f'data: {{"x": "{e}',
        truncate=True,
    ),
}
"""Replies carrying an echo ``e``; each makes our call fail with a typed error."""


def echo_handler(encoding: str, sink: str) -> Callable[[RawRequest], bytes]:
    """A handler that echoes the request's own token back, encoded, in the sink."""

    def handle(request: RawRequest) -> bytes:
        token = request.token or ""
        return SINKS[sink](ENCODINGS[encoding](token))

    return handle
