"""Streamed, bounded decoding of compressed replies.

httpx decodes a whole received chunk at once, so 32 KB of zstd can become gigabytes before any
size check runs. The transport therefore reads raw bytes and decodes them here, in pieces of at
most ``PIECE`` bytes, so the caller's size bound stops decompression as soon as it is passed.
Only the encodings we ask for (``Accept-Encoding: gzip, deflate``) are decoded; a reply in any
other encoding (zstd, br, ...) is refused rather than decoded without a bound.

Example:
    >>> import gzip
    >>> decoder = BodyDecoder("gzip")
    >>> b"".join(decoder.feed(gzip.compress(b"hello"))) + b"".join(decoder.flush())
    b'hello'
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator

from langchain_dbx_serving.errors import MalformedResponseError

__all__ = ["ACCEPT_ENCODING", "PIECE", "BodyDecoder"]

ACCEPT_ENCODING = "gzip, deflate"
PIECE = 64 * 1024


class _Inflate:
    __slots__ = ("_first", "_obj")

    def __init__(self, encoding: str) -> None:
        self._first = encoding == "deflate"
        wbits = zlib.MAX_WBITS | 16 if encoding == "gzip" else zlib.MAX_WBITS
        self._obj = zlib.decompressobj(wbits)

    def feed(self, data: bytes) -> Iterator[bytes]:
        if self._first and data:
            # "deflate" is zlib-wrapped by the standard, raw by some servers.
            self._first = False
            header = len(data) >= 2 and data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0
            if not header:
                self._obj = zlib.decompressobj(-zlib.MAX_WBITS)
        while data:
            out = self._obj.decompress(data, PIECE)
            data = self._obj.unconsumed_tail
            if out:
                yield out
            elif not data:
                break

    def flush(self) -> Iterator[bytes]:
        out = self._obj.flush()
        for start in range(0, len(out), PIECE):
            yield out[start : start + PIECE]


class BodyDecoder:
    """Decodes a body in ``Content-Encoding`` order, yielding pieces of at most ``PIECE``."""

    __slots__ = ("_stages",)

    def __init__(self, content_encoding: str | None) -> None:
        if not content_encoding:  # the usual reply: nothing to undo
            self._stages: list[_Inflate] = []
            return
        names = [n.strip().lower() for n in (content_encoding or "").split(",") if n.strip()]
        names = [n for n in names if n != "identity"]
        for name in names:
            if name not in ("gzip", "x-gzip", "deflate"):
                raise MalformedResponseError(
                    f"the reply is compressed with {name!r}, which was not asked for "
                    f"(Accept-Encoding: {ACCEPT_ENCODING}) and is not decoded: it could not be "
                    "bounded in memory — check any proxy in between",
                    event=f"Content-Encoding: {content_encoding}",
                )
        # Encodings are listed in the order applied, so they are undone in reverse.
        self._stages = [_Inflate("gzip" if n == "x-gzip" else n) for n in reversed(names)]

    def feed(self, raw: bytes) -> Iterable[bytes]:
        if not self._stages:  # identity: the bytes as they came (once per received chunk)
            return (raw,) if raw else ()
        return self._feed(raw)

    def _feed(self, raw: bytes) -> Iterator[bytes]:
        try:
            yield from self._run(0, [raw])
        except zlib.error as exc:
            raise self._corrupt(exc) from None

    def flush(self) -> Iterator[bytes]:
        try:
            for index, stage in enumerate(self._stages):
                yield from self._run(index + 1, list(stage.flush()))
        except zlib.error as exc:
            raise self._corrupt(exc) from None

    def _run(self, index: int, pieces: list[bytes]) -> Iterator[bytes]:
        if index == len(self._stages):
            yield from (p for p in pieces if p)
            return
        stage = self._stages[index]
        for piece in pieces:
            for out in stage.feed(piece):
                yield from self._run(index + 1, [out])

    @staticmethod
    def _corrupt(exc: zlib.error) -> MalformedResponseError:
        return MalformedResponseError(
            f"the compressed reply could not be decoded ({exc})", event=str(exc)
        )
