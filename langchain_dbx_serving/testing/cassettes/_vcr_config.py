"""The Databricks vcrpy configuration: scrubbers, the canonical JSON body matcher, the defaults.

Pure standard library: vcrpy hands these callables its request objects and response dicts, but
nothing here imports vcr, so building a configuration (and loading the pytest plugin) stays cheap.

- :class:`ScrubRequest` (``before_record_request``) drops secret headers, rewrites the workspace
  host to :data:`PLACEHOLDER_HOST`, removes token-shaped strings from the URI, headers and body,
  normalizes volatile body fields, and keeps OAuth token traffic out of the cassette.
- :class:`ScrubResponse` (``before_record_response``) decodes compressed bodies (gzip, deflate,
  br, zstd: see ``_codec``) so that they are stored as readable text, does the same scrubbing to
  response headers and bodies (SSE bodies stay verbatim otherwise) and keeps ``content-length``
  true.
- :func:`match_json_body` compares request bodies as canonical JSON and explains a mismatch
  with a diff, so a request that drifted from its recording fails instead of replaying.

vcrpy also runs ``before_record_*`` on the interactions it loads and on each incoming request
before matching, so every step here must be idempotent (placeholders never match a pattern).
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from langchain_dbx_serving._redact import TOKEN_SHAPES as SECRET_PATTERNS
from langchain_dbx_serving._redact import mask_encoded
from langchain_dbx_serving.testing.cassettes import _codec

__all__ = [
    "BODY_MATCHER",
    "PLACEHOLDER_HOST",
    "REPLAY_TOKEN",
    "SECRET_HEADERS",
    "VOLATILE_FIELDS",
    "Redactor",
    "ScrubRequest",
    "ScrubResponse",
    "canonical_body",
    "databricks_vcr_config",
    "is_auth_traffic",
    "is_databricks_config",
    "is_secret_header",
    "live_host",
    "match_json_body",
]

PLACEHOLDER_HOST = "https://databricks-workspace.invalid"
"""The workspace URL cassettes show instead of the real one (``.invalid`` never resolves)."""
REPLAY_TOKEN = "replay-token"
"""The bearer token replayed clients send: never checked, never a real credential."""
BODY_MATCHER = "dbx_json_body"
"""The name :func:`match_json_body` is registered under on vcrpy's ``VCR`` objects."""

SECRET_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "api-key",
        "x-databricks-azure-sp-management-token",
        "x-databricks-gcp-sa-access-token",
        "x-databricks-azure-workspace-resource-id",
        "x-databricks-org-id",
        "x-amz-security-token",
        "x-goog-iam-authorization-token",
    }
)
"""Headers (lowercase) never written to a cassette; so is any header whose name says it holds a
credential (``token``, ``secret``, ``auth``, ``password``, ``api-key``, ``credential``, ``cookie``,
``session``) or whose value is token-shaped (see :func:`is_secret_header`)."""
_SECRET_NAME_PARTS = (
    "token",
    "secret",
    "auth",
    "password",
    "api-key",
    "apikey",
    "credential",
    "cookie",
    "session",
)
VOLATILE_FIELDS = frozenset({"client_request_id"})
"""Request body keys (at any depth) whose values change between runs and must not break a match."""

_WORKSPACE_DOMAINS = (
    ".cloud.databricks.com",
    ".gcp.databricks.com",
    ".azuredatabricks.net",
    ".databricksapps.com",
    ".cloud.databricks.us",
    ".databricks.azure.us",
    ".cloud.databricks.mil",
    ".databricks.azure.cn",
)
_WORKSPACE_HOSTNAME = re.compile(
    r"[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*(?:"
    + "|".join(re.escape(d) for d in _WORKSPACE_DOMAINS)
    + r")(?::\d+)?"
)
# Token exchanges and auth discovery, sent live and never recorded: every Azure cloud's Entra ID
# host (databricks-sdk environments.py: public, US Government, China; plus the legacy names),
# Google's OAuth/STS/IAM credential hosts and the metadata servers, GitHub Actions' OIDC
# token host; on the workspace, /oidc/ (token, discovery), /.well-known/ and /aad/auth.
_AUTH_HOSTS = frozenset(
    {
        "login.microsoftonline.com",
        "login.microsoftonline.us",
        "login.chinacloudapi.cn",
        "login.partner.microsoftonline.cn",
        "login.microsoftonline.de",
        "login.windows.net",
        "sts.windows.net",
        "oauth2.googleapis.com",
        "accounts.google.com",
        "sts.googleapis.com",
        "iamcredentials.googleapis.com",
        "metadata.google.internal",
        "169.254.169.254",
    }
)
_AUTH_HOST_SUFFIXES = (".actions.githubusercontent.com",)
_AUTH_PATH_PREFIXES = ("/oidc/", "/oauth2/", "/.well-known/", "/aad/auth")
_AUTH_PATH_PARTS = ("/oauth2/", "/.well-known/", "/oidc/v1/token")
_VOLATILE_VALUE = "<volatile>"


