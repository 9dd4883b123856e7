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
SIZES = {
    "invoke_warmup": 50,
    "invoke_rounds": 15,
    "invoke_per_round": 50,
    "stream_warmup": 1,
    "stream_rounds": 7,
    "batch_warmup": 64,
    "batch_requests": 1000,
    "batch_concurrency": 64,
}


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


async def _batch_figures(bench: Bench, expected: str) -> dict[str, object]:
    concurrency = SIZES["batch_concurrency"]
    await bench.abatch(SIZES["batch_warmup"], concurrency)
    exact_peak = _reset_peak_rss()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    replies = await bench.abatch(SIZES["batch_requests"], concurrency)
    wall = time.perf_counter() - wall0
    cpu = time.process_time() - cpu0
    if len(replies) != SIZES["batch_requests"] or any(r != expected for r in replies):
        raise AssertionError("the batch gave unexpected replies")
    return {
        "batch_wall_s": wall,
        "batch_cpu_s": cpu,
        "batch_peak_rss_mib": _mib(_status_kib("VmHWM")),
        "batch_peak_rss_exact": exact_peak,
    }


def measure_run(name: str) -> dict[str, object]:
    import asyncio

    import _clients
    import _server

    bench = _clients.FACTORIES[name]()
    expected = _server.ANSWER
    results = _invoke_figures(bench, expected)
    results.update(_stream_figures(bench, _server.STREAM_CHUNKS))
    results["rss_before_batch_mib"] = _mib(_status_kib("VmRSS"))
    results.update(asyncio.run(_batch_figures(bench, expected)))
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
