"""One benchmark process for one client; prints its figures as one JSON line.

``python _measure.py import <client>``: the time and RSS of importing the client's chat model
class in this fresh interpreter. ``python _measure.py run <client>``: client CPU per invoke, per
streamed chunk, and an ``abatch`` of many requests, against the server at ``DATABRICKS_HOST``.
``python _measure.py compare <client>,<client>,...``: the interleaved cross-check
(``_diagnose.compare``).

This module imports only the standard library at the top, so that the import figures count the
client's own imports and nothing of the harness.
"""

from __future__ import annotations

import faulthandler
import json
import os
import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _clients import Bench

# The class a user imports, for the import figures.
IMPORTS = {
    "serving": "from langchain_dbx_serving import ChatDatabricksServing",
    "responses": "from langchain_dbx_serving import ChatDatabricksResponses",
    "databricks": "from databricks_langchain import ChatDatabricks",
    "openai": "from langchain_openai import ChatOpenAI",
    "floor": (
        "import httpx\n"
        "from langchain_core.language_models import BaseChatModel\n"
        "from langchain_core.messages import AIMessage, AIMessageChunk\n"
        "from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult"
    ),
    "httpx": "import httpx",
}

TIMEOUT_S = 150

# Sizes, chosen so that the whole run of six clients stays well under five minutes on 2 cores.
# ``BENCH_QUICK=1`` (``run.py --quick``) shrinks them for a check that everything runs.
SIZES = {
    "invoke_warmup": 50,
    "invoke_rounds": 15,
    "invoke_per_round": 50,
    "stream_warmup": 1,
    "stream_rounds": 7,
    "batch_requests": 1000,
    # abatch of batch_requests at each of these concurrencies, each after a warm-up batch of
    # that many requests; 64 is the one the older figures (and the chart's first panels) use.
    "batch_concurrencies": [16, 64, 256],
    # the streaming abatch: this many streams of STREAM_CHUNKS chunks, this many at once
    "stream_batch_requests": 64,
    "stream_batch_concurrency": 64,
}
if os.environ.get("BENCH_QUICK") == "1":
    SIZES.update(
        invoke_warmup=10,
        invoke_rounds=3,
        invoke_per_round=10,
        stream_rounds=2,
        batch_requests=300,
        stream_batch_requests=16,
        stream_batch_concurrency=16,
    )


def _status_kib(field: str) -> int | None:
    """A ``VmRSS``/``VmHWM`` figure of this process, from ``/proc`` (Linux)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    """Reset ``VmHWM`` to the current RSS, so the next peak is that of what follows."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


def _mib(kib: int | None) -> float | None:
    return None if kib is None else round(kib / 1024, 1)


def measure_import(name: str) -> dict[str, object]:
    started = time.perf_counter()
    exec(IMPORTS[name], {})
    seconds = time.perf_counter() - started
    return {"import_s": seconds, "rss_after_import_mib": _mib(_status_kib("VmRSS"))}


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def _invoke_figures(bench: Bench, expected: str) -> dict[str, object]:
    for _ in range(SIZES["invoke_warmup"]):
        reply = bench.invoke()
    if reply != expected:
        raise AssertionError(f"unexpected reply: {reply!r}")
    cpu, wall = [], []
    per_round = SIZES["invoke_per_round"]
    for _ in range(SIZES["invoke_rounds"]):
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for _ in range(per_round):
            bench.invoke()
        cpu.append((time.process_time() - cpu0) / per_round)
        wall.append((time.perf_counter() - wall0) / per_round)
    return {
        "invoke_cpu_us": _median(cpu) * 1e6,
        "invoke_wall_us": _median(wall) * 1e6,
        "invoke_cpu_us_rounds": [round(c * 1e6, 1) for c in cpu],
    }


def _stream_figures(bench: Bench, chunks: int) -> dict[str, object]:
    for _ in range(SIZES["stream_warmup"]):
        count = bench.stream()
    if count != chunks:
        raise AssertionError(f"the stream gave {count} text chunks, not {chunks}")
    cpu, wall = [], []
    for _ in range(SIZES["stream_rounds"]):
        cpu0, wall0 = time.process_time(), time.perf_counter()
        bench.stream()
        cpu.append((time.process_time() - cpu0) / chunks)
        wall.append((time.perf_counter() - wall0) / chunks)
    return {"chunk_cpu_us": _median(cpu) * 1e6, "chunk_wall_us": _median(wall) * 1e6}


