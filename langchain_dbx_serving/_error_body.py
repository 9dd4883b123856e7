"""The one reader of error bodies: which JSON shapes say "this is an error", and its code/message.

Used by the transport (the body of an HTTP error status) and by both protocols (a reply or
stream event that reports an error instead of output), so that one body means one error
everywhere. Recognised shapes (PROTOCOLS.md section 7):

- OpenAI-style ``{"error": {"code" | "type", "message"}}`` (``code`` wins over ``type``);
- MLflow AgentServer ``{"error": "<text>"}`` (with a Databricks ``error_code`` when present);
- any other non-empty ``error`` value (kept as the message);
- Databricks ``{"error_code", "message"}``;
- vLLM-style ``{"object": "error", "code" | "type", "message"}``.

What a caller does beyond this is its own: the transport also reads ``{"message"}`` or
``{"detail"}`` bodies, HTML pages and plain text of a response it already knows failed; the
responses protocol treats ``status: "failed"`` as an error.

Example:
    >>> error_fields({"error": {"type": "x", "message": "boom"}})
    ('x', 'boom')
    >>> error_fields({"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no endpoint"})
    ('RESOURCE_DOES_NOT_EXIST', 'no endpoint')
    >>> error_fields({"output": []}) is None
    True
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = ["error_fields", "error_text"]


def _code(value: Any) -> str | None:
    return str(value) if value is not None and value != "" else None


def error_fields(body: Mapping[str, Any]) -> tuple[str | None, Any] | None:
    """``(error_code, message)`` when ``body`` reports an error, else ``None``.

    ``message`` is the wire value: usually a string, possibly another JSON value, or ``None``
    when the body names an error code but gives no message. An error object without a
    ``message`` gives the object itself.
    """
    if "error" not in body and not body.get("error_code") and body.get("object") != "error":
        return None  # the usual reply or stream event (what the checks below end with)
    error = body.get("error")
    if isinstance(error, Mapping) and error:
        code = error.get("code") if error.get("code") is not None else error.get("type")
        message = error.get("message")
        return _code(code), message if message is not None else dict(error)
    if isinstance(error, str) and error:
        return _code(body.get("error_code")), error
    if error and not isinstance(error, Mapping):
        return None, error
    if body.get("error_code"):
        return _code(body.get("error_code")), body.get("message")
    if body.get("object") == "error":
        code = body.get("code") if body.get("code") is not None else body.get("type")
        return _code(code), body.get("message")
    return None


def error_text(message: Any) -> str:
    """The ``message`` of :func:`error_fields` as text: a string as it is, another JSON value
    (an error object without a message, a list) as its JSON.

    Example:
        >>> error_text("boom"), error_text({"type": "x"})
        ('boom', '{"type": "x"}')
    """
    return message if isinstance(message, str) else json.dumps(message, default=str)
