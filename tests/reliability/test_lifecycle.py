"""Clean lifecycles: every class closes its connections (``close``/``aclose``/``with``), an
event loop's async client is closed when ``asyncio.run`` ends, and a program using the package
runs clean under ``python -X dev -W error::ResourceWarning``.
"""

from __future__ import annotations

import asyncio
import gc
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest

from langchain_dbx_serving import (
    AgentEndpoint,
    ChatDatabricksResponses,
    ChatDatabricksServing,
    DatabricksServingEmbeddings,
    EndpointRouter,
    Route,
)
from langchain_dbx_serving.testing import EchoBackend, HashEmbeddingBackend, LocalEndpoint
from tests.reliability.test_cancel import client_sockets


@pytest.fixture(scope="module")
def ep() -> Iterator[LocalEndpoint]:
    with LocalEndpoint({"echo": EchoBackend(), "vectors": HashEmbeddingBackend(8)}) as endpoint:
        yield endpoint


def makers(ep: LocalEndpoint) -> dict[str, tuple[Any, Any]]:
    """Each class, and a call that opens a connection."""
    auth = {"host": ep.host, "token": ep.token}
    chat = ChatDatabricksServing(endpoint="echo", **auth)
    return {
        "chat": (chat, lambda m: m.invoke("hi")),
        "responses": (
            ChatDatabricksResponses(endpoint="echo", **auth),
            lambda m: m.invoke("hi"),
        ),
        "agent": (AgentEndpoint("echo", **auth), lambda m: m.invoke("hi")),
        "embeddings": (
            DatabricksServingEmbeddings(endpoint="vectors", **auth),
            lambda m: m.embed_query("hi"),
        ),
        "router": (
            EndpointRouter(routes=[Route(name="only", runnable=chat)], select=lambda _: "only"),
            lambda m: m.invoke("hi"),
        ),
    }


NAMES = ["chat", "responses", "agent", "embeddings", "router"]


@pytest.mark.parametrize("name", NAMES)
def test_with_closes_the_connections(ep: LocalEndpoint, name: str) -> None:
    model, use = makers(ep)[name]
    with model as opened:
        use(opened)
        assert client_sockets(ep.port), "the call should have left a pooled connection"
    assert client_sockets(ep.port) == set()
    use(model)  # still usable after close: it reconnects
    model.close()
    assert client_sockets(ep.port) == set()


@pytest.mark.parametrize("name", NAMES)
def test_async_with_closes_the_loops_connections(ep: LocalEndpoint, name: str) -> None:
    model, _ = makers(ep)[name]

    async def main() -> set[str]:
        async with model as opened:
            if name == "embeddings":
                await opened.aembed_query("hi")
            else:
                await opened.ainvoke("hi")
            assert client_sockets(ep.port)
        return client_sockets(ep.port)

    assert asyncio.run(main()) == set()


def test_each_asyncio_run_closes_its_client_when_its_loop_ends(ep: LocalEndpoint) -> None:
    model = ChatDatabricksServing(endpoint="echo", host=ep.host, token=ep.token)
    gc.disable()  # nothing may rely on the garbage collector
    try:
        for _ in range(20):
            assert asyncio.run(model.ainvoke("hi")).text
            assert client_sockets(ep.port) == set()
    finally:
        gc.enable()


SCRIPT = """
import asyncio
from langchain_dbx_serving import AgentEndpoint, ChatDatabricksServing
from langchain_dbx_serving.testing import EchoBackend, LocalEndpoint

with LocalEndpoint({"echo": EchoBackend()}) as ep:
    model = ChatDatabricksServing(endpoint="echo", host=ep.host, token=ep.token)
    for _ in range(3):
        asyncio.run(model.ainvoke("hi"))
    list(model.stream("hi"))
    model.invoke("hi")
    model.close()
    with AgentEndpoint("echo", host=ep.host, token=ep.token) as agent:
        agent.invoke("hi")
        list(agent.stream("hi"))

    async def both():
        async with ChatDatabricksServing(endpoint="echo", host=ep.host, token=ep.token) as m:
            await m.ainvoke("hi")
            [c async for c in m.astream("hi")]
    asyncio.run(both())
print("clean")
"""


def test_a_program_runs_clean_under_dev_mode_with_resource_warnings_as_errors() -> None:
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    done = subprocess.run(
        [
            sys.executable,
            "-X",
            "dev",
            "-W",
            "error::ResourceWarning",
            "-c",
            textwrap.dedent(SCRIPT),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "clean"
    assert "ResourceWarning" not in done.stderr and "unclosed" not in done.stderr, done.stderr
