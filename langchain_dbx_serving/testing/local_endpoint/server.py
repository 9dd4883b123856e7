"""A local Databricks Model Serving endpoint, for tests and demos without a workspace.

:class:`LocalEndpoint` serves the Model Serving wire formats (chat completions, responses,
ChatAgent; whole and SSE) from uvicorn on ``127.0.0.1`` in a background thread. Point any client
at ``ep.host`` (Databricks host) or ``ep.base_url`` (OpenAI-compatible base URL) with
``ep.token``.

As a CLI (runs until Ctrl-C)::

    python -m langchain_dbx_serving.testing.endpoint --port 8080 --token T
    python -m langchain_dbx_serving.testing.endpoint --backend script.json --chat-agent
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import sys
import threading
from collections.abc import Collection, Mapping
from types import TracebackType
from typing import Any

import uvicorn

from langchain_dbx_serving.testing.local_endpoint._app import ServingApp
from langchain_dbx_serving.testing.local_endpoint._long_running import LongRunningMode
from langchain_dbx_serving.testing.local_endpoint._recording import RecordedRequest
from langchain_dbx_serving.testing.local_endpoint.backends import Backend, as_backend
from langchain_dbx_serving.testing.local_endpoint.replies import FaultPlan

__all__ = ["DEFAULT_TOKEN", "LocalEndpoint", "main"]

DEFAULT_TOKEN = "local-endpoint-token"
_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 5.0


class _Server(uvicorn.Server):
    """uvicorn's server that says when it is ready and stops without polling delays."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()
        self.loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self.error: BaseException | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        try:
            await super().startup(sockets)
        finally:
            self.ready.set()

    async def main_loop(self) -> None:
        assert self._wake is not None
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 1) % 864000
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 0.1)

    def request_stop(self) -> None:
        self.should_exit = True
        if self.loop is not None and self._wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop already closed
                self.loop.call_soon_threadsafe(self._wake.set)

    def run_in_thread(self, sockets: list[socket.socket]) -> None:
        try:
            self.run(sockets=sockets)
        except BaseException as exc:  # SystemExit on startup failure included
            self.error = exc
        finally:
            self.ready.set()


def _bind(host: str, port: int) -> socket.socket:
    # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY only on accepted sockets whose proto
    # says TCP, and without it Nagle's algorithm holds each reply body ~40 ms behind its headers.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    if port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    return sock


