"""A pure server-sent-events decoder, fed raw bytes as they arrive.

Follows the WHATWG event-stream rules: lines end in CRLF, LF or CR (a CRLF may be split across
two chunks); lines starting with ``:`` are comments (Databricks sends ``: PROCESSING``);
``data`` lines of one event are joined with ``\\n``; a blank line dispatches the event; a
leading UTF-8 BOM is ignored. It never touches the network, so it is tested with bytes split
at every boundary.

Example:
    >>> decoder = SSEDecoder()
    >>> decoder.feed(b'data: {"a": 1}\\n\\nda')
    [ServerSentEvent(event='message', data='{"a": 1}')]
    >>> decoder.feed(b"ta: [DONE]\\n\\n")
    [ServerSentEvent(event='message', data='[DONE]')]
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SSEDecoder", "ServerSentEvent"]


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    """One dispatched event: its type (``message`` unless an ``event:`` line said so) and data."""

    event: str = "message"
    data: str = ""


class SSEDecoder:
    """Turns a byte stream into :class:`ServerSentEvent` objects, one ``feed`` call per chunk."""

    __slots__ = ("_buffer", "_data", "_event", "_skip_lf", "_started")

    def __init__(self) -> None:
        self._buffer = b""
        self._data: list[str] = []
        self._event = ""
        self._skip_lf = False
        self._started = False

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """Decode one chunk of bytes; returns the events it completed (often none or one)."""
        if not chunk:
            return []
        if self._skip_lf:
            # The previous chunk ended in CR: an LF starting this one belongs to that CRLF.
            self._skip_lf = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
                if not chunk:
                    return []
        if not self._started:
            chunk = self._strip_bom(chunk)
            if chunk is None:
                return []
        buffer = self._buffer + chunk if self._buffer else chunk
        if not buffer:
            return []
        lines = buffer.splitlines(keepends=True)
        last = lines[-1]
        if last[-1:] in (b"\n", b"\r"):
            self._buffer = b""
            self._skip_lf = last[-1:] == b"\r"
        else:
            self._buffer = last
            lines.pop()
        events: list[ServerSentEvent] = []
        for raw in lines:
            event = self._line(raw.rstrip(b"\r\n").decode("utf-8", "replace"))
            if event is not None:
                events.append(event)
        return events

    def flush(self) -> list[ServerSentEvent]:
        """End of stream: dispatch a last event whose terminating blank line never came.

        The spec discards such an event; we keep it, because a complete ``data:`` line whose
        blank line was lost is still a whole payload, and dropping it would hide the end of a reply.
        """
        events: list[ServerSentEvent] = []
        if self._buffer:
            event = self._line(self._buffer.decode("utf-8", "replace"))
            self._buffer = b""
            if event is not None:
                events.append(event)
        if self._data:
            events.append(self._dispatch())
        return events

    def _strip_bom(self, chunk: bytes) -> bytes | None:
        bom = b"\xef\xbb\xbf"
        pending = self._buffer + chunk
        if len(pending) < len(bom) and bom.startswith(pending):
            self._buffer = pending
            return None
        self._started = True
        self._buffer = b""
        return pending[len(bom) :] if pending.startswith(bom) else pending

    def _line(self, line: str) -> ServerSentEvent | None:
        if not line:
            return self._dispatch() if self._data else self._reset()
        if line[0] == ":":
            return None
        field, sep, value = line.partition(":")
        if sep and value[:1] == " ":
            value = value[1:]
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._event = value
        # "id" and "retry" have no use for one-shot POST streams.
        return None

    def _dispatch(self) -> ServerSentEvent:
        event = ServerSentEvent(self._event or "message", "\n".join(self._data))
        self._data = []
        self._event = ""
        return event

    def _reset(self) -> None:
        self._event = ""
        return None
