"""Decoding compressed HTTP bodies for cassettes and the scanner, within a size bound.

httpx asks for ``gzip, deflate`` (plus ``br`` with brotli and ``zstd`` with zstandard installed),
so recorded replies may arrive compressed; vcrpy decodes gzip, deflate and br only. A cassette
must hold readable text, or neither scrubbing nor the scanner can see a token inside it.

Example:
    >>> import gzip
    >>> decode(gzip.compress(b"hello"), "gzip")
    b'hello'
"""

from __future__ import annotations

import zlib

__all__ = ["MAX_DECODED", "decode", "encodings_of"]

MAX_DECODED = 64 * 1024 * 1024
"""Most bytes one decoded body may hold (a decompression bomb stops here)."""


class DecodeError(ValueError):
    """A body that does not decode as its content-encoding says, or decodes too large."""


def encodings_of(value: str | list[str] | None) -> list[str]:
    """``"gzip, br"`` / ``["gzip"]`` -> ``["gzip", "br"]`` (in the order they were applied)."""
    if not value:
        return []
    values = value if isinstance(value, list) else [value]
    return [e.strip().lower() for v in values for e in str(v).split(",") if e.strip()]


def _zlib(data: bytes, wbits: int) -> bytes:
    decoder = zlib.decompressobj(wbits)
    out = decoder.decompress(data, MAX_DECODED + 1)
    if len(out) > MAX_DECODED:
        raise DecodeError(f"decoded body larger than {MAX_DECODED} bytes")
    return out


def _one(data: bytes, encoding: str) -> bytes:
    if encoding in ("identity", ""):
        return data
    if encoding in ("gzip", "x-gzip"):
        return _zlib(data, 16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        try:
            return _zlib(data, zlib.MAX_WBITS)
        except zlib.error:
            return _zlib(data, -zlib.MAX_WBITS)  # raw deflate, as some servers send
    if encoding == "br":
        import brotli  # type: ignore[import-not-found]  # only present when replies used it

        out = brotli.decompress(data)
    elif encoding == "zstd":
        import zstandard

        reader = zstandard.ZstdDecompressor().stream_reader(data)
        out = reader.read(MAX_DECODED + 1)
    else:
        raise DecodeError(f"unknown content-encoding {encoding!r}")
    if len(out) > MAX_DECODED:
        raise DecodeError(f"decoded body larger than {MAX_DECODED} bytes")
    return out


def decode(data: bytes, content_encoding: str | list[str] | None) -> bytes:
    """``data`` with every content-encoding undone (last applied, first undone).

    Raises :class:`DecodeError` for a body that does not decode or decodes too large, and
    ``ImportError`` for ``br``/``zstd`` when their library is missing.
    """
    for encoding in reversed(encodings_of(content_encoding)):
        try:
            data = _one(data, encoding)
        except (zlib.error, OSError) as exc:
            raise DecodeError(f"body does not decode as {encoding}: {exc}") from None
        except Exception as exc:
            if isinstance(exc, (DecodeError, ImportError)):
                raise
            raise DecodeError(f"body does not decode as {encoding}: {exc}") from None
    return data