class LocalEndpoint:
    """A Databricks serving endpoint on loopback, answered by pluggable backends.

    ``backends`` is one backend (serving any endpoint name) or a mapping ``{name: backend}``
    (other names get 404 ``RESOURCE_DOES_NOT_EXIST``). A backend may be a
    :class:`~langchain_dbx_serving.testing.backends.Backend`, a list of replies (scripted), a
    LangChain chat model, an MLflow ``ResponsesAgent``, a LangGraph graph or other runnable
    (served as ``as_responses_agent(graph)``), a function, ``"echo"`` or ``None`` (echo).
    A supervisor and its sub-agents run on one laptop as on Databricks:
    ``LocalEndpoint({"supervisor": graph, "research": research_graph, ...})`` serves each under
    its name at ``/serving-endpoints/{name}/invocations`` (and the OpenAI-style routes).
    ``chat_agents`` names the endpoints that answer chat requests in ChatAgent shape
    (``True``: all). ``token`` is the bearer token required (``None``: no auth check).
    ``root`` names the endpoint the AgentServer-style root routes (``/invocations``,
    ``/responses``) serve: by default the first of the mapping, or ``"agent"``. ``faults`` is a
    :class:`~langchain_dbx_serving.testing.replies.FaultPlan` applied to incoming requests
    (resets, stalls, proxy errors, ...); ``ep.faults`` is the plan, to extend while running.
    ``long_running=True`` (or a ``LongRunningMode``) adds the durable agent server's background
    runs, retrieval routes and crash-resume to the root routes (``ep.long_running`` plans
    stream cuts, stream timeouts and crashes; see ``testing/local_endpoint/_long_running.py``).

    Example::

        from langchain_dbx_serving.testing import LocalEndpoint, Reply

        with LocalEndpoint([Reply.text("Hello!", usage=(5, 2))]) as ep:
            import openai
            client = openai.OpenAI(base_url=ep.base_url, api_key=ep.token)
            messages = [{"role": "user", "content": "hi"}]
            reply = client.chat.completions.create(model="any", messages=messages)
            assert reply.choices[0].message.content == "Hello!"
            assert ep.requests[0].body["messages"][0]["content"] == "hi"
    """

    def __init__(
        self,
        backends: Any = None,
        *,
        token: str | None = DEFAULT_TOKEN,
        chat_agents: bool | Collection[str] = False,
        root: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        faults: FaultPlan | None = None,
        long_running: bool | LongRunningMode = False,
    ) -> None:
        endpoints: dict[str, Backend] | None = None
        default: Backend | None = None
        if isinstance(backends, Mapping):
            endpoints = {name: as_backend(b) for name, b in backends.items()}
            if not endpoints:
                raise ValueError("LocalEndpoint needs at least one endpoint")
            root = root or next(iter(endpoints))
            if root not in endpoints:
                raise ValueError(f"root endpoint {root!r} is not one of {sorted(endpoints)}")
        else:
            default = as_backend(backends)
        agents = chat_agents if isinstance(chat_agents, bool) else frozenset(chat_agents)
        mode = LongRunningMode() if long_running is True else (long_running or None)
        self._app = ServingApp(
            endpoints,
            default,
            chat_agents=agents,
            token=token,
            root=root or "agent",
            faults=faults,
            long_running=mode,
        )
        self.token = token
        self.bind_host = host
        self.port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- addresses and state -----------------------------------------------------------------

    @property
    def host(self) -> str:
        """The workspace host to give clients: ``http://127.0.0.1:PORT``."""
        return f"http://{self.bind_host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL: ``{host}/serving-endpoints``."""
        return f"{self.host}/serving-endpoints"

    def invocations_url(self, name: str) -> str:
        """``{host}/serving-endpoints/{name}/invocations``."""
        return f"{self.base_url}/{name}/invocations"

    @property
    def long_running(self) -> LongRunningMode:
        """The long-running mode (``long_running=True``): runs and fault plans of the
        durable-agent-server routes. ``AttributeError`` when the mode is off."""
        if self._app.long_running is None:
            raise AttributeError("this LocalEndpoint was started without long_running=True")
        return self._app.long_running

    @property
    def faults(self) -> FaultPlan:
        """The fault plan applied to the next requests (empty unless faults were added)."""
        return self._app.faults

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far (authorization redacted), oldest first."""
        return self._app.requests

    @property
    def last_request(self) -> RecordedRequest:
        """The most recent request (``IndexError`` when none arrived)."""
        return self._app.requests[-1]

    def backend(self, name: str | None = None) -> Backend:
        """The backend serving ``name`` (or the single backend)."""
        return self._app.directory.backend(name)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> LocalEndpoint:
        """Start serving; returns once the port accepts requests."""
        if self._thread is not None:
            raise RuntimeError("this LocalEndpoint is already running")
        sock = _bind(self.bind_host, self.port)
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app.app,
            http="h11",
            ws="none",
            lifespan="off",
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=1,
        )
        self._server = server = _Server(config)
        self._thread = threading.Thread(
            target=server.run_in_thread,
            args=([sock],),
            name=f"LocalEndpoint:{self.port}",
            daemon=True,
        )
        self._thread.start()
        if not server.ready.wait(_START_TIMEOUT) or not server.started:
            self.stop()
            sock.close()
            raise RuntimeError(
                f"the local endpoint did not start on port {self.port}: {server.error!r}"
            )
        return self

    def stop(self) -> None:
        """Stop serving and release the port (idempotent)."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.request_stop()
        thread.join(_STOP_TIMEOUT)
        if thread.is_alive():
            server.force_exit = True
            thread.join(_STOP_TIMEOUT)
        self._server = self._thread = None

    def serve_forever(self) -> None:
        """Serve in the current thread until interrupted (Ctrl-C): used by the CLI."""
        sock = _bind(self.bind_host, self.port)
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app.app, http="h11", ws="none", lifespan="off", log_level="warning"
        )
        server = _Server(config)
        printer = threading.Thread(target=self._announce, args=(server,), daemon=True)
        printer.start()
        server.run(sockets=[sock])

    def _announce(self, server: _Server) -> None:
        server.ready.wait()
        if server.started:
            print(f"Local Databricks serving endpoint: {self.host}", flush=True)
            print(f"OpenAI-compatible base URL: {self.base_url}", flush=True)

    def __enter__(self) -> LocalEndpoint:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> LocalEndpoint:
        return self.start()

    async def __aexit__(self, *exc_info: Any) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self._thread else "stopped"
        return f"<LocalEndpoint {self.host} {state}>"


def main(argv: list[str] | None = None) -> int:
    """The CLI: serve until Ctrl-C."""
    parser = argparse.ArgumentParser(
        prog="python -m langchain_dbx_serving.testing.endpoint",
        description="Serve a local Databricks Model Serving endpoint.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    parser.add_argument("--token", default=None, help="bearer token to require (default: none)")
    parser.add_argument(
        "--backend", default="echo", help="'echo' or a JSON file with a list of scripted replies"
    )
    parser.add_argument("--chat-agent", action="store_true", help="answer chat in ChatAgent shape")
    args = parser.parse_args(argv)
    endpoint = LocalEndpoint(
        args.backend, token=args.token, chat_agents=args.chat_agent, host=args.host, port=args.port
    )
    with contextlib.suppress(KeyboardInterrupt):
        endpoint.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
