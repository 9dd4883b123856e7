"""Candidate HTTP stacks under our transport, side by side (#18 item 1).

Usage::

    python benchmarks/stacks.py                    # every stack, 3 interleaved rounds
    python benchmarks/stacks.py --rounds 5 --stacks httpx-ka64,httpx-ka20
    python benchmarks/stacks.py --quick            # small sizes: does everything run?

Each figure is taken with our real ``ChatDatabricksServing`` (its ``Transport``, deadline
backend, semaphore, retries and proxy checks), with one HTTP stack selected in a fresh process
before the package is imported:

- ``httpx-8x8`` (the default since 2026-12-02) / ``httpx-4x16``: httpx 0.28, each event loop's
  64 connections split over 8 (4) AsyncClients of 8 (16), all kept alive (``_pools.shards``);
- ``httpx-ka64``: httpx 0.28 with one pool per loop, as until 2026-12-02 (64 connections, 64
  kept alive);
- ``httpx-ka32`` / ``httpx-ka20`` / ``httpx-ka8``: the same with fewer idle connections kept
  alive (20 is httpx's own default, the one ChatDatabricks and ChatOpenAI run with);
- ``httpx2-ka64`` / ``httpx2-ka20``: httpx2 / httpcore2 (the fork the OpenAI client accepts) in
  place of httpx / httpcore, through ``httpx2.alias_httpx()`` (our code runs unchanged on
  it), one pool per loop;
- ``aiohttp``: async clients are httpx-aiohttp's ``HttpxAiohttpClient`` (an ``httpx.AsyncClient``
  whose transport is aiohttp; one per loop; the sync path stays on httpx, aiohttp has none).

Per stack and round: CPU per sync ``invoke``, per sequential ``ainvoke``, per streamed chunk,
and ``abatch`` of many prompts at 16 / 64 / 256 (each on a fresh model and event loop, after
a warm-up at that concurrency: wall, CPU, connections pooled, peak RSS), and the Python heap
per request in flight (tracemalloc, abatch of 256 at 256); then an abatch at 64 against an
endpoint that answers in 0.1-0.3 s (connections stay busy, as against a real model): its wall,
CPU per request and the TCP connections the pool opened (a pool that reopens connections
pays a TLS handshake for each on a real endpoint, which plain-HTTP loopback does not show).
Stacks take turns in a new random order each round, each round in a fresh process per stack,
so drifting load hits them alike; the table shows the median over rounds with its ratio to
``httpx-ka64`` and the 1-minute load average seen over the run. Figures are client CPU
(``time.process_time``); the server runs in
its own process. Writes ``benchmarks/stacks.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

STACKS = [
    "httpx-8x8",
    "httpx-4x16",
    "httpx-ka64",
    "httpx-ka32",
    "httpx-ka20",
    "httpx-ka8",
    "httpx2-ka64",
    "httpx2-ka20",
    "aiohttp",
]
REFERENCE = "httpx-ka64"

# key, row title, unit, format
FIGURES = [
    ("invoke_cpu_us", "CPU per sync invoke", "us", "{:,.0f}"),
    ("ainvoke_cpu_us", "CPU per async invoke", "us", "{:,.0f}"),
    ("chunk_cpu_us", "CPU per streamed chunk", "us", "{:,.1f}"),
    ("batch16_wall_s", "abatch @ 16: wall", "s", "{:,.2f}"),
    ("batch64_wall_s", "abatch @ 64: wall", "s", "{:,.2f}"),
    ("batch256_wall_s", "abatch @ 256: wall", "s", "{:,.2f}"),
    ("batch16_cpu_s", "abatch @ 16: CPU", "s", "{:,.2f}"),
    ("batch64_cpu_s", "abatch @ 64: CPU", "s", "{:,.2f}"),
    ("batch256_cpu_s", "abatch @ 256: CPU", "s", "{:,.2f}"),
    ("batch64_connections_after", "connections pooled after abatch @ 64", "", "{:,.0f}"),
    ("batch64_connects", "TCP connections opened during abatch @ 64", "", "{:,.0f}"),
    ("batch256_connects", "TCP connections opened during abatch @ 256", "", "{:,.0f}"),
    ("slow64_wall_s", "abatch @ 64, endpoint answering in 0.1-0.3 s: wall", "s", "{:,.2f}"),
    ("slow64_cpu_ms_per_request", "same: CPU per request", "ms", "{:,.2f}"),
    ("slow64_connects", "same: TCP connections opened", "", "{:,.0f}"),
    ("batch256_peak_rss_mib", "peak RSS during abatch @ 256", "MiB", "{:,.0f}"),
    ("heap_kib_per_request", "Python heap per request in flight @ 256", "KiB", "{:,.1f}"),
]

SIZES = {
    "invoke_warmup": 30,
    "invoke_rounds": 5,
    "invoke_per_round": 40,
    "streams": 3,
    "slow_requests": 640,
}
if os.environ.get("BENCH_QUICK") == "1":
    SIZES.update(invoke_warmup=5, invoke_rounds=2, invoke_per_round=10, streams=1)
    SIZES.update(slow_requests=128)
SLOW_CONCURRENCY = 64


# -- the child: one stack, one round ------------------------------------------------------------
def select(stack: str) -> None:
    """Make ``stack`` the one our transport builds its clients with. Call before importing
    langchain_dbx_serving (httpx2's alias must come before any ``import httpx``)."""
    if stack.startswith("httpx2"):
        import httpx2

        httpx2.alias_httpx()  # ``import httpx`` / ``httpcore`` now give httpx2 / httpcore2
    import httpx

    if stack == "aiohttp":
        from httpx_aiohttp import HttpxAiohttpClient

        # A subclass: every isinstance check against httpx.AsyncClient still holds.
        httpx.AsyncClient = HttpxAiohttpClient  # type: ignore[misc]
    from langchain_dbx_serving.transport import _pools
    from langchain_dbx_serving.transport.client import Transport

    if "x" in stack.rsplit("-", 1)[-1]:  # httpx-8x8: the pool split in small clients
        _pools.SHARD_SIZE = int(stack.rsplit("x", 1)[1])
        return
    # One pool of max_connections, keeping this many alive (as the transport did until now).
    keepalive = int(stack.rsplit("-ka", 1)[1]) if "-ka" in stack else 64

    def one_pool(max_connections: int) -> list[httpx.Limits]:
        return [
            httpx.Limits(
                max_connections=max_connections,
                max_keepalive_connections=min(keepalive, max_connections),
            )
        ]

    def limits(self: Transport) -> httpx.Limits:
        return one_pool(self.max_connections)[0]

    _pools.shards = one_pool  # type: ignore[assignment]
    Transport._limits = limits  # type: ignore[method-assign]


def _median_rate(run: Any, rounds: int, per_round: int) -> float:
    samples = []
    for _ in range(rounds):
        cpu0 = time.process_time()
        run(per_round)
        samples.append((time.process_time() - cpu0) / per_round)
    return statistics.median(samples) * 1e6


def child(stack: str) -> dict[str, Any]:
    import asyncio

    select(stack)
    import _clients
    import _measure
    import _server

    _measure.count_connects()

    expected, chunks = _server.ANSWER, _server.STREAM_CHUNKS
    bench = _clients.FACTORIES["serving"]()
    model = bench.model
    figures: dict[str, Any] = {"stack": stack, "load": os.getloadavg()[0]}

    def invokes(n: int) -> None:
        for _ in range(n):
            assert bench.invoke() == expected

    invokes(SIZES["invoke_warmup"])
    figures["invoke_cpu_us"] = _median_rate(
        invokes, SIZES["invoke_rounds"], SIZES["invoke_per_round"]
    )

    async def ainvokes() -> float:
        async def some(n: int) -> None:
            for _ in range(n):
                assert (await model.ainvoke(_clients.PROMPT)).text == expected

        await some(SIZES["invoke_warmup"])
        samples = []
        for _ in range(SIZES["invoke_rounds"]):
            cpu0 = time.process_time()
            await some(SIZES["invoke_per_round"])
            samples.append((time.process_time() - cpu0) / SIZES["invoke_per_round"])
        return statistics.median(samples) * 1e6

    figures["ainvoke_cpu_us"] = asyncio.run(ainvokes())
    # Whether the deadline backend could sit under the async client's pool (set when the
    # transport built that client, just now).
    figures["deadline_at_socket"] = bool(model.transport._probed)

    def streams(n: int) -> None:
        for _ in range(n):
            assert bench.stream() == chunks

    streams(1)
    figures["chunk_cpu_us"] = _median_rate(streams, SIZES["streams"], 1) / chunks
    bench = model = None  # the batches run on fresh models
    figures.update(_batches(_measure, expected))
    figures.update(asyncio.run(_slow_batch(_measure, expected)))
    return figures


async def _slow_batch(measure: Any, expected: str) -> dict[str, Any]:
    """An abatch against the endpoint that answers in 0.1-0.3 s: connections stay busy, as with a
    real model, so the figure that matters is how many connections the pool reopens."""
    import _clients

    from langchain_dbx_serving import ChatDatabricksServing

    model = ChatDatabricksServing(endpoint=_clients.ENDPOINT + "-slow")
    bench, n = _clients.LangChainBench(model), SIZES["slow_requests"]
    await bench.abatch(SLOW_CONCURRENCY, SLOW_CONCURRENCY)
    connects, cpu0, wall0 = measure._connects(), time.process_time(), time.perf_counter()
    replies = await bench.abatch(n, SLOW_CONCURRENCY)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    assert replies == [expected] * n
    return {
        "slow64_wall_s": wall,
        "slow64_cpu_ms_per_request": cpu / n * 1e3,
        "slow64_connects": None if connects is None else measure._connects() - connects,
    }


def _batches(measure: Any, expected: str) -> dict[str, Any]:
    import asyncio

    results: dict[str, Any] = {}
    for concurrency in measure.SIZES["batch_concurrencies"]:
        measure._reset_peak_rss()
        one = asyncio.run(measure._one_batch(measure._fresh("serving"), expected, concurrency))
        for key, value in one.items():
            results[f"batch{concurrency}_{key}"] = value
    top = max(measure.SIZES["batch_concurrencies"])
    results["heap_kib_per_request"] = asyncio.run(
        measure._heap_per_request(measure._fresh("serving"), expected, top)
    )
    return results


# -- the parent: rounds of stacks in turns --------------------------------------------------------
def _run_child(stack: str, env: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", stack],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        raise RuntimeError(f"{stack} failed:\n{done.stderr[-3000:]}")
    return json.loads(lines[-1])


def _cell(values: list[float], reference: float | None, fmt: str) -> str:
    if not values:
        return "n/a"
    value = statistics.median(values)
    text = fmt.format(value)
    if reference:
        text += f" ({value / reference:.2f}x)"
    return text


def table(samples: dict[str, list[dict[str, Any]]]) -> str:
    names = [name for name in STACKS if samples.get(name)]

    def values(name: str, key: str) -> list[float]:
        return [s[key] for s in samples[name] if s.get(key) is not None]

    lines = [
        "| figure (median of rounds) | " + " | ".join(names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    for key, title, unit, fmt in FIGURES:
        ref = values(REFERENCE, key) if REFERENCE in names else []
        reference = statistics.median(ref) if ref else None
        cells = [_cell(values(name, key), reference, fmt) for name in names]
        label = f"{title} ({unit})" if unit else title
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    at_socket = [
        "yes" if all(s.get("deadline_at_socket") for s in samples[n]) else "**no**" for n in names
    ]
    lines.append("| deadline enforced at the socket (async) | " + " | ".join(at_socket) + " |")
    loads = [
        f"{min(s['load'] for s in samples[n]):.1f}-{max(s['load'] for s in samples[n]):.1f}"
        for n in names
    ]
    lines.append("| 1-min load average at its rounds | " + " | ".join(loads) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stacks", default=",".join(STACKS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="small sizes (BENCH_QUICK=1)")
    parser.add_argument("--output", type=Path, default=BENCH / "stacks.json")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        figures = child(arguments.child)
        sys.stdout.write(json.dumps(figures) + "\n")
        sys.stdout.flush()
        os._exit(0)
    from run import Server, _environment, _in_venv, _load, _versions, ensure_venv

    if not _in_venv():
        python = ensure_venv()
        os.execv(str(python), [str(python), str(Path(__file__).resolve()), *sys.argv[1:]])
    if arguments.quick:
        os.environ["BENCH_QUICK"] = "1"
    stacks = [s.strip() for s in arguments.stacks.split(",") if s.strip()]
    unknown = sorted(set(stacks) - set(STACKS))
    if unknown:
        parser.error(f"unknown stacks: {', '.join(unknown)} (known: {', '.join(STACKS)})")
    samples: dict[str, list[dict[str, Any]]] = {name: [] for name in stacks}
    started, load_before = time.perf_counter(), _load()
    with Server() as server:
        env = _environment(server.port)
        for round_ in range(arguments.rounds):
            order = random.sample(stacks, len(stacks))
            print(f"round {round_ + 1}/{arguments.rounds}: {', '.join(order)}", flush=True)
            for stack in order:
                try:
                    samples[stack].append(_run_child(stack, env))
                except (RuntimeError, subprocess.TimeoutExpired) as exc:
                    print(f"  {stack} failed: {exc}", flush=True)
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "seconds": round(time.perf_counter() - started, 1),
        "load_average_before": load_before,
        "load_average_after": _load(),
        "rounds": arguments.rounds,
        "versions": {
            **_versions(),
            **{name: _version(name) for name in ("httpx2", "httpcore2", "httpx-aiohttp")},
            "aiohttp": _version("aiohttp"),
        },
    }
    arguments.output.write_text(json.dumps({"meta": meta, "samples": samples}, indent=2) + "\n")
    print()
    print(table(samples))
    print()
    print(f"versions: {json.dumps(meta['versions'])}")
    print(f"load average before/after: {meta['load_average_before']} / {_load()}")
    print(f"took {meta['seconds']} s; wrote {arguments.output}")


def _version(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


if __name__ == "__main__":
    main()
