"""One redaction function for every text that leaves the package: :func:`redact`.

Servers echo what they receive. A token echoed back in an error body, an SSE ``error`` event or a
malformed event must not reach our exception messages, logs or callback payloads, in whatever
encoding the server chose. :func:`redact` masks:

- the *active* credentials (every secret a request of this process carried: see
  :func:`remember`), in their common encodings, character by character, so mixed forms match
  too: raw, JSON ``\\uXXXX`` / ``\\/`` escapes, URL percent-encoding (any case), HTML numeric and
  named entities; plus the base64 of any text holding the secret (``token:<secret>`` for HTTP
  Basic, ``<secret>`` alone), in the standard and URL-safe alphabets;
- every token *shape*, active or not: Databricks ``dapi``/``dose``/``doau`` tokens, JWTs, Google
  ``ya29.`` access tokens, ``Bearer``/``Basic`` credentials and ``client_secret``-like fields
  (the token shapes the cassette scanner flags), also when the text is JSON-, URL- or
  HTML-encoded.

:class:`~langchain_dbx_serving.errors.DatabricksServingError` passes its message and every
server-provided field through :func:`redact` when it is built, so no error of ours can carry a
secret, whichever module raised it.

Example:
    >>> remember("dapi" + "0" * 32)
    >>> redact("echo: %64api" + "0" * 32)
    'echo: ***'
"""

from __future__ import annotations

import base64
import html
import json
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any
from urllib.parse import unquote

__all__ = [
    "MASK",
    "SECRET_HEADERS",
    "TOKEN_SHAPES",
    "forget_all",
    "install_log_filters",
    "mask_encoded",
    "redact",
    "redact_value",
    "remember",
    "secrets_in",
]

MASK = "***"
MIN_SECRET = 8
"""Shorter values are not masked by value (they would mangle ordinary text); shapes still are."""
_MAX_REMEMBERED = 32

SECRET_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "x-databricks-azure-sp-management-token",
        "x-databricks-gcp-sa-access-token",
    }
)
"""Request headers (lowercase) whose values are credentials (databricks-sdk sets the last two)."""

# A secret's characters, percent-encoded or not (a URL-encoded secret is matched whole, not
# cut at its first %2B).
_VALUE = r"(?:[A-Za-z0-9._~+/=-]|%[0-9A-Fa-f]{2})"

TOKEN_SHAPES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("Databricks personal access token", re.compile(r"(?P<secret>dapi[0-9a-fA-F]{32}(?:-\d+)?)")),
    ("Databricks OAuth client secret", re.compile(r"(?P<secret>dose[0-9a-fA-F]{32})")),
    ("Databricks OAuth refresh token", re.compile(r"(?P<secret>doau[0-9a-fA-F]{32})")),
    (
        "JWT (OAuth access token)",
        re.compile(r"(?P<secret>eyJ[\w-]{6,}\.eyJ[\w-]{6,}\.[\w-]*)"),
    ),
    ("Google OAuth access token", re.compile(r"(?P<secret>ya29\.[\w-]{20,})")),
    ("bearer token", re.compile(rf"Bearer\s+(?P<secret>{_VALUE}{{24,}})", re.I)),
    (
        "basic credentials",  # base64 with a digit, '+' or '/' (not an English word)
        re.compile(r"Basic\s+(?P<secret>(?=[A-Za-z]*[0-9+/])[A-Za-z0-9+/]{16,}={0,2})"),
    ),
    (
        "client secret",
        re.compile(rf"""client_secret["']?\s*[:=]\s*["']?(?P<secret>{_VALUE}{{12,}})""", re.I),
    ),
    (
        # Values with a digit only: ``access_token=self.access_token`` in code is not a token.
        "OAuth token field",
        re.compile(
            rf"""(?:access_token|refresh_token|id_token)["']?\s*[:=]\s*["']?"""
            rf"""(?P<secret>(?=[^\s"'&,;]*\d){_VALUE}{{12,}})""",
            re.I,
        ),
    ),
)
"""Token shapes, whatever the credential in use: ``(kind, pattern)`` pairs whose ``secret``
group is the token itself (the rest is context, such as ``Bearer`` or the ``client_secret`` key,
that a replacement keeps). The cassette scanner and scrubbers use the same patterns."""

# In error text, shorter bearer credentials are masked too (no risk of flagging source code).
_ERROR_SHAPES = (
    *TOKEN_SHAPES,
    ("short bearer", re.compile(rf"Bearer\s+(?P<secret>{_VALUE}{{8,}})", re.I)),
)


def _mask_shape(match: re.Match[str]) -> str:
    start, end = match.span("secret")
    whole, offset = match.group(), match.start()
    return whole[: start - offset] + MASK + whole[end - offset :]


def _mask_shapes(text: str) -> str:
    for _, pattern in _ERROR_SHAPES:
        text = pattern.sub(_mask_shape, text)
    return text


