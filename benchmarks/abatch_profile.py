"""Why one client's ``abatch`` is faster than another's: cProfile and connection counts.

Usage::

    python benchmarks/abatch_profile.py                          # serving and databricks, @ 64
    python benchmarks/abatch_profile.py --clients serving,floor,httpx --concurrency 256
    python benchmarks/abatch_profile.py --clients serving --stack httpx-ka20  # see stacks.py

For each client, in a fresh process of its own against the benchmark server: a warm-up batch,
then an ``abatch`` of ``--requests`` at ``--concurrency`` under cProfile. Prints client CPU and
wall (profiled, so slower than ``run.py``'s figures; compare them with each other), how many TCP
connections the batch opened (connection reuse), the pool's limits, and the functions with the
most own time plus a few chosen ones (httpcore's pool scan, the event loop, our transport).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from run import Server, _environment, _in_venv, ensure_venv  # noqa: E402

# Functions whose cumulative time tells the story of a batch (substring of "file:line(name)").
WATCHED = (
    "_assign_requests_to_connections",
    "AsyncConnectionPool.handle_async_request",
    "handle_async_request",
    "connect_tcp",
    "_run_once",
    "select",
    "transport/client.py",
    "_deadline.py",
    "acquire",
)


def _count_connects() -> dict[str, int]:
    """Count TCP connections opened through httpcore's anyio backend (all clients use it)."""
    from httpcore._backends.anyio import AnyIOBackend

    counter = {"connects": 0}
    original = AnyIOBackend.connect_tcp

    async def connect_tcp(self: Any, *args: Any, **kwargs: Any) -> Any:
        counter["connects"] += 1
        return await original(self, *args, **kwargs)

    AnyIOBackend.connect_tcp = connect_tcp  # type: ignore[method-assign]
    return counter


def _limits_of(bench: Any) -> str:
    """The httpx pool limits of the client's AsyncClient, found after the warm-up."""
    import gc

    import httpx

    pools = []
    for obj in gc.get_objects():
        if isinstance(obj, httpx.AsyncClient):
            pool = getattr(obj._transport, "_pool", None)
            if pool is not None and (pool._requests or pool._connections):
                pools.append(
                    f"max_connections={pool._max_connections} "
                    f"max_keepalive={pool._max_keepalive_connections} "
                    f"open={len(pool._connections)}"
                )
    return "; ".join(pools) or "?"


def child(
    name: str, requests: int, concurrency: int, top: int, stack: str | None = None
) -> dict[str, Any]:
    if stack:  # ours on another HTTP stack (see stacks.py), chosen before anything imports httpx
        import stacks

        stacks.select(stack)
    import _clients
    import _server

    counter = _count_connects()
    bench = _clients.FACTORIES[name]()

    async def batch() -> dict[str, Any]:
        await bench.abatch(concurrency, concurrency)
        limits = _limits_of(bench)
        connects_before = counter["connects"]
        profiler = cProfile.Profile()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        profiler.enable()
        replies = await bench.abatch(requests, concurrency)
        profiler.disable()
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        assert replies == [_server.ANSWER] * requests
        return {
            "cpu_s": cpu,
            "wall_s": wall,
            "connects": counter["connects"] - connects_before,
            "limits": limits,
            "profile": profiler,
        }

    result = asyncio.run(batch())
    stats = pstats.Stats(result.pop("profile"))
    total = stats.total_tt  # type: ignore[attr-defined]
    rows = []
    for (file, line, func), (_cc, calls, tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        label = f"{file.rsplit('site-packages/', 1)[-1]}:{line}({func})"
        rows.append((label, calls, tt, ct))
    by_own = sorted(rows, key=lambda r: -r[2])[:top]
    watched = sorted(
        (r for r in rows if any(w in r[0] for w in WATCHED) and r[3] > 0.01 * total),
        key=lambda r: -r[3],
    )[:top]

    def fmt(r: tuple[str, int, float, float]) -> dict[str, Any]:
        return {
            "function": r[0],
            "calls": r[1],
            "own_pct": round(100 * r[2] / total, 1),
            "cum_pct": round(100 * r[3] / total, 1),
        }

    result["profiled_s"] = total
    result["top_own"] = [fmt(r) for r in by_own]
    result["watched_cum"] = [fmt(r) for r in watched]
    return result


def _print(name: str, result: dict[str, Any]) -> None:
    print(f"\n== {name}: abatch under cProfile")
    print(
        f"   CPU {result['cpu_s']:.2f} s, wall {result['wall_s']:.2f} s, "
        f"TCP connections opened during the batch: {result['connects']}; pool: {result['limits']}"
    )
    print("   most own time:                                          calls   own%   cum%")
    for r in result["top_own"]:
        print(
            f"   {r['function'][-52:]:52} {r['calls']:>9} {r['own_pct']:6.1f} {r['cum_pct']:6.1f}"
        )
    print("   chosen functions, by cumulative time:")
    for r in result["watched_cum"]:
        print(
            f"   {r['function'][-52:]:52} {r['calls']:>9} {r['own_pct']:6.1f} {r['cum_pct']:6.1f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", default="serving,databricks")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument(
        "--stack",
        default="",
        help="run the clients on this HTTP stack of stacks.py (e.g. httpx-ka20, httpx2-ka64)",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        result = child(
            arguments.child,
            arguments.requests,
            arguments.concurrency,
            arguments.top,
            arguments.stack or None,
        )
        print(json.dumps(result))
        return
    if not _in_venv():
        python = ensure_venv()
        os.execv(str(python), [str(python), str(Path(__file__).resolve()), *sys.argv[1:]])
    print(f"load average before: {os.getloadavg()}")
    with Server() as server:
        env = _environment(server.port)
        for name in arguments.clients.split(","):
            command = [sys.executable, __file__, "--child", name, f"--top={arguments.top}"]
            command += [f"--stack={arguments.stack}"] if arguments.stack else []
            command += [
                f"--requests={arguments.requests}",
                f"--concurrency={arguments.concurrency}",
            ]
            done = subprocess.run(
                command,
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
            )
            lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
            if done.returncode or not lines:
                print(f"{name} failed:\n{done.stderr[-2000:]}")
                continue
            _print(name, json.loads(lines[-1]))
    print(f"\nload average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