def is_auth_traffic(uri: str) -> bool:
    """Whether a request is a token exchange or auth discovery (never recorded)."""
    parts = urlsplit(uri)
    host = (parts.hostname or "").lower()
    path = parts.path.lower()
    return (
        host in _AUTH_HOSTS
        or host.endswith(_AUTH_HOST_SUFFIXES)
        or path.startswith(_AUTH_PATH_PREFIXES)
        or any(part in path for part in _AUTH_PATH_PARTS)
    )


def is_secret_header(name: str, value: Any = None) -> bool:
    """Whether a header must not be recorded: a known credential header, a name that says it
    holds one, or a token-shaped value."""
    lowered = name.lower()
    if lowered in SECRET_HEADERS or any(part in lowered for part in _SECRET_NAME_PARTS):
        return True
    values = value if isinstance(value, list) else [value]
    return any(isinstance(v, str) and any(p.search(v) for _, p in SECRET_PATTERNS) for v in values)


def _netloc(host: str) -> str:
    """``https://adb-1.azuredatabricks.net/`` or ``adb-1...`` -> ``adb-1.azuredatabricks.net``."""
    host = host.strip()
    return urlsplit(host if "://" in host else f"//{host}").netloc.lower()


class Redactor:
    """Removes secrets and the workspace host from text.

    ``hosts`` are workspace URLs or host names to hide (hosts of Databricks cloud domains are
    hidden anyway); ``secrets`` are literal values to remove wherever they appear (8+ chars).

    Example::

        r = Redactor(hosts=["http://127.0.0.1:8080"], secrets=["s3cret-value"])
        r.text("GET http://127.0.0.1:8080/x with s3cret-value")
        # 'GET https://databricks-workspace.invalid/x with <redacted>'
    """

    def __init__(
        self,
        hosts: Iterable[str] = (),
        secrets: Iterable[str] = (),
        placeholder: str = PLACEHOLDER_HOST,
    ) -> None:
        self.hosts = frozenset(n for n in map(_netloc, hosts) if n)
        self.secrets = tuple(sorted({s for s in secrets if s and len(s) >= 8}, key=len)[::-1])
        self.placeholder = placeholder.rstrip("/")
        self._placeholder_netloc = _netloc(self.placeholder)

    def is_workspace(self, netloc: str) -> bool:
        """Whether ``netloc`` is the workspace (a configured host or a Databricks domain)."""
        netloc = netloc.lower()
        hostname = netloc.rsplit("@", 1)[-1].split(":", 1)[0]
        return netloc in self.hosts or hostname.endswith(_WORKSPACE_DOMAINS)

    def uri(self, uri: str) -> str:
        """The URI with the workspace origin replaced and tokens removed."""
        parts = urlsplit(uri)
        if parts.netloc and self.is_workspace(parts.netloc):
            placeholder = urlsplit(self.placeholder)
            parts = parts._replace(scheme=placeholder.scheme, netloc=placeholder.netloc)
        return self.text(urlunsplit(parts))

    def text(self, text: str) -> str:
        """``text`` without secrets, token-shaped strings or workspace host names."""
        text = mask_encoded(text, self.secrets, "<redacted>")
        for kind, pattern in SECRET_PATTERNS:
            label = f"<redacted:{kind.split(' (')[0].lower().replace(' ', '-')}>"
            text = pattern.sub(lambda m, label=label: _replace_secret(m, label), text)
        for netloc in self.hosts:
            for scheme in ("https://", "http://"):
                text = text.replace(scheme + netloc, self.placeholder)
            text = text.replace(netloc, self._placeholder_netloc)
        return _WORKSPACE_HOSTNAME.sub(self._placeholder_netloc, text)


def _replace_secret(match: re.Match[str], label: str) -> str:
    start, end = match.span("secret")
    whole = match.group()
    offset = match.start()
    return whole[: start - offset] + label + whole[end - offset :]