def _open_connections() -> int | None:
    """Connections held by the pools of every ``httpx.AsyncClient`` in this process.

    What an abatch costs depends on it (httpcore rescans every pooled connection per request),
    and it is not fixed by the pool's limits: idle connections expire after 5 s.
    """
    httpx = sys.modules.get("httpx")
    if httpx is None:
        return None
    import gc

    total = 0
    for obj in gc.get_objects():
        if isinstance(obj, httpx.AsyncClient):
            transports = [obj._transport, *obj._mounts.values()]
            for transport in transports:
                total += len(getattr(getattr(transport, "_pool", None), "_connections", ()))
    return total


_CONNECTS: list[int] = []  # TCP connections opened so far, once count_connects() ran


def count_connects() -> None:
    """Count the TCP connections httpcore's anyio backend opens (httpx's async clients use it;
    with httpx2's alias it is httpcore2's). A pool that keeps too few connections alive closes
    and reopens them under load: on a real endpoint each reopening is a TLS handshake."""
    try:
        from httpcore._backends.anyio import AnyIOBackend
    except ImportError:  # pragma: no cover - no httpcore in this process
        return
    original = AnyIOBackend.connect_tcp
    _CONNECTS.append(0)

    async def connect_tcp(self: object, *args: object, **kwargs: object) -> object:
        _CONNECTS[0] += 1
        return await original(self, *args, **kwargs)

    AnyIOBackend.connect_tcp = connect_tcp  # type: ignore[method-assign]


def _connects() -> int | None:
    return _CONNECTS[0] if _CONNECTS else None


async def _one_batch(bench: Bench, expected: str, concurrency: int) -> dict[str, float]:
    """One abatch at ``concurrency`` on a fresh client (``_fresh``), after a warm-up batch of
    ``concurrency`` requests: wall, CPU, peak RSS, the RSS it added per request allowed in
    flight (peak minus the RSS just before, over ``concurrency``), and the connections pooled
    before and after."""
    await bench.abatch(concurrency, concurrency)  # opens the connections this batch will use
    connections_before, connects_before = _open_connections(), _connects()
    rss_before = _status_kib("VmRSS")
    exact_peak = _reset_peak_rss()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    replies = await bench.abatch(SIZES["batch_requests"], concurrency)
    wall = time.perf_counter() - wall0
    cpu = time.process_time() - cpu0
    peak = _status_kib("VmHWM")
    if len(replies) != SIZES["batch_requests"] or any(r != expected for r in replies):
        raise AssertionError("the batch gave unexpected replies")
    per_request = None
    if exact_peak and peak is not None and rss_before is not None:
        per_request = max(peak - rss_before, 0) / concurrency
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "peak_rss_mib": _mib(peak),
        "kib_per_req": per_request,
        "connections_before": connections_before,
        "connections_after": _open_connections(),
        "connects": None if connects_before is None else _connects() - connects_before,
    }


async def _stream_batch(bench: Bench, chunks: int) -> dict[str, object]:
    n, concurrency = SIZES["stream_batch_requests"], SIZES["stream_batch_concurrency"]
    await bench.astream_batch(min(4, n), concurrency)
    rss_before = _status_kib("VmRSS")
    exact_peak = _reset_peak_rss()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    counts = await bench.astream_batch(n, concurrency)
    wall = time.perf_counter() - wall0
    cpu = time.process_time() - cpu0
    peak = _status_kib("VmHWM")
    if counts != [chunks] * n:
        raise AssertionError(f"the streams gave {sorted(set(counts))} text chunks, not {chunks}")
    return {
        "stream_batch_wall_s": wall,
        "stream_batch_cpu_s": cpu,
        "stream_batch_chunk_cpu_us": cpu / (n * chunks) * 1e6,
        "stream_batch_peak_rss_mib": _mib(peak),
        "stream_batch_kib_per_stream": (
            max(peak - rss_before, 0) / concurrency
            if exact_peak and peak is not None and rss_before is not None
            else None
        ),
    }


