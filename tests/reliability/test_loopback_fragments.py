"""SSE bytes split at arbitrary points and sent through a real loopback TCP connection.

A raw socket server writes each fragment as its own HTTP chunk with ``TCP_NODELAY``, so
fragments arrive at the client as separate reads wherever the kernel keeps them apart; the
transport (sync and async) must yield the same events as decoding the whole stream at once.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from langchain_dbx_serving.auth import TokenCredentials
from langchain_dbx_serving.testing.replies import Quirks, Reply
from langchain_dbx_serving.transport.client import Transport
from langchain_dbx_serving.transport.sse import SSEDecoder
from tests.unit.test_transport_properties import positions, quirk_sets, replies, split, sse_stream


class FragmentServer:
    """Answers every request with ``fragments``, one HTTP chunk each, then closes."""

    def __init__(self) -> None:
        self.fragments: list[bytes] = []
        self.served = 0
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}/serving-endpoints/x/invocations"
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            with conn:
                self._answer(conn)

    def _answer(self, conn: socket.socket) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        request = b""
        while b"\r\n\r\n" not in request:
            request += conn.recv(65536)
        head, _, body = request.partition(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        )
        while len(body) < length:
            body += conn.recv(65536)
        conn.sendall(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"transfer-encoding: chunked\r\nconnection: close\r\n\r\n"
        )
        for fragment in self.fragments:
            if fragment:
                conn.sendall(b"%x\r\n%s\r\n" % (len(fragment), fragment))
        conn.sendall(b"0\r\n\r\n")
        self.served += 1

    def close(self) -> None:
        self._sock.close()


@pytest.fixture(scope="module")
def server() -> Iterator[FragmentServer]:
    made = FragmentServer()
    yield made
    made.close()


def whole(stream: bytes) -> list[str]:
    decoder = SSEDecoder()
    return [event.data for event in [*decoder.feed(stream), *decoder.flush()]]


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    protocol=st.sampled_from(["chat", "responses"]),
    reply=replies,
    quirks=quirk_sets,
    newline=st.sampled_from([b"\n", b"\r\n", b"\r"]),
    cuts=st.lists(positions, max_size=30),
)
def test_fragments_on_a_real_connection_give_the_same_events(
    server: FragmentServer,
    protocol: str,
    reply: Reply,
    quirks: Quirks,
    newline: bytes,
    cuts: list[int],
) -> None:
    stream = sse_stream(reply, protocol, quirks, multiline=True).replace(b"\n", newline)
    server.fragments = split(stream, cuts)
    transport = Transport(lambda: TokenCredentials("t"), max_retries=0)

    synced = list(transport.stream(server.url, {"stream": True}))

    async def collect() -> list[str]:
        got = [data async for data in transport.astream(server.url, {"stream": True})]
        await transport.aclose()
        return got

    assert synced == whole(stream)
    assert asyncio.run(collect()) == synced
    transport.close()
