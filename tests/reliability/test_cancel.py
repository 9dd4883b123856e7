"""A caller that stops a stream half-way (cancels its task, breaks out of the loop) gets its
connection back: later calls on a one-connection pool still go through, and no socket leaks.

The endpoint stalls after a few events, so the stream is open and waiting when it is stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import Any

import httpx
import pytest

from langchain_dbx_serving import AgentEndpoint, ChatDatabricksResponses, ChatDatabricksServing
from langchain_dbx_serving.testing import Fault, LocalEndpoint, Reply
from tests.support.serving import queue

ANSWER = Reply.text(["one ", "two ", "three ", "four"])


def client_sockets(port: int) -> set[str]:
    """Inodes of this process's open TCP sockets connected to ``port`` (the client side only:
    the in-process endpoint's own sockets close on its thread, a moment later)."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the descriptor listdir itself used is gone
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    connected = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as lines:
            for line in list(lines)[1:]:
                fields = line.split()
                if int(fields[2].rsplit(":", 1)[1], 16) == port and fields[9] in inodes:
                    connected.add(fields[9])
    return connected


def busy(http: httpx.Client | httpx.AsyncClient) -> int:
    """Connections of an httpx client's pool that are in use (neither idle nor closed)."""
    pool = http._transport._pool  # type: ignore[union-attr]
    return sum(1 for c in pool.connections if not (c.is_idle() or c.is_closed()))


def one_connection_chat(ep: LocalEndpoint, cls: type = ChatDatabricksServing, **kw: Any) -> Any:
    llm = cls(endpoint="chat", host=ep.host, token=ep.token, **kw)
    llm.transport.max_connections = 1  # before first use: the pool and its semaphore get 1
    return llm


async def stream_then_cancel(llm: Any) -> list[str]:
    """Start ``llm.astream``, cancel the consuming task after the first chunk."""
    first = asyncio.Event()
    received: list[str] = []

    async def consume() -> None:
        async for chunk in llm.astream("hi"):
            received.append(chunk.text if hasattr(chunk, "text") else str(chunk))
            first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    return received


async def settled(check: Any, ticks: int = 1000) -> bool:
    """Whether ``check()`` becomes true within ``ticks`` event-loop iterations."""
    for _ in range(ticks):
        if check():
            return True
        await asyncio.sleep(0)
    return check()


@pytest.mark.parametrize("cls", [ChatDatabricksServing, ChatDatabricksResponses])
async def test_cancelling_astream_half_way_releases_the_connection(
    faulty: LocalEndpoint, cls: type
) -> None:
    llm = one_connection_chat(faulty, cls)
    for _ in range(3):
        queue(faulty, ANSWER)
        faulty.faults.add(Fault.stall(after=3))
        assert await stream_then_cancel(llm)
        pool = llm.transport._async_client()
        assert busy(pool.client) == 0  # at once: cancellation runs the transport's cleanup
        assert not pool.slots.locked()

    queue(faulty, "still served")
    reply = await asyncio.wait_for(llm.ainvoke("hi"), 5)  # a leaked connection would hang here
    assert reply.text == "still served"
    await llm.transport.aclose()


async def test_breaking_out_of_astream_releases_the_connection(faulty: LocalEndpoint) -> None:
    llm = one_connection_chat(faulty)
    queue(faulty, ANSWER)
    faulty.faults.add(Fault.stall(after=3))

    async for _ in llm.astream("hi"):
        break
    pool = llm.transport._async_client()

    # The abandoned generators are closed by asyncio's finalizer tasks: a few loop iterations.
    assert await settled(lambda: busy(pool.client) == 0 and not pool.slots.locked())
    queue(faulty, "next")
    assert (await asyncio.wait_for(llm.ainvoke("hi"), 5)).text == "next"
    await llm.transport.aclose()


def test_breaking_out_of_a_sync_stream_releases_the_connection_at_once(
    faulty: LocalEndpoint,
) -> None:
    llm = one_connection_chat(faulty, timeout=5)
    queue(faulty, ANSWER)
    faulty.faults.add(Fault.stall(after=3))

    for _ in llm.stream("hi"):
        break

    assert busy(llm.transport._sync_client()) == 0
    queue(faulty, "next")
    assert llm.invoke("hi").text == "next"
    llm.transport.close()


async def test_an_injected_one_connection_client_is_released_too(faulty: LocalEndpoint) -> None:
    limits = httpx.Limits(max_connections=1)
    async with httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(5, pool=2)) as http:
        llm = ChatDatabricksServing(
            endpoint="chat", host=faulty.host, token=faulty.token, http_async_client=http
        )
        queue(faulty, ANSWER)
        faulty.faults.add(Fault.stall(after=3))
        await stream_then_cancel(llm)
        assert busy(http) == 0
        queue(faulty, "next")
        assert (await llm.ainvoke("hi")).text == "next"  # a leak: PoolTimeout after 2 s


async def test_cancelling_an_agent_endpoint_stream_releases_the_connection(
    faulty: LocalEndpoint,
) -> None:
    agent = AgentEndpoint(chat=one_connection_chat(faulty, ChatDatabricksResponses))
    queue(faulty, ANSWER)
    faulty.faults.add(Fault.stall(after=4))
    await stream_then_cancel(agent)

    queue(faulty, "agent still served")
    reply = await asyncio.wait_for(agent.ainvoke("hi"), 5)
    assert reply.text == "agent still served"
    await agent.chat.transport.aclose()


async def test_many_cancelled_streams_leak_no_sockets(faulty: LocalEndpoint) -> None:
    before = client_sockets(faulty.port)
    llm = ChatDatabricksServing(endpoint="chat", host=faulty.host, token=faulty.token)
    for _ in range(20):
        queue(faulty, ANSWER)
        faulty.faults.add(Fault.stall(after=3))
        await stream_then_cancel(llm)
    assert len(client_sockets(faulty.port) - before) <= 1  # not one per cancelled stream
    await llm.transport.aclose()

    assert client_sockets(faulty.port) - before == set()  # nothing opened here is still open
