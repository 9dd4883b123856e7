"""The fields MLflow's trace schemas disagree on: ids, times, statuses and attribute values.

Every function here is total: odd input gives a best-effort value (or ``None``), never an
exception, so that one strange field does not hide the rest of a trace.

- Ids: V3 ``Trace.to_dict()`` writes span and trace ids in base64 (``"hDfjesKv/Js="``);
  MLflow 3.5 wrote hex (``"8437e37ac2affc9b"``) and ``"tr-<hex>"`` trace ids; V2 wrote hex,
  early versions with a ``0x`` prefix. All become lowercase hex.
- Times: spans are in nanoseconds, but exception events have been seen in microseconds
  (PROTOCOLS.md section 7), and proto JSON writes int64 values as strings. All become ns.
- Statuses: ``STATUS_CODE_OK`` (V3), ``OK`` (3.5 and V2), OTel enum numbers.
- Attribute values are JSON-encoded strings on spans, plain strings on exception events.
- Info fields meant to be strings are kept as text whatever their JSON type.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from datetime import datetime
from typing import Any

from langchain_dbx_serving._json import loads

_HEX = re.compile(r"[0-9a-f]+")
# Epoch "now" is ~1.7e9 s, 1.7e12 ms, 1.7e15 us, 1.7e18 ns: the magnitude tells the unit.
_SCALES = ((10**17, 1), (10**14, 1_000), (10**11, 1_000_000), (0, 1_000_000_000))
_SPAN_STATUS = {
    "STATUS_CODE_OK": "OK",
    "OK": "OK",
    "STATUS_CODE_ERROR": "ERROR",
    "ERROR": "ERROR",
    "STATUS_CODE_UNSET": "UNSET",
    "UNSET": "UNSET",
    0: "UNSET",
    1: "OK",
    2: "ERROR",
}
_TRACE_STATE = {
    "OK": "OK",
    "ERROR": "ERROR",
    "IN_PROGRESS": "IN_PROGRESS",
    "STATE_UNSPECIFIED": "UNSPECIFIED",
    "TRACE_STATUS_UNSPECIFIED": "UNSPECIFIED",
    "UNSPECIFIED": "UNSPECIFIED",
}


def normalize_id(value: Any, size: int) -> str | None:
    """An id of ``size`` bytes as lowercase hex, from hex, ``0x`` hex, ``tr-`` hex or base64.

    Unrecognised strings come back unchanged (they still link a span to its parent).
    """
    if value is None or value == "" or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return f"{value:0{size * 2}x}"
    if not isinstance(value, str):
        return str(value)
    text = value.strip()
    lowered = text.lower()
    for prefix in ("0x", "tr-"):
        lowered = lowered.removeprefix(prefix)
    if _HEX.fullmatch(lowered) and len(lowered) == size * 2:
        return lowered
    if len(text) % 4 == 0:
        try:
            raw = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) == size:
            return raw.hex()
    if _HEX.fullmatch(lowered) and len(lowered) < size * 2 and text.lower().startswith("0x"):
        return lowered.zfill(size * 2)
    return text


def to_ns(value: Any) -> int | None:
    """A timestamp in nanoseconds from s, ms, us or ns (int, float or numeric string)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = int(value) if value.strip().isdigit() else float(value)
        except ValueError:
            return None
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        return None
    for threshold, scale in _SCALES:
        if value >= threshold:
            return value * scale if isinstance(value, int) else round(value * scale)
    return None


def iso_to_ms(value: Any) -> int | None:
    """Milliseconds since the epoch from an ISO 8601 time such as ``2025-06-01T10:00:00.123Z``."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
    # Python < 3.11 accepts only 3 or 6 fraction digits; protobuf writes up to 9.
    text = re.sub(r"\.(\d{1,9})", lambda m: "." + m.group(1)[:6].ljust(6, "0"), text)
    try:
        return round(datetime.fromisoformat(text).timestamp() * 1000)
    except ValueError:
        return None


def to_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:  # also digits int() refuses, such as "²"
            return None
    return None


def span_status(value: Any) -> str:
    """``OK``, ``ERROR`` or ``UNSET`` from any of the spellings MLflow has used."""
    key = value.strip().upper() if isinstance(value, str) else value
    try:
        return _SPAN_STATUS.get(key, "UNSET")
    except TypeError:  # an unhashable value
        return "UNSET"


def trace_state(value: Any) -> str:
    """``OK``, ``ERROR``, ``IN_PROGRESS`` or ``UNSPECIFIED``."""
    if not isinstance(value, str):
        return "UNSPECIFIED"
    return _TRACE_STATE.get(value.strip().upper(), "UNSPECIFIED")


def decode_value(value: Any) -> Any:
    """A JSON-encoded attribute value decoded (with the package's one lenient, depth-bounded
    decoder, ``_json.loads``); anything that is not JSON, or nests too deep, is kept as it is."""
    if not isinstance(value, str):
        return value
    try:
        return loads(value)
    except ValueError:
        return value


def to_text(value: Any) -> str | None:
    """A trace field meant to be a string, best effort: a string as it is, ``None`` as
    ``None``, anything else (an id written as a number) as its ``str()``.

    Not the wire's string coercion (``protocols._common.as_str``, where a non-string is
    absent): a trace is read for display, and an odd field keeps what it said.
    """
    return value if isinstance(value, str) else None if value is None else str(value)


def string_map(value: Any) -> dict[str, str]:
    """``trace_metadata`` / ``tags``: a dict of strings (other values are JSON-encoded)."""
    if not isinstance(value, dict):
        return {}
    return {
        str(k): v if isinstance(v, str) else json.dumps(v, default=str) for k, v in value.items()
    }