def _scrub_bytes(body: Any, redactor: Redactor) -> Any:
    """Scrub a UTF-8 body (bytes or str); binary bodies are returned untouched."""
    if isinstance(body, bytes):
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return body
        return redactor.text(text).encode("utf-8")
    if isinstance(body, str):
        return redactor.text(body)
    return body


def _normalize_volatile(body: Any, fields: frozenset[str]) -> Any:
    """Replace the values of volatile keys in a JSON body; other bodies stay verbatim."""
    if not fields or not isinstance(body, (bytes, str)) or not body:
        return body
    try:
        data = json.loads(body)
    except ValueError:
        return body
    changed = False

    def walk(value: Any) -> Any:
        nonlocal changed
        if isinstance(value, dict):
            out = {}
            for key, item in value.items():
                if key in fields and item != _VOLATILE_VALUE:
                    changed = True
                    out[key] = _VOLATILE_VALUE
                else:
                    out[key] = walk(item)
            return out
        if isinstance(value, list):
            return [walk(item) for item in value]
        return value

    data = walk(data)
    if not changed:
        return body
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8") if isinstance(body, bytes) else text


class ScrubRequest:
    """vcrpy ``before_record_request``: scrub a request, or drop OAuth token traffic (``None``).

    Example::

        vcr.use_cassette("c.yaml", before_record_request=[ScrubRequest(Redactor())])
    """

    def __init__(self, redactor: Redactor, volatile_fields: Iterable[str] = VOLATILE_FIELDS):
        self.redactor = redactor
        self.volatile_fields = frozenset(volatile_fields)

    def __call__(self, request: Any) -> Any:
        if is_auth_traffic(request.uri):
            return None
        request.uri = self.redactor.uri(request.uri)
        headers = {}
        for name, value in request.headers.items():
            if not is_secret_header(name, value):
                headers[name] = self.redactor.text(value) if isinstance(value, str) else value
        request.headers = headers
        body = _scrub_bytes(request.body, self.redactor)
        request.body = _normalize_volatile(body, self.volatile_fields)
        return request


class ScrubResponse:
    """vcrpy ``before_record_response``: scrub headers and body, keep ``content-length`` true.

    Everything else (status, ``content-type``, the SSE framing) is kept verbatim, so streams
    replay exactly as they were received.
    """

    def __init__(self, redactor: Redactor) -> None:
        self.redactor = redactor

    def __call__(self, response: dict[str, Any]) -> dict[str, Any]:
        response = _decoded(response)
        headers: dict[str, Any] = {}
        for name, values in (response.get("headers") or {}).items():
            if is_secret_header(name, values):
                continue
            if isinstance(values, list):
                headers[name] = [self.redactor.text(v) if isinstance(v, str) else v for v in values]
            else:
                headers[name] = self.redactor.text(values) if isinstance(values, str) else values
        body = response.get("body") or {}
        raw = body.get("string")
        scrubbed = _scrub_bytes(raw, self.redactor)
        if scrubbed != raw:
            response["body"] = {**body, "string": scrubbed}
            length = len(scrubbed.encode() if isinstance(scrubbed, str) else scrubbed)
            for name in headers:
                if name.lower() == "content-length":
                    headers[name] = [str(length)]
        response["headers"] = headers
        return response


def _decoded(response: dict[str, Any]) -> dict[str, Any]:
    """The response with its body decompressed (every content-encoding, zstd included) and
    ``content-encoding`` dropped, so the cassette holds readable text that can be scrubbed."""
    headers = dict(response.get("headers") or {})
    names = [n for n in headers if n.lower() == "content-encoding"]
    body = response.get("body") or {}
    raw = body.get("string")
    if not names or not isinstance(raw, (bytes, str)) or not raw:
        for name in names:
            del headers[name]
        return {**response, "headers": headers} if names else response
    data = raw.encode("latin-1") if isinstance(raw, str) else raw
    encodings = [v for n in names for v in _codec.encodings_of(headers[n])]
    try:
        decoded = _codec.decode(data, encodings)
    except (_codec.DecodeError, ImportError) as exc:
        raise ValueError(
            f"cannot record a reply in content-encoding {encodings}: {exc}. Its body could not "
            "be scrubbed, so it is not stored"
        ) from None
    for name in names:
        del headers[name]
    for name in [n for n in headers if n.lower() == "content-length"]:
        headers[name] = [str(len(decoded))]
    return {**response, "headers": headers, "body": {**body, "string": decoded}}


