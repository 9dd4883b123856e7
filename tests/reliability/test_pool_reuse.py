"""A busy pool keeps its connections: many requests in flight reuse them, never one per request.

Against a real endpoint every new connection is a TCP and TLS handshake (client CPU, round
trips, and the endpoint's TLS termination). httpcore 1.0 closes a connection at the end of a
request whenever its pool holds more connections than it keeps alive, so a pool that keeps
fewer alive than it opens reconnects for nearly every request once they overlap; the transport
keeps every connection it opens alive (``transport/_pools.py``). The server here answers each
request after a pause, so that requests overlap and connections are busy, as with a model.
"""

from __future__ import annotations

import asyncio
import json

from langchain_dbx_serving import ChatDatabricksServing
from tests.reliability.raw_server import RawServer, Sleep, http_head

POOL = 64  # the transport's default max_connections
BODY = json.dumps(
    {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "m",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
        ],
    }
).encode()
REPLY = http_head(Content_Length=str(len(BODY))) + BODY


async def test_overlapping_requests_reuse_the_pools_connections() -> None:
    with RawServer([[Sleep(0.05), REPLY, "keep"]]) as server:  # keep: a keep-alive server
        llm = ChatDatabricksServing(endpoint="m", host=server.url, token="t-0123456789")
        assert llm.transport.max_connections == POOL
        try:
            for _ in range(2):  # 2 x 4 waves of 64 requests, each reply after 50 ms
                replies = await asyncio.gather(*(llm.ainvoke("hi") for _ in range(4 * POOL)))
                assert [r.text for r in replies] == ["ok"] * (4 * POOL)
        finally:
            await llm.transport.aclose()
        requests = len(server.requests)
        assert requests == 8 * POOL
        # At most one connection per slot (and a few the timing of a wave may add): not one
        # per request.
        assert server.connections <= POOL + 4, (
            f"{server.connections} connections for {requests} requests"
        )
