"""Profile one client's hot path against the benchmark server, with pyinstrument.

Usage::

    python benchmarks/hotspots.py invoke                    # ChatDatabricksServing.invoke
    python benchmarks/hotspots.py stream --client responses
    python benchmarks/hotspots.py abatch --client floor
    python benchmarks/hotspots.py ladder    # ChatDatabricksServing layer by layer, no profiler
    python benchmarks/hotspots.py compare   # CPU ratios to the floor and the peers, interleaved

Runs in ``benchmarks/.venv`` (created like ``run.py`` does) against the benchmark server. The
profiles warm up, then profile many calls and print pyinstrument's call tree and the self time
summed by layer; ``--html`` also writes ``benchmarks/profiles/<...>.html``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from run import TOKEN, Server, _in_venv, ensure_venv  # noqa: E402

CALLS = {"invoke": 2000, "stream": 5, "abatch": 1000, "ladder": 0, "compare": 0}


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=sorted(CALLS))
    parser.add_argument("--client", default="serving")
    parser.add_argument("--calls", type=int, help="calls to profile (default: per kind)")
    parser.add_argument("--interval", type=float, default=0.0002, help="sampling interval (s)")
    parser.add_argument("--html", action="store_true", help="also write an HTML report")
    parser.add_argument("--all", action="store_true", help="show library frames in the tree")
    parser.add_argument("--flat", action="store_true", help="functions by self time, not a tree")
    return parser.parse_args()


def _profile(arguments: argparse.Namespace) -> None:
    import _clients
    from pyinstrument import Profiler
    from pyinstrument.renderers import ConsoleRenderer

    if arguments.what in ("ladder", "compare"):
        import _diagnose

        if arguments.what == "ladder":
            print(_diagnose.ladder())
        else:
            print(_diagnose.compare_text(_diagnose.compare()))
        return
    bench = _clients.FACTORIES[arguments.client]()
    calls = arguments.calls or CALLS[arguments.what]
    profiler = Profiler(interval=arguments.interval)
    if arguments.what == "invoke":
        for _ in range(50):
            bench.invoke()
        with profiler:
            for _ in range(calls):
                bench.invoke()
    elif arguments.what == "stream":
        bench.stream()
        with profiler:
            for _ in range(calls):
                bench.stream()
    else:

        async def batch() -> None:
            await bench.abatch(64, 64)
            profiler.start()
            await bench.abatch(calls, 64)
            profiler.stop()

        asyncio.run(batch())
    renderer = ConsoleRenderer(
        unicode=True,
        show_all=arguments.all,
        flat=arguments.flat,
        time="percent_of_total",
    )
    print(profiler.output(renderer))
    assert profiler.last_session is not None
    print(layers(profiler.last_session.root_frame()))
    if arguments.html:
        out = BENCH / "profiles" / f"{arguments.client}-{arguments.what}.html"
        out.parent.mkdir(exist_ok=True)
        out.write_text(profiler.output_html())
        print(f"wrote {out}")


_LIBRARIES = (
    "langchain_openai",
    "databricks_langchain",
    "databricks_openai",
    "openai",
    "httpx",
    "httpcore",
    "h11",
    "anyio",
    "pydantic_core",
    "pydantic",
    "databricks/sdk",
)


def _layer(path: str) -> str:
    """Where a frame's code lives: our module, a langchain_core area, a library, or stdlib."""
    path = path.replace("\\", "/")
    for package, depth in (("langchain_dbx_serving/", 2), ("langchain_core/", 1)):
        if package in path:
            rest = path.split(package, 1)[1].removesuffix(".py").split("/")
            return package + "/".join(rest[:depth])
    for library in _LIBRARIES:
        if f"/{library}/" in path:
            return library
    if "/lib/python" not in path:
        return "other: " + path.rsplit("/", 1)[-1].removesuffix(".py")
    name = path.rsplit("/lib/python", 1)[-1].split("/", 1)[-1].removesuffix(".py")
    return "stdlib: " + name.removesuffix("/__init__")


def layers(root: Any, top: int = 25) -> str:
    """Self time summed by layer; a built-in function counts for the code that called it."""
    totals: dict[str, float] = {}

    def visit(frame: Any, inherited: str) -> None:
        path = frame.file_path or ""
        layer = inherited if not path or path.startswith("<") else _layer(path)
        own = frame.time - sum(child.time for child in frame.children)
        totals[layer] = totals.get(layer, 0.0) + max(own, 0.0)
        for child in frame.children:
            visit(child, layer)

    visit(root, "?")
    whole = sum(totals.values()) or 1.0
    rows = sorted(totals.items(), key=lambda item: -item[1])[:top]
    lines = ["self time by layer (share of the profiled time):"]
    lines += [f"  {100 * t / whole:5.1f}%  {name}" for name, t in rows]
    return "\n".join(lines)


def main() -> None:
    arguments = _arguments()
    if not _in_venv():
        python = ensure_venv()
        os.execv(str(python), [str(python), str(Path(__file__).resolve()), *sys.argv[1:]])
    with Server() as server:
        os.environ.update(DATABRICKS_HOST=f"http://127.0.0.1:{server.port}")
        os.environ.update(DATABRICKS_TOKEN=TOKEN)
        _profile(arguments)


if __name__ == "__main__":
    main()
