"""Benchmark our chat models against the peers, all talking to one fast local server.

Usage (from anywhere, with any Python >= 3.10)::

    python benchmarks/run.py                      # all clients, about 2.5 minutes on 2 cores
    python benchmarks/run.py --clients serving,databricks
    python benchmarks/run.py --wait-for-quiet 600  # on a shared machine
    python benchmarks/run.py --quick               # small sizes: does everything run?

The first run creates ``benchmarks/.venv`` and installs this checkout (``pip install -e``) plus
``benchmarks/requirements.txt`` (the peers ``databricks-langchain`` and ``langchain-openai``,
matplotlib, psutil, pyinstrument) into it, then re-runs itself inside that venv; the peers are
never dependencies of the package. A canned server (``_server.py``) runs in its own process on
127.0.0.1; every client is measured in fresh processes of its own (``_measure.py``), so imports
and memory are isolated; then one more process runs the clients in turns, a cross-check of the
CPU ratios that noise from other work on the machine cannot skew. It prints Markdown tables
with ratios to ``ChatDatabricksServing`` and writes ``benchmarks/results.json`` and
``benchmarks/results.png``.

Figures are client CPU (``time.process_time`` of the client process; the server's CPU is not
counted), wall time, import time and RSS. See ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
VENV = BENCH / ".venv"
REQUIREMENTS = BENCH / "requirements.txt"
CLIENTS = ["serving", "responses", "databricks", "openai", "floor", "httpx"]
PACKAGES = [
    "langchain-dbx-serving",
    "langchain-core",
    "databricks-langchain",
    "databricks-openai",
    "databricks-sdk",
    "langchain-openai",
    "openai",
    "httpx",
    "httpcore",
    "h11",
    "anyio",
    "pydantic",
    "pydantic-core",
]
TOKEN = "dapi-bench-token"


# -- the venv ---------------------------------------------------------------------------------
def _venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _install_stamp() -> str:
    digest = hashlib.sha256()
    for path in (REQUIREMENTS, REPO / "pyproject.toml"):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def ensure_venv() -> Path:
    """Create or refresh ``benchmarks/.venv``; reinstall when the requirements changed."""
    python, stamp = _venv_python(), VENV / ".installed"
    if python.exists() and stamp.exists() and stamp.read_text() == _install_stamp():
        return python
    if not python.exists():
        print(f"creating {VENV} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    print("installing the package and the peers into it (a few minutes, once) ...", flush=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    # An up-to-date pip: old resolvers backtrack for many minutes over the peers' pins.
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "-e", str(REPO), "-r", str(REQUIREMENTS)], check=True)
    stamp.write_text(_install_stamp())
    return python


def _in_venv() -> bool:
    return Path(sys.prefix).resolve() == VENV.resolve()


# -- the server -------------------------------------------------------------------------------
class Server:
    """``_server.py`` in a child process on a free port; always stopped on exit."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[str] | None = None
        self.port = 0

    def __enter__(self) -> Server:
        self.process = subprocess.Popen(
            [sys.executable, str(BENCH / "_server.py"), "0"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith("PORT "):
            self.__exit__()
            raise RuntimeError(f"the benchmark server did not start: {line!r}")
        self.port = int(line.split()[1])
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None


# -- measuring --------------------------------------------------------------------------------
def _environment(port: int) -> dict[str, str]:
    """The caller's environment without credentials or tracing, pointed at the local server."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DATABRICKS_", "LANGCHAIN_", "LANGSMITH_", "OPENAI_", "MLFLOW_"))
    }
    env.update(DATABRICKS_HOST=f"http://127.0.0.1:{port}", DATABRICKS_TOKEN=TOKEN)
    # Bytecode is cached (in the venv, not next to the sources), as in any installed setup:
    # without it every import would compile our editable package from source.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(VENV / "pycache")
    return env


def _measure(mode: str, client: str, env: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(BENCH / "_measure.py"), mode, client],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"measuring {client} ({mode}) failed:\n{done.stderr[-3000:]}")
    return json.loads(lines[-1])


def measure_client(client: str, env: dict[str, str], import_runs: int) -> dict[str, Any]:
    """Import figures (medians of fresh interpreters, after one that compiles bytecode), then
    the invoke / stream / abatch figures in one more fresh process."""
    _measure("import", client, env)
    imports = [_measure("import", client, env) for _ in range(import_runs)]
    figures = _measure("run", client, env)
    figures["import_s"] = statistics.median(i["import_s"] for i in imports)
    figures["import_s_runs"] = [round(i["import_s"], 3) for i in imports]
    rss = [i["rss_after_import_mib"] for i in imports if i["rss_after_import_mib"] is not None]
    figures["rss_after_import_mib"] = statistics.median(rss) if rss else None
    for key in ("client", "mode"):
        figures.pop(key, None)
    return figures


# -- context ----------------------------------------------------------------------------------
def _versions() -> dict[str, str | None]:
    from importlib import metadata

    found: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def _machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if "model name" in line)
    except (OSError, StopIteration):
        pass
    import psutil

    return {
        "platform": platform.platform(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
    }


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else []


def _wait_for_quiet(limit: float, threshold: float) -> None:
    """Wait (at most ``limit`` seconds) for the 1-minute load average to drop below
    ``threshold``: other work on the machine inflates every figure, CPU time included."""
    deadline = time.monotonic() + limit
    while (load := _load()) and load[0] >= threshold and time.monotonic() < deadline:
        print(f"load average {load[0]} >= {threshold}: waiting for a quieter moment ...")
        time.sleep(min(15.0, max(0.0, deadline - time.monotonic())))


# -- main -------------------------------------------------------------------------------------
def _arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--clients",
        default=",".join(CLIENTS),
        help=f"comma-separated subset of: {', '.join(CLIENTS)} (default: all)",
    )
    parser.add_argument("--import-runs", type=int, default=3, help="fresh imports per client")
    parser.add_argument(
        "--no-interleaved",
        dest="interleaved",
        action="store_false",
        help="skip the cross-check of CPU ratios with the clients taking turns in one process",
    )
    parser.add_argument(
        "--wait-for-quiet",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="first wait up to SECONDS for the 1-minute load average to fall below --quiet-below",
    )
    parser.add_argument("--quiet-below", type=float, default=1.5, metavar="LOAD")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small sizes (BENCH_QUICK=1): checks that everything runs; figures are rough",
    )
    parser.add_argument("--output", type=Path, default=BENCH, help="where results.* go")
    arguments = parser.parse_args(argv)
    arguments.clients = [c.strip() for c in arguments.clients.split(",") if c.strip()]
    unknown = sorted(set(arguments.clients) - set(CLIENTS))
    if unknown:
        parser.error(f"unknown clients: {', '.join(unknown)}")
    return arguments


def run(arguments: argparse.Namespace) -> dict[str, Any]:
    if arguments.quick:
        os.environ["BENCH_QUICK"] = "1"  # read by _measure here and in every child process
    from _measure import SIZES
    from _report import COLUMNS, chart, interleaved_table, sizes_note, table, targets

    _wait_for_quiet(arguments.wait_for_quiet, threshold=arguments.quiet_below)
    started, load_before = time.perf_counter(), _load()
    clients: dict[str, dict[str, Any]] = {}
    with Server() as server:
        env = _environment(server.port)
        for client in arguments.clients:
            print(f"measuring {COLUMNS[client]} ...", flush=True)
            try:
                clients[client] = measure_client(client, env, arguments.import_runs)
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                print(f"  {COLUMNS[client]} failed; its column stays empty:\n{exc}", flush=True)
                clients[client] = {"error": str(exc)[-3000:]}
        interleaved = None
        working = [name for name, figures in clients.items() if "error" not in figures]
        if arguments.interleaved and "serving" in working and len(working) > 1:
            print("cross-checking CPU with the clients interleaved in one process ...", flush=True)
            try:
                interleaved = _measure("compare", ",".join(working), env)["clients"]
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                print(f"  the cross-check failed:\n{exc}", flush=True)
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "seconds": round(time.perf_counter() - started, 1),
        "load_average_before": load_before,
        "load_average_after": _load(),
        "sizes": SIZES,
        "machine": _machine(),
        "versions": _versions(),
    }
    results = {"meta": meta, "clients": clients, "interleaved": interleaved}
    arguments.output.mkdir(parents=True, exist_ok=True)
    (arguments.output / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    subtitle = (
        f"{meta['machine']['cores']} cores, {meta['machine']['cpu']}; Python "
        f"{meta['versions']['python']}; load average {load_before[0] if load_before else '?'}"
    )
    chart(clients, arguments.output / "results.png", subtitle)
    print()
    print(table(clients))
    print(sizes_note(SIZES))
    print()
    print(targets(clients, interleaved))
    print()
    if interleaved:
        print(interleaved_table(interleaved))
        print()
    print(f"versions: {json.dumps(meta['versions'])}")
    print(
        f"load average before/after: {meta['load_average_before']} / {meta['load_average_after']}"
    )
    print(f"took {meta['seconds']} s; wrote {arguments.output / 'results.json'} and results.png")
    return results


def main() -> None:
    arguments = _arguments(sys.argv[1:])
    if not _in_venv():
        python = ensure_venv()
        os.execv(str(python), [str(python), str(Path(__file__).resolve()), *sys.argv[1:]])
    sys.path.insert(0, str(BENCH))
    run(arguments)


if __name__ == "__main__":
    main()