def _has_shape(text: str) -> bool:
    return any(pattern.search(text) for _, pattern in _ERROR_SHAPES)


# Writers take the lock; redact() reads the snapshot without it. redact() runs in logging
# filters, and a GC finalizer (an httpx client closed by weakref.finalize logs at DEBUG) can run
# while this very thread holds the lock: a lock taken on the read path would deadlock there.
_lock = threading.RLock()
_remembered: OrderedDict[str, None] = OrderedDict()
_snapshot: tuple[str, ...] = ()


def remember(*secrets: str | None) -> None:
    """Register credential values to mask wherever they appear (the most recent 32 are kept)."""
    global _snapshot
    install_log_filters()
    recent = tuple(s for s in secrets if s and len(s) >= MIN_SECRET)
    if not recent or _snapshot[-len(recent) :] == recent:
        return  # already the most recent ones (every request sends the same token): no change
    with _lock:
        for secret in secrets:
            if secret and len(secret) >= MIN_SECRET:
                _remembered.pop(secret, None)
                _remembered[secret] = None
        while len(_remembered) > _MAX_REMEMBERED:
            _remembered.popitem(last=False)
        _snapshot = tuple(_remembered)


def forget_all() -> None:
    """Forget every remembered secret (tests)."""
    global _snapshot
    with _lock:
        _remembered.clear()
        _snapshot = ()


def secrets_in(headers: Mapping[str, str]) -> tuple[str, ...]:
    """The credential values of request headers (``Bearer``/``Basic`` stripped), remembered."""
    out = []
    for name, value in headers.items():
        if name.lower() in SECRET_HEADERS and isinstance(value, str):
            scheme, _, credential = value.partition(" ")
            out.append(credential.strip() if credential else scheme)
            if scheme.lower() == "basic" and credential:
                out.extend(_basic_parts(credential.strip()))
    remember(*out)
    return tuple(s for s in out if len(s) >= MIN_SECRET)


def _basic_parts(encoded: str) -> list[str]:
    try:
        _user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return []
    return [password] if password else []


def _char_forms(char: str) -> str:
    """A regex alternation of the encodings of one character."""
    code = ord(char)
    forms = {re.escape(char)}
    hex2 = f"{code:02x}"
    forms.add("%" + "".join(f"[{c}{c.upper()}]" if c.isalpha() else c for c in hex2))
    forms.add(r"\\u0*" + "".join(f"[{c}{c.upper()}]" if c.isalpha() else c for c in hex2))
    forms.add(rf"&#0*{code};?")
    forms.add("&#[xX]0*" + "".join(f"[{c}{c.upper()}]" if c.isalpha() else c for c in hex2) + ";?")
    if char == "/":
        forms.add(r"\\/")
    named = _NAMED_ENTITIES.get(char)
    if named:
        forms.add(re.escape(named))
    return "(?:" + "|".join(sorted(forms, key=len, reverse=True)) + ")"


_NAMED_ENTITIES = {
    "+": "&plus;",
    "/": "&sol;",
    "=": "&equals;",
    ".": "&period;",
    "_": "&lowbar;",
    ":": "&colon;",
    "&": "&amp;",
}


