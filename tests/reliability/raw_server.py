"""A raw-socket HTTP server on loopback, for faults below HTTP.

Each accepted request is answered by the next *script* of the server's plan (the last one
repeats): a list of steps, each one of

- ``bytes``: sent as they are;
- ``Sleep(seconds)``: pause (woken early when the server stops);
- ``Trickle(data, every)``: ``data`` one byte at a time, ``every`` seconds apart, until the client
  goes away or the server stops;
- ``Repeat(data, every)``: ``data`` again and again (keep-alive flood), same ending;
- ``RESET``: close with a TCP reset; ``CLOSE``: close normally; ``HOLD``: wait, silent, until the
  client goes away or the server stops.

A script that ends without closing closes normally. The server records each request's raw
bytes, so tests can count what reached it.

Example:
    >>> with RawServer([[b"HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\n\\r\\n{}"]]) as srv:
    ...     srv.url.startswith("http://127.0.0.1:")
    True
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["CLOSE", "HOLD", "RESET", "RawServer", "Repeat", "Sleep", "Trickle", "http_head"]

RESET = "reset"
CLOSE = "close"
HOLD = "hold"


@dataclass(frozen=True)
class Sleep:
    seconds: float


@dataclass(frozen=True)
class Trickle:
    data: bytes
    every: float


@dataclass(frozen=True)
class Repeat:
    data: bytes
    every: float


def http_head(
    status: str = "200 OK", content_type: str = "application/json", **headers: str
) -> bytes:
    """A status line and headers, ending with the blank line."""
    lines = [f"HTTP/1.1 {status}", f"Content-Type: {content_type}"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class RawServer:
    """A loopback TCP server answering every request with scripted bytes."""

    def __init__(self, plan: Sequence[Sequence[Any]], *, greeting: bytes = b"") -> None:
        self.plan = [list(script) for script in plan]
        self.greeting = greeting  # sent on accept, before reading anything (e.g. not-TLS)
        self.requests: list[bytes] = []
        self.connections = 0
        self._stop = threading.Event()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self._listener.settimeout(0.05)
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._threads: list[threading.Thread] = []
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._accepter = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> RawServer:
        self._accepter.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._accepter.join(5)
        for thread in list(self._threads):
            thread.join(5)
        self._listener.close()
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.close()

    @property
    def open_connections(self) -> int:
        return sum(1 for t in self._threads if t.is_alive())

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self._conns.append(conn)
                self.connections += 1
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _read_request(self, conn: socket.socket) -> bytes | None:
        conn.settimeout(0.05)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = self._recv(conn)
            if chunk is None:
                return None
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        while len(body) < length:
            chunk = self._recv(conn)
            if chunk is None:
                return None
            body += chunk
        return head + b"\r\n\r\n" + body

    def _recv(self, conn: socket.socket) -> bytes | None:
        while not self._stop.is_set():
            try:
                chunk = conn.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return None
            return chunk or None
        return None

    def _serve(self, conn: socket.socket) -> None:
        try:
            if self.greeting:
                conn.sendall(self.greeting)
            while not self._stop.is_set():
                request = self._read_request(conn)
                if request is None:
                    return
                with self._lock:
                    index = len(self.requests)
                    self.requests.append(request)
                script = self.plan[min(index, len(self.plan) - 1)]
                if not self._run(conn, script):
                    return
        finally:
            with contextlib.suppress(OSError):
                conn.close()

    def _client_gone(self, conn: socket.socket) -> bool:
        try:
            conn.settimeout(0)
            return conn.recv(1, socket.MSG_PEEK) == b""
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            return True
        finally:
            conn.settimeout(0.05)

    def _run(self, conn: socket.socket, script: list[Any]) -> bool:
        """Carry out one script; whether the connection stays open for another request."""
        for step in script:
            if self._stop.is_set():
                return False
            try:
                if isinstance(step, bytes):
                    conn.sendall(step)
                elif isinstance(step, Sleep):
                    self._stop.wait(step.seconds)
                elif isinstance(step, (Trickle, Repeat)):
                    self._drip(conn, step)
                    return False
                elif step == RESET:
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    conn.close()
                    return False
                elif step == CLOSE:
                    return False
                elif step == HOLD:
                    while not self._stop.is_set() and not self._client_gone(conn):
                        self._stop.wait(0.02)
                    return False
            except OSError:
                return False
        return script[-1:] == ["keep"]

    def _drip(self, conn: socket.socket, step: Trickle | Repeat) -> None:
        pieces = (
            [step.data[i : i + 1] for i in range(len(step.data))]
            if isinstance(step, Trickle)
            else None
        )
        i = 0
        while not self._stop.is_set():
            piece = pieces[i % len(pieces)] if pieces is not None else step.data
            i += 1
            try:
                conn.sendall(piece)
            except OSError:
                return
            self._stop.wait(step.every)
