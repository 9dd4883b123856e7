"""A pure server-sent-events decoder, fed raw bytes as they arrive.

Follows the WHATWG event-stream rules: lines end in CRLF, LF or CR (a CRLF may be split across
two chunks); lines starting with ``:`` are comments (Databricks sends ``: PROCESSING``);
``data`` lines of one event are joined with ``\\n``; a blank line dispatches the event; a
leading UTF-8 BOM is ignored. It never touches the network, so it is tested with bytes split
at every boundary.

Bytes of an unfinished line are kept as a list of pieces and joined once the line ends, so a
multi-megabyte event (a returned trace) arriving in thousands of chunks costs linear time. An
event larger than ``max_event_bytes`` raises
:class:`~langchain_dbx_serving.errors.MalformedResponseError` instead of growing without bound.

Example:
    >>> decoder = SSEDecoder()
    >>> decoder.feed(b'data: {"a": 1}\\n\\nda')
    [ServerSentEvent(event='message', data='{"a": 1}')]
    >>> decoder.feed(b"ta: [DONE]\\n\\n")
    [ServerSentEvent(event='message', data='[DONE]')]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from langchain_dbx_serving.errors import MalformedResponseError

__all__ = ["DEFAULT_MAX_EVENT_BYTES", "SSEDecoder", "ServerSentEvent"]

DEFAULT_MAX_EVENT_BYTES = 64 * 1024 * 1024
# What one held ``data`` line costs beyond its text (a str object and a list slot): counted
# against ``max_event_bytes`` so that millions of tiny lines cannot hold far more memory.
_LINE_OVERHEAD = 64
_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    """One dispatched event: its type (``message`` unless an ``event:`` line said so) and data."""

    event: str = "message"
    data: str = ""


class SSEDecoder:
    """Turns a byte stream into :class:`ServerSentEvent` objects, one ``feed`` call per chunk."""

    __slots__ = (
        "_data",
        "_data_size",
        "_event",
        "_pending",
        "_pending_size",
        "_skip_lf",
        "_started",
        "max_event_bytes",
    )

    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self.max_event_bytes = max_event_bytes
        self._pending: list[bytes] = []  # pieces of the current, unfinished line
        self._pending_size = 0
        self._data: list[str] = []
        self._data_size = 0
        self._event = ""
        self._skip_lf = False
        self._started = False

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """Decode one chunk of bytes; returns the events it completed (often none or one)."""
        return self._feed(chunk, False)

    def payloads(self, chunk: bytes) -> list[str]:
        """:meth:`feed`, returning only the ``data`` of each completed event (what a POST
        stream's reader needs): no event object is built per event."""
        return self._feed(chunk, True)

    def _feed(self, chunk: bytes, bare: bool) -> list[Any]:
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
        if b"\n" not in chunk and b"\r" not in chunk:
            self._hold(chunk)
            return []
        buffer = b"".join([*self._pending, chunk]) if self._pending else chunk
        self._pending, self._pending_size = [], 0
        lines = buffer.splitlines()  # CRLF, LF and CR, without their line ends
        end = buffer[-1:]
        if end == b"\n" or end == b"\r":
            self._skip_lf = end == b"\r"
        else:  # the last line has not ended yet
            self._hold(lines.pop())
        out: list[Any] = []
        for line in lines:
            if line[:6] == b"data: ":  # most lines: what _line does with them, inline
                value = line[6:].decode("utf-8", "replace")
                self._data.append(value)
                self._data_size += len(value) + _LINE_OVERHEAD
                if self._pending_size + self._data_size > self.max_event_bytes:
                    self._check_size()
            elif not line:  # a blank line dispatches the event (inline, as the above)
                if self._data:
                    out.append(self._dispatch_data() if bare else self._dispatch())
                else:
                    self._event = ""
            else:
                event = self._line(line.decode("utf-8", "replace"))
                if event is not None:
                    out.append(event.data if bare else event)
        return out

    def flush(self) -> list[ServerSentEvent]:
        """End of stream: dispatch a last event whose terminating blank line never came.

        The spec discards such an event; we keep it, because a complete ``data:`` line whose
        blank line was lost is still a whole payload, and dropping it would hide the end of a reply.
        """
        events: list[ServerSentEvent] = []
        if self._pending:
            line = b"".join(self._pending).decode("utf-8", "replace")
            self._pending, self._pending_size = [], 0
            event = self._line(line)
            if event is not None:
                events.append(event)
        if self._data:
            events.append(self._dispatch())
        return events

    def _hold(self, piece: bytes) -> None:
        self._pending.append(piece)
        self._pending_size += len(piece)
        self._check_size()

    def _check_size(self) -> None:
        size = self._pending_size + self._data_size
        if size > self.max_event_bytes:
            self._pending, self._data = [], []
            raise MalformedResponseError(
                f"a server-sent event grew past {self.max_event_bytes} bytes without ending — "
                "the endpoint sent a runaway reply; raise the transport's max_event_bytes if "
                "such large events are expected",
                event=f"<{size} bytes>",
            )

    def _strip_bom(self, chunk: bytes) -> bytes | None:
        pending = b"".join([*self._pending, chunk])
        if len(pending) < len(_BOM) and _BOM.startswith(pending):
            self._pending, self._pending_size = [pending], len(pending)
            return None
        self._started = True
        self._pending, self._pending_size = [], 0
        return pending[len(_BOM) :] if pending.startswith(_BOM) else pending

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
            self._data_size += len(value) + _LINE_OVERHEAD
            self._check_size()
        elif field == "event":
            self._event = value
        # "id" and "retry" have no use for one-shot POST streams.
        return None

    def _dispatch(self) -> ServerSentEvent:
        event = self._event or "message"
        return ServerSentEvent(event, self._dispatch_data())

    def _dispatch_data(self) -> str:
        data = self._data
        self._data, self._data_size = [], 0
        self._event = ""
        return data[0] if len(data) == 1 else "\n".join(data)

    def _reset(self) -> None:
        self._event = ""
        return None