def canonical_body(body: Any) -> str | bytes | None:
    """A request body as sorted, compact JSON text; non-JSON bodies as bytes; empty as ``None``."""
    if body is None or body in (b"", ""):
        return None
    if hasattr(body, "read"):  # vcrpy represents file-like request bodies as BytesIO
        body = body.read()
    if isinstance(body, (list, tuple)):  # ...and iterator bodies as their chunks
        body = b"".join(p.encode() if isinstance(p, str) else bytes(p) for p in body)
    raw = body.encode("utf-8") if isinstance(body, str) else bytes(body)
    try:
        data = json.loads(raw)
    except ValueError:
        return raw
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _pretty(canonical: str | bytes | None) -> list[str]:
    if isinstance(canonical, str):
        return json.dumps(json.loads(canonical), indent=2, sort_keys=True).splitlines()
    return [repr(canonical)]


def match_json_body(r1: Any, r2: Any) -> None:
    """vcrpy matcher: the two request bodies are the same JSON (key order and spacing aside).

    Raises ``AssertionError`` with a diff (recorded vs sent) when they differ, which vcrpy
    shows in its "Can't overwrite existing cassette" error.
    """
    sent, recorded = canonical_body(r1.body), canonical_body(r2.body)
    if sent == recorded:
        return
    diff = list(
        difflib.unified_diff(
            _pretty(recorded),
            _pretty(sent),
            "recorded request body",
            "sent request body",
            n=1,
            lineterm="",
        )
    )
    if len(diff) > 60:
        diff = [*diff[:60], f"... ({len(diff) - 60} more diff lines)"]
    raise AssertionError(
        "the request body differs from the recording (the code under test now sends "
        "something else; re-record if that is intended):\n" + "\n".join(diff)
    )


def live_host() -> str | None:
    """``DATABRICKS_HOST`` when credentials are set too (a token, or an OAuth client id and
    secret), else ``None``: the condition for running live."""
    host = os.environ.get("DATABRICKS_HOST", "").strip()
    token = os.environ.get("DATABRICKS_TOKEN")
    oauth = os.environ.get("DATABRICKS_CLIENT_ID") and os.environ.get("DATABRICKS_CLIENT_SECRET")
    if not host or not (token or oauth):
        return None
    return host if "://" in host else f"https://{host}"


def databricks_vcr_config(
    *,
    hosts: Iterable[str] = (),
    secrets: Iterable[str] = (),
    volatile_fields: Iterable[str] = VOLATILE_FIELDS,
    placeholder: str = PLACEHOLDER_HOST,
    from_env: bool = True,
) -> dict[str, Any]:
    """The vcrpy ``use_cassette`` options for Databricks serving traffic.

    Hides ``hosts`` (plus ``DATABRICKS_HOST`` with ``from_env``) behind ``placeholder``, removes
    ``secrets`` (plus ``DATABRICKS_TOKEN`` and ``DATABRICKS_CLIENT_SECRET`` with ``from_env``) and
    token-shaped strings, and matches on method, path and canonical JSON body. Merge it into
    your own options; extend the ``before_record_*`` lists rather than replacing them.

    Example::

        @pytest.fixture
        def vcr_config(dbx_vcr_config):  # the plugin's fixture returns this dict
            return {**dbx_vcr_config, "record_mode": "once"}
    """
    hosts = list(hosts)
    secrets = list(secrets)
    if from_env:
        hosts += [h for h in [os.environ.get("DATABRICKS_HOST")] if h]
        secrets += [
            value
            for value in (
                os.environ.get(k) for k in ("DATABRICKS_TOKEN", "DATABRICKS_CLIENT_SECRET")
            )
            if value
        ]
    redactor = Redactor(hosts, secrets, placeholder)
    return {
        "before_record_request": [ScrubRequest(redactor, volatile_fields)],
        "before_record_response": [ScrubResponse(redactor)],
        "match_on": ["method", "path", BODY_MATCHER],
        "decode_compressed_response": True,
    }


def is_databricks_config(config: Mapping[str, Any]) -> bool:
    """Whether ``config`` scrubs requests with :class:`ScrubRequest` (it was built from ours)."""
    hooks = config.get("before_record_request") or ()
    if not isinstance(hooks, (list, tuple)):
        hooks = (hooks,)
    return any(isinstance(hook, ScrubRequest) for hook in hooks)
