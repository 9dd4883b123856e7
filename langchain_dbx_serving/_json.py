"""JSON at the package's two edges: request bodies going out, replies coming in.

Going out, :func:`dumps_request` refuses what JSON cannot carry (``NaN``/``inf``, ``datetime``
and other objects, lone surrogates, non-string keys, cycles, absurd nesting) with a
:class:`~langchain_dbx_serving.errors.RequestEncodingError` naming the field, before anything
is sent: ``json.dumps`` would write invalid JSON for ``NaN``, silently turn ``{1: ...}`` into
``{"1": ...}``, or fail with a bare ``TypeError``/``UnicodeEncodeError``.

Coming in, :func:`loads` is depth-bounded: a reply nested deeper than ``MAX_DEPTH`` is refused
with ``ValueError`` (callers turn it into ``MalformedResponseError``) instead of a
``RecursionError`` here or later.

Example:
    >>> dumps_request({"messages": [{"role": "user", "content": "hi"}]})
    b'{"messages":[{"role":"user","content":"hi"}]}'
    >>> dumps_request({"custom_inputs": {"x": float("nan")}})
    Traceback (most recent call last):
    ...
    langchain_dbx_serving.errors.RequestEncodingError: request field custom_inputs.x is nan, which JSON cannot carry — send a number, or null / a string instead
"""  # noqa: E501

from __future__ import annotations

import json
import math
from typing import Any

from langchain_dbx_serving.errors import RequestEncodingError

__all__ = ["MAX_DEPTH", "dumps_request", "loads"]

MAX_DEPTH = 256
_lenient = json.JSONDecoder(strict=False).decode


def _path(parts: list[str]) -> str:
    out = ""
    for part in parts:
        out += part if part.startswith("[") or not out else "." + part
    return out or "<body>"


def _problem(value: Any) -> str | None:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            return (
                f"a string with a lone surrogate at position {exc.start} ({value[exc.start]!r}), "
                "which is not valid UTF-8 — decode the text it came from with errors='replace'"
            )
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return f"{value!r}, which JSON cannot carry — send a number, or null / a string instead"
    if value is None or isinstance(value, (bool, int, float)):
        return None
    return (
        f"a {type(value).__name__} ({_short(value)}), which JSON cannot carry — convert it "
        "first (e.g. a datetime with .isoformat(), a set with list())"
    )


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _plain(body: Any) -> bool:
    """Whether ``body`` holds only exact JSON types, finite floats, strings that encode, string
    keys, no container twice and no nesting past ``MAX_DEPTH``: then :func:`_check` has nothing
    to report. Every request walks this, so it keeps no paths; anything else (subclasses
    included) is left to :func:`_check`, which names the field."""
    level, depth, seen = [body], 0, set()
    while level:  # breadth first: one list per nesting level, no (value, depth) pairs
        below: list[Any] = []
        for value in level:
            kind = type(value)
            if kind is str:
                if not value.isascii() and not _encodes(value):
                    return False
            elif kind is dict or kind is list or kind is tuple:
                if depth > MAX_DEPTH or id(value) in seen:
                    return False
                seen.add(id(value))
                if kind is dict:
                    for key in value:
                        if type(key) is not str or (not key.isascii() and not _encodes(key)):
                            return False
                    below.extend(value.values())
                else:
                    below.extend(value)
            elif kind is float:
                if not math.isfinite(value):
                    return False
            elif value is not None and kind is not bool and kind is not int:
                return False
        level, depth = below, depth + 1
    return True


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check(body: Any) -> None:
    """Walk ``body`` iteratively; raise on the first value JSON cannot carry."""
    if _plain(body):
        return
    stack: list[tuple[Any, list[str]]] = [(body, [])]
    active: set[int] = set()
    while stack:
        value, path = stack.pop()
        if isinstance(value, (dict, list, tuple)):
            if len(path) > MAX_DEPTH:
                raise RequestEncodingError(
                    f"request field {_path(path)} is nested more than {MAX_DEPTH} levels deep",
                    field=_path(path),
                )
            if id(value) in active and path:
                raise RequestEncodingError(
                    f"request field {_path(path)} contains itself (a cycle)", field=_path(path)
                )
            active.add(id(value))
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str):
                    raise RequestEncodingError(
                        f"request field {_path(path)} has a {type(key).__name__} key {key!r}; "
                        "JSON object keys must be strings — convert the keys with str()",
                        field=_path(path),
                    )
                problem = _problem(key)
                if problem is not None:
                    raise RequestEncodingError(
                        f"a key of request field {_path(path)} is {problem}", field=_path(path)
                    )
                stack.append((item, [*path, key]))
        elif isinstance(value, (list, tuple)):
            stack.extend((item, [*path, f"[{i}]"]) for i, item in enumerate(value))
        else:
            problem = _problem(value)
            if problem is not None:
                raise RequestEncodingError(
                    f"request field {_path(path)} is {problem}", field=_path(path)
                )


def dumps_request(body: Any) -> bytes:
    """``body`` as compact UTF-8 JSON, or a :class:`RequestEncodingError` naming the field."""
    # The walk comes first: json.dumps would accept {1: x} (writing {"1": x}) and NaN.
    _check(body)
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def _depth_exceeds(value: Any, limit: int) -> bool:
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            if depth >= limit:
                return True
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            if depth >= limit:
                return True
            stack.extend((v, depth + 1) for v in item)
    return False


def loads(data: str | bytes, *, limit: int = MAX_DEPTH) -> Any:
    """Parse JSON leniently (raw control characters allowed inside strings), depth-bounded.

    Raises ``ValueError`` for invalid JSON and for nesting deeper than ``limit``.
    """
    text = data.decode("utf-8", "replace") if isinstance(data, (bytes, bytearray)) else data
    try:
        value = _lenient(text)
    except RecursionError:
        raise ValueError(f"JSON nested more than {limit} levels deep") from None
    # Cheap pre-checks: fewer brackets than the limit (a text shorter than it has fewer)
    # cannot nest deeper than it.
    if len(text) <= limit:
        return value
    if text.count("[") + text.count("{") > limit and _depth_exceeds(value, limit):
        raise ValueError(f"JSON nested more than {limit} levels deep")
    return value