@lru_cache(maxsize=256)
def _base64_cores(secret: str) -> frozenset[str]:
    """Substrings every base64 encoding of a text holding ``secret`` contains, at each of the
    three byte alignments, in both alphabets (the edge characters mix in neighbouring bytes)."""
    raw = secret.encode()
    cores = set()
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + raw).decode()
        start = -(-8 * shift // 6)
        end = (8 * (shift + len(raw))) // 6
        core = encoded[start:end]
        if len(core) >= MIN_SECRET:
            cores.add(core)
            cores.add(core.replace("+", "-").replace("/", "_"))
    return frozenset(cores)


@lru_cache(maxsize=256)
def _source(secret: str) -> str:
    encoded = "".join(_char_forms(c) for c in secret)
    cores = "|".join(re.escape(c) for c in sorted(_base64_cores(secret), key=len, reverse=True))
    return f"{encoded}|{cores}" if cores else encoded


@lru_cache(maxsize=16)
def _pattern(secrets: tuple[str, ...]) -> re.Pattern[str]:
    """One pattern for all ``secrets`` (longest first), matched in a single pass."""
    return re.compile("|".join(f"(?:{_source(s)})" for s in secrets))


_ANY_ESCAPE = re.compile(
    r"\\u([0-9a-fA-F]{4})|%([0-9a-fA-F]{2})|&#(\d{1,7});?|&#[xX]([0-9a-fA-F]{1,6});?|\\(/)"
)


def _unescape_char(match: re.Match[str]) -> str:
    u, pct, dec, hexa, slash = match.groups()
    if slash:
        return "/"
    try:
        return chr(int(u or pct or hexa, 16) if not dec else int(dec))
    except (ValueError, OverflowError):
        return match.group()


def _may_hold(text: str, secrets: tuple[str, ...]) -> bool:
    """A fast check that ``text`` may hold one of ``secrets`` in some encoding: each escape
    form decoded at once (mixed forms too), then plain substring tests."""
    needles = _needles(secrets)
    if needles.search(text):
        return True
    if not _ESCAPES.search(text):
        return False
    return bool(needles.search(html.unescape(_ANY_ESCAPE.sub(_unescape_char, text))))


@lru_cache(maxsize=16)
def _needles(secrets: tuple[str, ...]) -> re.Pattern[str]:
    """The literal forms of ``secrets`` (raw, and their base64 cores) in one pattern."""
    literals = {*secrets, *(core for s in secrets for core in _base64_cores(s))}
    return re.compile("|".join(re.escape(x) for x in sorted(literals, key=len, reverse=True)))


_ESCAPES = re.compile(r"[\\%&]")


def _decoded_views(text: str) -> list[str]:
    """``text`` as a reader would see it once JSON escapes, URL or HTML encoding are undone."""
    views = []
    if "\\u" in text or "\\/" in text:
        try:
            views.append(json.loads('"' + text.replace('"', '\\"') + '"'))
        except ValueError:
            views.append(re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), text))
    if "%" in text:
        views.append(unquote(text))
    if "&" in text:
        views.append(html.unescape(text))
    return [v for v in views if v != text]


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every remembered credential (and ``secrets``), in any common encoding, and
    every token-shaped string replaced by ``***``.

    Example:
        >>> redact("Authorization: Bearer abcdefgh12345678")
        'Authorization: Bearer ***'
    """
    if not text:
        return text
    active = [*_snapshot, *(s for s in secrets if s and len(s) >= MIN_SECRET)]
    ordered = tuple(sorted(set(active), key=len, reverse=True))
    for _ in range(3):  # an encoding inside an encoding is undone too, a few levels deep
        if ordered and _may_hold(text, ordered):
            text = _pattern(ordered).sub(MASK, text)
        text = _mask_shapes(text)
        # A secret hidden by an encoding the character forms do not cover (a token shape in
        # a JSON-escaped "Bearer", a double encoding): show the decoded text instead.
        hidden = [v for v in _decoded_views(text) if _leaks(v, ordered)]
        if not hidden:
            return text
        text = hidden[0]
    return MASK


def mask_encoded(text: str, secrets: Iterable[str], mask: str = MASK) -> str:
    """``text`` with ``secrets`` (only these, no shapes) replaced by ``mask`` in every encoding
    :func:`redact` knows; the cassette scrubbers use it with their own placeholder."""
    ordered = tuple(
        sorted({s for s in secrets if s and len(s) >= MIN_SECRET}, key=len, reverse=True)
    )
    if not ordered or not _may_hold(text, ordered):
        return text
    return _pattern(ordered).sub(mask, text)


def _leaks(text: str, secrets: tuple[str, ...]) -> bool:
    return _has_shape(text) or bool(secrets and _may_hold(text, secrets))


def redact_value(value: Any, secrets: Iterable[str] = ()) -> Any:
    """:func:`redact` applied to every string inside ``value`` (dicts, lists, tuples, bytes,
    LangChain messages and their chunks); other values are returned as they are."""
    secrets = tuple(secrets)
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, bytes):
        text = value.decode("utf-8", "replace")
        cleaned = redact(text, secrets)
        return value if cleaned == text else cleaned.encode()
    if isinstance(value, Mapping):
        return {k: redact_value(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_value(v, secrets) for v in value]
    if isinstance(value, tuple):
        return tuple(redact_value(v, secrets) for v in value)
    content = getattr(value, "content", None)
    if content is not None and hasattr(value, "model_copy"):
        update: dict[str, Any] = {"content": redact_value(content, secrets)}
        extra = getattr(value, "additional_kwargs", None)
        if extra:
            update["additional_kwargs"] = redact_value(extra, secrets)
        return value.model_copy(update=update)
    return value


class RedactingFilter(logging.Filter):
    """A logging filter that passes every record's text through :func:`redact`.

    httpcore logs response headers at DEBUG (``receive_response_headers.complete``), so a server
    that echoes the token into a header would put it in the logs; this filter, installed on the
    HTTP libraries' loggers, masks it. Records with nothing to mask are left untouched.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is logging's problem, not ours
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        return True


_LOGGERS = (
    "httpx",
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
    "urllib3.connectionpool",
    "databricks.sdk",
    "langchain_dbx_serving",
)
_installed = False


def install_log_filters() -> None:
    """Install :class:`RedactingFilter` on the loggers that see our requests (once)."""
    global _installed
    if _installed:
        return
    with _lock:
        if not _installed:
            for name in _LOGGERS:
                logging.getLogger(name).addFilter(RedactingFilter())
            _installed = True
