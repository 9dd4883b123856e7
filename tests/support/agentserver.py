"""Run MLflow's real ``AgentServer`` on loopback, in a subprocess, for tests.

``start_agent_server()`` binds a listening socket on ``127.0.0.1`` with a free port (port 0, so
there is no race for the port), hands it to a child Python process that serves an AgentServer app
with uvicorn on exactly that socket, waits until ``GET /health`` answers, yields an
:class:`AgentServerProcess`, and always terminates the child (also when the body raises or the
server never gets ready). The child's stdout and stderr go to a log file that startup errors
quote, so a broken app fails with its own traceback.

MLflow runs only in the child, with its tracking store in a directory of ours
(``MLFLOW_TRACKING_URI=file:///...``, see :func:`mlflow_env`): the test process's environment and
MLflow state are left alone.

Use it from tests with the ``agent_server`` fixture (one server per session)::

    pytest_plugins = ["tests.support.agentserver"]

    def test_echo(agent_server):
        reply = httpx.post(f"{agent_server.url}/invocations", json={"input": [...]})

or directly::

    with start_agent_server(tracking_dir=tmp_path) as server:
        httpx.get(f"{server.url}/agent/info")
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

DEFAULT_APP = "tests.support.agent_app:app"
STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
_REPO_ROOT = Path(__file__).resolve().parents[2]
_LOG_TAIL_CHARS = 4000


class AgentServerStartupError(RuntimeError):
    """The AgentServer subprocess exited or did not answer ``/health`` before the deadline."""


@dataclass(frozen=True)
class AgentServerProcess:
    """A running AgentServer: where it listens and where its MLflow traces go."""

    url: str
    """``http://127.0.0.1:<port>``, without a trailing slash."""
    process: subprocess.Popen[bytes]
    tracking_dir: Path
    """The MLflow file store the child writes traces to."""
    log_path: Path
    """The child's combined stdout and stderr."""

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        """What the server has written to stdout and stderr so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def trace_dirs(self) -> list[Path]:
        """The trace directories of the file store (``<experiment>/traces/<trace id>``)."""
        return sorted(self.tracking_dir.glob("*/traces/tr-*"))


def mlflow_env(tracking_dir: Path) -> dict[str, str]:
    """The variables that give MLflow tracing a real store (PROTOCOLS.md section 8)."""
    return {
        "MLFLOW_TRACKING_URI": tracking_dir.resolve().as_uri(),
        "MLFLOW_ALLOW_FILE_STORE": "true",
        "MLFLOW_ENABLE_ASYNC_TRACE_LOGGING": "false",
    }


def _child_env(tracking_dir: Path, extra: dict[str, str] | None) -> dict[str, str]:
    env = dict(os.environ)
    # Databricks credentials of the developer's shell must not reach an MLflow that could use them.
    for name in [n for n in env if n.startswith("DATABRICKS_")]:
        del env[name]
    python_path = [str(_REPO_ROOT), *filter(None, [env.get("PYTHONPATH")])]
    env |= {"PYTHONPATH": os.pathsep.join(python_path), "PYTHONUNBUFFERED": "1"}
    return env | mlflow_env(tracking_dir) | (extra or {})


def _listen_on_free_port() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


def _log_tail(log_path: Path) -> str:
    text = log_path.read_text(encoding="utf-8", errors="replace") if log_path.exists() else ""
    return text[-_LOG_TAIL_CHARS:] or "<no output>"


def _wait_until_healthy(process: subprocess.Popen[bytes], url: str, timeout: float) -> None:
    """Poll ``GET /health`` until it answers 200, the child exits, or the deadline passes."""
    deadline = time.monotonic() + timeout
    # The socket is listening before the child starts, so a request made during startup waits
    # in the backlog and is answered once the app is up; the per-request timeout bounds that.
    with httpx.Client(timeout=1.0) as client:
        while (remaining := deadline - time.monotonic()) > 0:
            if process.poll() is not None:
                raise AgentServerStartupError(f"exited with code {process.returncode}")
            try:
                if client.get(f"{url}/health", timeout=min(1.0, remaining)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            with suppress(subprocess.TimeoutExpired):  # A pause that also notices an exit.
                process.wait(timeout=min(0.05, max(remaining, 0.0)))
    raise AgentServerStartupError(f"no answer from {url}/health within {timeout:.0f} s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stdin is not None:
        process.stdin.close()


@contextmanager
def start_agent_server(
    app: str = DEFAULT_APP,
    *,
    tracking_dir: Path | None = None,
    env: dict[str, str] | None = None,
    startup_timeout: float = STARTUP_TIMEOUT,
) -> Iterator[AgentServerProcess]:
    """Serve the AgentServer app ``app`` ("module:attribute") on 127.0.0.1 until the block ends.

    ``tracking_dir`` is the MLflow file store (a temporary directory, removed afterwards, when
    omitted); ``env`` adds variables to the child's environment. Raises
    :class:`AgentServerStartupError` with the child's output if it does not start.
    """
    with ExitStack() as stack:
        if tracking_dir is None:
            tracking_dir = Path(stack.enter_context(tempfile.TemporaryDirectory())) / "mlruns"
        # Only the parent: MLflow's file store creates the default experiment in a new root.
        tracking_dir.parent.mkdir(parents=True, exist_ok=True)
        log_path = tracking_dir.parent / f"{tracking_dir.name}-agentserver.log"
        sock = stack.enter_context(_listen_on_free_port())
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        command = [sys.executable, "-m", __name__, app, "--fd", str(sock.fileno())]
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                command,
                env=_child_env(tracking_dir, env),
                cwd=_REPO_ROOT,
                stdin=subprocess.PIPE,  # the child exits when this pipe closes (see _serve)
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=(sock.fileno(),),
            )
        stack.callback(_stop, process)
        # The child has its own copy; without ours, connections are refused once the child exits.
        sock.close()
        try:
            _wait_until_healthy(process, url, startup_timeout)
        except AgentServerStartupError as error:
            _stop(process)
            raise AgentServerStartupError(
                f"AgentServer '{app}' did not start: {error}. Its output:\n{_log_tail(log_path)}"
            ) from None
        yield AgentServerProcess(url, process, tracking_dir, log_path)


@pytest.fixture(scope="session")
def agent_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentServerProcess]:
    """The test agent (``tests.support.agent_app``) on a real AgentServer, for the session."""
    with start_agent_server(tracking_dir=tmp_path_factory.mktemp("agentserver") / "mlruns") as s:
        yield s


def _stop_when_parent_dies() -> None:
    """Child side: stdin is a pipe from the test process; EOF means it is gone (even if killed)."""
    sys.stdin.buffer.read()
    os.kill(os.getpid(), signal.SIGTERM)


def _serve(app: str, fd: int) -> None:
    """Child side: serve ``app`` with uvicorn on the inherited listening socket ``fd``."""
    import uvicorn

    threading.Thread(target=_stop_when_parent_dies, daemon=True).start()
    sock = socket.socket(fileno=fd)
    # LongRunningAgentServer opens its database in the app's lifespan (AGENTSERVER_LIFESPAN=on).
    lifespan = os.environ.get("AGENTSERVER_LIFESPAN", "off")
    config = uvicorn.Config(
        app, log_level="warning", lifespan=lifespan, timeout_graceful_shutdown=2
    )
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Serve an AgentServer app on an inherited socket.")
    parser.add_argument("app", help="module:attribute of the FastAPI app")
    parser.add_argument("--fd", type=int, required=True, help="listening socket file descriptor")
    arguments = parser.parse_args()
    _serve(arguments.app, arguments.fd)
