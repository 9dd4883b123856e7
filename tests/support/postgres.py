"""A throw-away PostgreSQL server on loopback, for the real ``LongRunningAgentServer``.

``start_postgres()`` runs ``initdb`` in a temporary directory and starts ``postgres`` on
127.0.0.1 with a free port (trust authentication, no sockets elsewhere, no fsync), waits until
it accepts connections, yields its DSN, and always stops it (fast shutdown) and removes the
directory. PostgreSQL refuses to run as root: as root, both run as the ``postgres`` user
(Debian's ``postgresql`` package creates it).

``postgres_available()`` says whether the binaries are here, for a skip with the reason.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

_BIN_DIRS = [Path(p) for p in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)]
STARTUP_TIMEOUT = 30.0


def _binary(name: str) -> str | None:
    for directory in _BIN_DIRS:
        if (directory / name).exists():
            return str(directory / name)
    return shutil.which(name)


def postgres_available() -> str | None:
    """``None`` when PostgreSQL can be started here, else why not."""
    if _binary("initdb") is None or _binary("postgres") is None:
        return "PostgreSQL binaries (initdb, postgres) not found: apt-get install postgresql"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no 'postgres' user to run PostgreSQL as"
    return None


def _as_postgres() -> dict[str, object]:
    """Popen arguments that run the child as ``postgres`` when we are root (it refuses root)."""
    if os.geteuid() != 0:
        return {}
    return {"user": "postgres", "group": "postgres", "extra_groups": []}


def _options(root: Path) -> list[str]:
    """Unix sockets in our directory only; no fsync (a throw-away database)."""
    return ["-k", str(root), "-c", "fsync=off"]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_ready(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"postgres exited ({process.returncode}):\n{log.read_text()}")
        if "ready to accept connections" in log.read_text(errors="replace"):
            with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                return
        with suppress(subprocess.TimeoutExpired):  # a pause that also notices an exit
            process.wait(timeout=0.05)
    raise RuntimeError(f"postgres not ready within {STARTUP_TIMEOUT:.0f} s:\n{log.read_text()}")


@contextmanager
def start_postgres() -> Iterator[str]:
    """A running PostgreSQL; yields ``postgresql+psycopg://postgres@127.0.0.1:<port>/postgres``."""
    root = Path(tempfile.mkdtemp(prefix="pg-"))
    try:
        data = root / "data"
        initdb, postgres = _binary("initdb") or "initdb", _binary("postgres") or "postgres"
        log = root / "postgres.log"
        if os.geteuid() == 0:
            shutil.chown(root, "postgres")
        os.chmod(root, 0o755)
        subprocess.run(
            [initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"],
            check=True,
            capture_output=True,
            cwd=root,
            **_as_postgres(),  # type: ignore[arg-type]
        )
        port = _free_port()
        with log.open("wb") as out:
            process = subprocess.Popen(
                [postgres, "-D", str(data), "-p", str(port), "-h", "127.0.0.1", *_options(root)],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=root,
                **_as_postgres(),  # type: ignore[arg-type]
            )
        try:
            _wait_ready(process, port, log)
            yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)  # fast shutdown
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
    finally:
        shutil.rmtree(root, ignore_errors=True)
