"""Per-call CPU of our chat models against the floor: interleaved ratios, and cProfile tables.

Usage (any Python with this checkout and langchain-core importable; no peers needed)::

    python benchmarks/percall_profile.py compare            # ours vs the floor, interleaved
    python benchmarks/percall_profile.py compare --rounds 41
    python benchmarks/percall_profile.py ladder             # hotspots.py's ladder, this venv
    python benchmarks/percall_profile.py invoke             # cProfile of our invoke
    python benchmarks/percall_profile.py stream --client responses
    python benchmarks/percall_profile.py invoke --client floor

``compare`` loads ``serving``, ``responses`` and ``floor`` (``--clients``) into one process and
lets them take turns in a new random order each round: 40 invokes, 40 sequential ainvokes (one
event loop throughout) and one 2,000-chunk stream each. It prints the median CPU per invoke,
ainvoke and chunk (``time.process_time``) and the median of the per-round ratios to the floor,
with the 1-minute load average before and after. The profile modes print cProfile's functions
by own time (us per call or per chunk) and by cumulative time.
The benchmark server (``_server.py``) runs in a child process on 127.0.0.1, always stopped.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import os
import pstats
import random
import statistics
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from run import TOKEN, Server  # noqa: E402


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=("compare", "ladder", "invoke", "stream"))
    parser.add_argument("--client", default="serving")
    parser.add_argument("--clients", default="serving,responses,floor")
    parser.add_argument("--rounds", type=int, default=25)
    parser.add_argument("--calls", type=int, help="invokes (or streams) to profile")
    parser.add_argument("--top", type=int, default=40)
    return parser.parse_args()


def _round(step, calls: int) -> float:  # type: ignore[no-untyped-def]
    started = time.process_time()
    for _ in range(calls):
        step()
    return time.process_time() - started


def _ainvokes(loop, bench, calls: int):  # type: ignore[no-untyped-def]
    """A step running ``calls`` sequential ``ainvoke`` on ``loop`` (one event loop throughout,
    as an async application keeps)."""

    async def many() -> None:
        for _ in range(calls):
            await bench.model.ainvoke(PROMPT)

    from _clients import PROMPT

    return lambda: loop.run_until_complete(many())


def compare(names: list[str], rounds: int) -> str:
    import asyncio

    import _clients
    import _server

    benches = {name: _clients.FACTORIES[name]() for name in names}
    kinds = ("invoke", "ainvoke", "chunk")
    samples: dict[str, dict[str, list[float]]] = {n: {k: [] for k in kinds} for n in benches}
    loop = asyncio.new_event_loop()
    for bench in benches.values():
        for _ in range(50):
            bench.invoke()
        _ainvokes(loop, bench, 50)()
        bench.stream()
    gc.collect()
    gc.freeze()
    load_before = os.getloadavg()[0]
    order = list(benches)
    for _ in range(rounds):
        random.shuffle(order)
        for name in order:
            samples[name]["invoke"].append(_round(benches[name].invoke, 40) / 40 * 1e6)
            ainvoke = _ainvokes(loop, benches[name], 40)
            samples[name]["ainvoke"].append(_round(ainvoke, 1) / 40 * 1e6)
            per_chunk = _round(benches[name].stream, 1) / _server.STREAM_CHUNKS * 1e6
            samples[name]["chunk"].append(per_chunk)
    load_after = os.getloadavg()[0]
    for bench in benches.values():
        if hasattr(bench, "aclose"):
            loop.run_until_complete(bench.aclose())
    loop.close()
    lines = [
        f"interleaved, {rounds} rounds, load average {load_before:.2f} -> {load_after:.2f};"
        " ratio = median of per-round ratios to the floor"
    ]
    floor = samples.get("floor")
    for name, kinds in samples.items():
        parts = []
        for kind, unit in (("invoke", "invoke"), ("ainvoke", "ainvoke"), ("chunk", "chunk")):
            values = kinds[kind]
            text = f"{unit} {statistics.median(values):8.1f} us"
            if floor is not None:
                ratio = statistics.median(v / f for v, f in zip(values, floor[kind], strict=True))
                text += f" ({ratio:4.2f}x)"
            parts.append(text)
        lines.append(f"  {name:10s} " + "   ".join(parts))
    return "\n".join(lines)


def profile(what: str, client: str, calls: int | None, top: int) -> str:
    import _clients
    import _server

    bench = _clients.FACTORIES[client]()
    for _ in range(50):
        bench.invoke()
    bench.stream()
    if what == "invoke":
        calls = calls or 3000
        unit = calls
    else:
        calls = calls or 5
        unit = calls * _server.STREAM_CHUNKS
    step = bench.invoke if what == "invoke" else bench.stream
    profiler = cProfile.Profile()
    started = time.process_time()
    profiler.enable()
    for _ in range(calls):
        step()
    profiler.disable()
    spent = time.process_time() - started
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    per = "call" if what == "invoke" else "chunk"
    out.write(f"{client} {what}: {spent / unit * 1e6:.1f} us per {per} under cProfile\n")
    rows = []
    for (path, line, func), (_cc, ncalls, tottime, cumtime, _callers) in stats.stats.items():
        where = f"{Path(path).parent.name}/{Path(path).name}:{line}({func})"
        rows.append((tottime, cumtime, ncalls, where))
    for title, key in (("own time", 0), ("cumulative", 1)):
        out.write(f"-- top {top} by {title} (us per {per}; calls per {per}) --\n")
        for row in sorted(rows, key=lambda r: r[key], reverse=True)[:top]:
            out.write(
                f"{row[0] / unit * 1e6:8.2f} {row[1] / unit * 1e6:8.2f}"
                f" {row[2] / unit:7.2f}  {row[3]}\n"
            )
    return out.getvalue()


def main() -> None:
    arguments = _arguments()
    with Server() as server:
        os.environ["DATABRICKS_HOST"] = f"http://127.0.0.1:{server.port}"
        os.environ["DATABRICKS_TOKEN"] = TOKEN
        for key in list(os.environ):
            if key.startswith(("LANGCHAIN_", "LANGSMITH_", "MLFLOW_", "OPENAI_")):
                del os.environ[key]
        if arguments.what == "ladder":
            import _diagnose

            print(_diagnose.ladder())
        elif arguments.what == "compare":
            print(compare(arguments.clients.split(","), arguments.rounds))
        else:
            print(profile(arguments.what, arguments.client, arguments.calls, arguments.top))


if __name__ == "__main__":
    main()