async def _heap_per_request(bench: Bench, expected: str, concurrency: int) -> float:
    """Python heap per request in flight, in KiB: the ``tracemalloc`` peak of an abatch of
    ``concurrency`` requests at ``concurrency``, above the heap before it, over ``concurrency``.

    RSS deltas understate this once a warm-up batch has grown the heap (the allocator reuses
    it); tracemalloc counts every allocation. Run after the timed batches: it slows Python.
    """
    import tracemalloc

    await bench.abatch(concurrency, concurrency)  # a fresh client: open its pool first
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        replies = await bench.abatch(concurrency, concurrency)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    if replies != [expected] * concurrency:
        raise AssertionError("the batch gave unexpected replies")
    return max(peak - before, 0) / concurrency / 1024


def _fresh(name: str) -> Bench:
    """A new client of ``name``: its connection pool starts empty.

    Each concurrency is measured on its own fresh client, after a warm-up at that concurrency,
    so the pool a step starts with is the one its own warm-up opened, not whatever the step
    before left (httpcore walks every pooled connection per request, so the pool decides the
    abatch figure). The previous client is closed (``_done``) and collected first, so its pool
    is neither counted nor kept alive. All steps share one event loop: langchain-openai caches
    its async httpx client across instances, and that client cannot cross loops (so for
    ChatOpenAI a new instance is not a new pool; the table's connection rows show it).
    """
    import gc

    import _clients

    gc.collect()
    return _clients.FACTORIES[name]()


async def _done(bench: Bench) -> None:
    """Close what ``bench`` opened, where its client says how."""
    closer = getattr(bench, "aclose", None)
    if closer is not None:
        await closer()


async def _batch_figures(name: str, expected: str, chunks: int) -> dict[str, object]:
    results: dict[str, object] = {"batch_peak_rss_exact": _reset_peak_rss()}
    for concurrency in SIZES["batch_concurrencies"]:
        bench = _fresh(name)
        figures = await _one_batch(bench, expected, concurrency)
        await _done(bench)
        for key, value in figures.items():
            results[f"batch{concurrency}_{key}"] = value
    # The names of the earlier single-batch figures (concurrency 64), kept for comparisons.
    if 64 in SIZES["batch_concurrencies"]:
        results["batch_wall_s"] = results["batch64_wall_s"]
        results["batch_cpu_s"] = results["batch64_cpu_s"]
        results["batch_peak_rss_mib"] = results["batch64_peak_rss_mib"]
    bench = _fresh(name)
    results.update(await _stream_batch(bench, chunks))
    await _done(bench)
    top = max(SIZES["batch_concurrencies"])
    bench = _fresh(name)
    results["heap_kib_per_request"] = await _heap_per_request(bench, expected, top)
    await _done(bench)
    return results


def measure_run(name: str) -> dict[str, object]:
    import asyncio

    import _clients
    import _server

    count_connects()
    bench = _clients.FACTORIES[name]()
    expected = _server.ANSWER
    results = _invoke_figures(bench, expected)
    results.update(_stream_figures(bench, _server.STREAM_CHUNKS))
    del bench
    results["rss_before_batch_mib"] = _mib(_status_kib("VmRSS"))
    results.update(asyncio.run(_batch_figures(name, expected, _server.STREAM_CHUNKS)))
    return results


def main(argv: list[str]) -> None:
    mode, name = argv[1], argv[2]
    # A client that hangs shows where, and the run goes on without it (run.py reports it).
    faulthandler.dump_traceback_later(TIMEOUT_S, exit=True)
    if mode == "import":
        figures = measure_import(name)
    elif mode == "compare":
        import _diagnose

        figures = {"clients": _diagnose.compare(tuple(name.split(",")))}
    else:
        figures = measure_run(name)
    sys.stdout.write(json.dumps({"client": name, "mode": mode, **figures}) + "\n")
    sys.stdout.flush()
    os._exit(0)  # skip interpreter teardown: it is not part of any figure


if __name__ == "__main__":
    main(sys.argv)
