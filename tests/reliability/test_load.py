"""Load and soak: many requests finish without errors, leaked sockets or growing memory.

The endpoint runs in a subprocess (the package's CLI), so that it neither competes with the
client for the GIL nor counts in the client's file descriptors and memory. Measured on a
2-core machine: 2,000 concurrent requests take ~14 s, 10,000 sequential ones ~40 s (see
``docs/reliability.md``). Run with ``-o log_cli=true --log-cli-level=INFO`` to see the numbers.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import langchain_dbx_serving
from langchain_dbx_serving import ChatDatabricksServing
from langchain_dbx_serving.testing import Fault, FaultPlan, LocalEndpoint, Reply

log = logging.getLogger(__name__)
TOKEN = "load-test-token-0123456789"
CONCURRENT = 2_000
POOL = 64
SOAK = 10_000
MEMORY_MARGIN = 8_000_000  # bytes of RSS growth allowed after warm-up: < 1 KB per request


def open_fds() -> list[str]:
    """Targets of this process's file descriptors (``socket:[...]`` for sockets)."""
    targets = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the descriptor listdir itself used is gone
            targets.append(os.readlink(f"/proc/self/fd/{fd}"))
    return targets


def leaked(before: list[str], after: list[str]) -> set[str]:
    """What was opened since ``before`` and is still open (sockets are ``socket:[inode]``, a
    unique name; fds that earlier tests' connections close meanwhile do not count)."""
    return set(after) - set(before)


def sockets(fds: list[str]) -> int:
    return sum(1 for target in fds if target.startswith("socket:"))


def rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.fixture(scope="module")
def remote() -> Iterator[str]:
    """The host of an echo endpoint served by ``python -m ...testing.endpoint``."""
    root = str(Path(langchain_dbx_serving.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "langchain_dbx_serving.testing.endpoint"]
    process = subprocess.Popen(
        [*command, "--port", "0", "--token", TOKEN],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()  # "Local Databricks serving endpoint: http://..."
        assert "http://127.0.0.1:" in first, first
        yield first.strip().rsplit(" ", 1)[-1]
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()  # type: ignore[union-attr]


async def test_2000_concurrent_requests_through_a_64_connection_pool(remote: str) -> None:
    before = open_fds()
    llm = ChatDatabricksServing(endpoint="echo", host=remote, token=TOKEN)
    assert llm.transport.max_connections == POOL

    start = time.perf_counter()
    results = await asyncio.gather(
        *(llm.ainvoke(f"request {i}") for i in range(CONCURRENT)), return_exceptions=True
    )
    elapsed = time.perf_counter() - start
    during = open_fds()
    await llm.transport.aclose()
    after = open_fds()

    errors = [r for r in results if isinstance(r, BaseException)]
    assert errors == []
    assert [r.text for r in results] == [f"request {i}" for i in range(CONCURRENT)]
    assert sockets(during) - sockets(before) <= POOL
    assert leaked(before, after) == set()
    log.info(
        "%d concurrent requests: %.1f s, %d sockets open at the end, fds %d -> %d",
        CONCURRENT,
        elapsed,
        sockets(during) - sockets(before),
        len(before),
        len(after),
    )


def test_10000_sequential_requests_keep_memory_flat(remote: str) -> None:
    before = open_fds()
    llm = ChatDatabricksServing(endpoint="echo", host=remote, token=TOKEN)
    samples: list[int] = []

    start = time.perf_counter()
    for i in range(SOAK):
        assert llm.invoke("a steady request").text == "a steady request"
        if (i + 1) % 1000 == 0:
            gc.collect()
            samples.append(rss())
    elapsed = time.perf_counter() - start
    llm.transport.close()

    growth = max(samples[1:]) - samples[0]  # after 1,000 requests of warm-up
    log.info(
        "%d sequential requests: %.1f s (%.2f ms each); RSS %s MB; growth %.2f MB",
        SOAK,
        elapsed,
        elapsed / SOAK * 1000,
        [round(s / 1e6, 1) for s in samples],
        growth / 1e6,
    )
    assert growth < MEMORY_MARGIN, f"memory grew {growth / 1e6:.1f} MB over the soak"
    assert leaked(before, open_fds()) == set()


async def test_concurrent_requests_under_a_steady_rate_of_faults_all_succeed() -> None:
    # One request in ten gets a 503, one in twenty a reset: retries absorb every one of them.
    # Arrival order is not deterministic, so one call may draw several faults in a row:
    # 8 retries make a failure odds of 0.15**9 per call.
    entries: list[object] = [None] * 20
    entries[3] = entries[13] = Reply.error(503, "TEMPORARILY_UNAVAILABLE", "busy")
    entries[7] = Fault.reset()
    with LocalEndpoint("echo", faults=FaultPlan(entries, repeat=True)) as ep:
        llm = ChatDatabricksServing(endpoint="echo", host=ep.host, token=ep.token, max_retries=8)
        results = await asyncio.gather(*(llm.ainvoke(f"r{i}") for i in range(300)))
        await llm.transport.aclose()

    assert [r.text for r in results] == [f"r{i}" for i in range(300)]
    assert ep.faults.applied >= 300 * 3 // 20
    assert len(ep.requests) == 300 + ep.faults.applied
