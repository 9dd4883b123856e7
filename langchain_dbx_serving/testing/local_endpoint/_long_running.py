"""The local endpoint's long-running mode: the wire contract of a durable agent server.

Mirrors databricks-ai-bridge's ``LongRunningAgentServer`` (docs/notes/long-running-wire.md):
``"background": true`` on the root ``POST /responses`` / ``POST /invocations`` answers at once
(or, with ``"stream": true``, streams the run's feed); ``GET /responses/{id}`` polls;
``GET /responses/{id}?stream=true&starting_after=N`` streams from a cursor, every frame tagged
with ``sequence_number`` and ``response_id``, ending ``data: [DONE]`` when the run completed;
``POST /responses/{id}/cancel`` answers 501. A run is kept in memory (the real server keeps it
in Postgres); its events are produced by the endpoint's backend in a worker thread.

Faults, planned on :class:`LongRunningMode` (``ep.long_running``), each used once in order:

- ``cut_stream(after_seq=N)``: the next feed connection drops right after frame ``N``;
- ``time_out_stream(after_seq=N)``: the next feed sends a ``stream_timeout`` error frame after
  frame ``N`` and ends (the run goes on);
- ``crash_run(at_seq=K)``: the next run dies before storing event ``K``; the next retrieve
  restarts it as attempt 2 (``response.resumed`` with the rotated conversation id, the
  original input plus a ``[RECOVERY]`` user message with the crashed attempt's events);
- ``forget(run_id)``: the run disappears (``response_not_found``);
- ``POST /_debug/kill_task/{id}`` (the real server's test-only route): the running attempt
  dies now; the next retrieve resumes it.

``LongRunningMode(echo_history=True)`` plays the Supervisor API's background output instead
(``protocols/_supervisor_echo.py``): a completed run's output starts with the request's
assistant messages and function call items. AI Gateway's
``GET /ai-gateway/mlflow/v1/responses/{id}`` retrieves runs too.

Example::

    with LocalEndpoint(backend, long_running=True) as ep:
        ep.long_running.cut_stream(after_seq=3)
        chat = ChatDatabricksResponses(endpoint="agent", base_url=ep.host, token=ep.token)
        text = "".join(c.text for c in chat.stream("hi", background=True))  # resumed at seq 4
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import json
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from langchain_dbx_serving.protocols import _supervisor_echo as echo
from langchain_dbx_serving.testing.local_endpoint import _encoding as encoding
from langchain_dbx_serving.testing.local_endpoint import _inbound as inbound
from langchain_dbx_serving.testing.local_endpoint._faults import CUT, SSEResponse
from langchain_dbx_serving.testing.local_endpoint._trace import TraceRecorder
from langchain_dbx_serving.testing.local_endpoint.replies import Reply

__all__ = ["LongRunningMode", "StreamFault"]

_RECOVERY = (
    "[RECOVERY] The previous attempt crashed. Below is the raw stream-event log of that "
    "attempt. Inspect the events, figure out what is already done versus in-progress, and "
    "continue.\n\nEvents:\n"
)


@dataclass(frozen=True)
class StreamFault:
    """What happens to the next feed connection after frame ``after_seq``."""

    kind: str  # "cut" or "timeout"
    after_seq: int


@dataclass
class _Run:
    id: str
    body: dict[str, Any]
    stream_style: bool
    trace: bool
    status: str = "in_progress"
    attempt: int = 1
    alive: bool = True
    events: list[tuple[int, int, dict[str, Any]]] = field(default_factory=list)
    trace_id: str | None = None
    crash_at: int | None = None
    origin: tuple[Any, Any, Any] | None = None  # (exchange, backend, request) of attempt 1


class LongRunningMode:
    """Background runs, retrieval and resume for a :class:`LocalEndpoint` (``long_running=``).

    ``poll_interval`` is how often an open feed looks for new events; ``stream_timeout`` (if
    not ``None``) ends a feed that stayed open that long with a ``stream_timeout`` frame, as
    the real server does after its task timeout (an hour there; 30 s here, so that a feed
    whose client went away cannot hold the endpoint open).
    """

    def __init__(
        self,
        *,
        poll_interval: float = 0.01,
        stream_timeout: float | None = 30.0,
        echo_history: bool = False,
    ):
        self.poll_interval = poll_interval
        self.stream_timeout = stream_timeout
        self.echo_history = echo_history
        self.runs: dict[str, _Run] = {}
        self._faults: deque[StreamFault] = deque()
        self._crashes: deque[int] = deque()
        self._lock = threading.Lock()
        self._app: Any = None

    # -- plans ------------------------------------------------------------------------------
    def cut_stream(self, after_seq: int) -> LongRunningMode:
        """Drop the next feed connection right after frame ``after_seq``."""
        self._faults.append(StreamFault("cut", after_seq))
        return self

    def time_out_stream(self, after_seq: int) -> LongRunningMode:
        """End the next feed with a ``stream_timeout`` error frame after frame ``after_seq``."""
        self._faults.append(StreamFault("timeout", after_seq))
        return self

    def crash_run(self, at_seq: int) -> LongRunningMode:
        """Let the next run die before storing its event ``at_seq`` (attempt 1 only)."""
        self._crashes.append(at_seq)
        return self

    def forget(self, run_id: str) -> None:
        """Drop a run, as if its row were deleted."""
        with self._lock:
            self.runs.pop(run_id, None)

    # -- wiring -----------------------------------------------------------------------------
    def routes(self, app: Any) -> list[Route]:
        self._app = app
        return [
            Route("/responses/{response_id}", self._retrieve, methods=["GET"]),
            Route("/ai-gateway/{api}/v1/responses/{response_id}", self._retrieve, methods=["GET"]),
            Route("/responses/{response_id}/cancel", self._cancel, methods=["POST"]),
            Route("/_debug/kill_task/{response_id}", self._kill, methods=["POST"]),
        ]

    def wants(self, body: Mapping[str, Any], shape: str) -> bool:
        return body.get("background") is True and shape == inbound.RESPONSES

    async def submit(self, exchange: Any, backend: Any, request: Any) -> Response:
        """Start a background run (called by the app for a ``background: true`` request)."""
        body = {k: v for k, v in exchange.body.items() if k not in ("background", "stream")}
        run = _Run(exchange.ctx.response_id, body, request.stream, exchange.trace_header)
        run.crash_at = self._crashes.popleft() if self._crashes else None
        run.origin = (exchange, backend, request)
        with self._lock:
            self.runs[run.id] = run
        self._start(run, exchange, backend, request, attempt=1)
        if request.stream:
            return self._feed_response(run.id, 0, exchange.ctx.request_id)
        return JSONResponse(
            {
                "id": run.id,
                "object": "response",
                "created_at": int(time.time()),
                "status": "in_progress",
                "error": None,
                "incomplete_details": None,
                "output": [],
                "metadata": {},
            }
        )

    # -- running ----------------------------------------------------------------------------
    def _start(self, run: _Run, exchange: Any, backend: Any, request: Any, attempt: int) -> None:
        thread = threading.Thread(
            target=self._work,
            args=(run, exchange, backend, request, attempt),
            name=f"long-running-{run.id}-{attempt}",
            daemon=True,
        )
        thread.start()

    def _append(self, run: _Run, attempt: int, event: dict[str, Any]) -> bool:
        """Store one event; ``False`` when the attempt died (a crash) or lost the run."""
        with self._lock:
            if run.attempt != attempt or not run.alive:
                return False
            seq = run.events[-1][0] + 1 if run.events else 0
            if attempt == 1 and run.crash_at is not None and seq >= run.crash_at:
                run.alive = False
                return False
            run.events.append((seq, attempt, event))
            return True

    def _work(self, run: _Run, exchange: Any, backend: Any, request: Any, attempt: int) -> None:
        try:
            result = exchange.recorder.call(backend.respond, request)
            if run.stream_style:
                events = encoding.events(exchange, result)
                for event in events:
                    if isinstance(event, str):
                        continue  # [DONE]: the feed adds its own
                    if exchange.error is not None and event.get("type") in (
                        "error",
                        "response.failed",
                    ):
                        continue  # reported below, as the real server does
                    if not self._append(run, attempt, dict(event)):
                        events.close()
                        return
                if exchange.error is not None:
                    raise RuntimeError(exchange.error)
            else:
                whole = encoding.whole_body(exchange, result)
                for item in whole.get("output") or []:
                    event = {"type": "response.output_item.done", "item": item}
                    if not self._append(run, attempt, event):
                        return
                if run.trace:
                    run.trace_id = exchange.trace_id
        except Exception as exc:  # the handler failed: an error event, status failed
            error = {"message": str(exc), "type": "server_error", "code": "task_failed"}
            if self._append(run, attempt, {"type": "error", "error": error}):
                with self._lock:
                    run.status = "failed"
            return
        with self._lock:
            if run.attempt == attempt and run.alive:
                run.status = "completed"

    def _claim(self, run: _Run) -> None:
        """Restart a dead run as its next attempt (the real server: stale heartbeat + CAS)."""
        with self._lock:
            if run.alive or run.status != "in_progress":
                return
            prior = run.attempt
            run.attempt += 1
            run.alive = True
            attempt = run.attempt
            next_seq = run.events[-1][0] + 1 if run.events else 0
            log = [event for _, a, event in run.events if a == prior]
        resumed_body = copy.deepcopy(run.body)
        items = resumed_body.get("input")
        items = [{"role": "user", "content": items}] if isinstance(items, str) else list(items)
        items.append({"type": "message", "role": "user", "content": _RECOVERY + json.dumps(log)})
        resumed_body["input"] = items
        custom = dict(resumed_body.get("custom_inputs") or {})
        base = (
            custom.pop("thread_id", None)
            or custom.pop("session_id", None)
            or (resumed_body.get("context") or {}).get("conversation_id")
            or run.id
        )
        custom.pop("session_id", None)
        resumed_body["custom_inputs"] = custom
        rotated = f"{base}::attempt-{attempt}"
        resumed_body["context"] = {
            **(resumed_body.get("context") or {}),
            "conversation_id": rotated,
        }
        sentinel = {
            "type": "response.resumed",
            "attempt": attempt,
            "from_seq": next_seq,
            "conversation_id": rotated,
        }
        self._append(run, attempt, sentinel)
        exchange, backend, request = _resumed_exchange(run, resumed_body)
        self._start(run, exchange, backend, request, attempt)

    # -- retrieval --------------------------------------------------------------------------
    def _find(self, run_id: str) -> _Run | None:
        with self._lock:
            return self.runs.get(run_id)

    async def _retrieve(self, request: Request) -> Response:
        from langchain_dbx_serving.testing.local_endpoint._error_replies import error_response

        self._app.log.record(request, b"")
        try:
            self._app.auth.check(request)
        except inbound.RequestRejected as exc:
            return error_response(exc.reply, str(uuid.uuid4()))
        run_id = request.path_params["response_id"]
        stream = request.query_params.get("stream", "false").lower() in ("true", "1", "yes", "on")
        try:
            starting_after = int(request.query_params.get("starting_after", "0"))
        except ValueError:
            return JSONResponse({"detail": "starting_after must be an integer"}, 422)
        if starting_after < 0:
            return JSONResponse({"detail": "starting_after must be >= 0"}, 422)
        if starting_after != 0 and not stream:
            detail = "starting_after is only supported when stream=true."
            return JSONResponse({"detail": detail}, 400)
        run = self._find(run_id)
        if run is None:
            return JSONResponse({"detail": "Response not found"}, 404)
        self._claim(run)
        if stream:
            return self._feed_response(run_id, starting_after, str(uuid.uuid4()))
        return JSONResponse(self._poll_body(run))

    def _poll_body(self, run: _Run) -> dict[str, Any]:
        with self._lock:
            events = list(run.events)
            status, attempt = run.status, run.attempt
        base = {"id": run.id, "status": status, "attempt_number": attempt}
        if status == "completed" and events:
            output = [
                e.get("item") for _, _, e in events if e.get("type") == "response.output_item.done"
            ]
            body = {**base, "output": [o for o in output if o is not None]}
            if self.echo_history:  # the Supervisor API: the input history comes back first
                echoed = [i for i in run.body.get("input") or [] if echo.is_echoed(i)]
                body["output"] = [*copy.deepcopy(echoed), *body["output"]]
            if run.trace_id:
                body["metadata"] = {"trace_id": run.trace_id}
            return body
        if status == "failed":
            for _, _, event in events:
                if event.get("type") == "error":
                    return {**base, "error": event.get("error")}
        return base

    def _feed_response(self, run_id: str, starting_after: int, request_id: str) -> Response:
        fault = self._faults.popleft() if self._faults else None
        return SSEResponse(self._feed(run_id, starting_after, fault), {"x-request-id": request_id})

    async def _feed(
        self, run_id: str, starting_after: int, fault: StreamFault | None
    ) -> AsyncIterator[Any]:
        after = -1 if starting_after == 0 else starting_after
        opened = time.monotonic()
        while True:
            run = self._find(run_id)
            if run is None:
                error = {"message": "Response not found", "type": "not_found"}
                yield _frame({"error": {**error, "code": "response_not_found"}})  # no "type"
                return
            if run.status == "in_progress":
                self._claim(run)
            with self._lock:
                fresh = [(s, e) for s, _, e in run.events if s > after]
                status = run.status
            for seq, event in fresh:
                yield _frame({**event, "sequence_number": seq, "response_id": run_id})
                after = seq
                if fault is not None and seq >= fault.after_seq:
                    if fault.kind == "cut":
                        yield CUT
                    else:
                        yield _timeout_frame()
                    return
            if status == "completed":
                yield b"data: [DONE]\n\n"
                return
            if status == "failed":
                return
            if self.stream_timeout is not None and time.monotonic() - opened > self.stream_timeout:
                yield _timeout_frame()
                return
            await asyncio.sleep(self.poll_interval)

    async def _kill(self, request: Request) -> Response:
        """The real server's test-only crash (``LONG_RUNNING_ENABLE_DEBUG_KILL=1``): the
        running attempt dies without a status update, so the next retrieve resumes it."""
        self._app.log.record(request, await request.body())
        run_id = request.path_params["response_id"]
        run = self._find(run_id)
        with self._lock:
            killed = run is not None and run.alive and run.status == "in_progress"
            if killed:
                run.alive = False
        if not killed:
            detail = "No in-flight task for that response_id on this pod."
            return JSONResponse({"detail": detail}, 404)
        return JSONResponse({"response_id": run_id, "pod_id": "local", "status": "task_cancelled"})

    async def _cancel(self, request: Request) -> Response:
        self._app.log.record(request, await request.body())
        return JSONResponse({"detail": "Cancellation is not yet implemented."}, 501)


def _frame(event: Mapping[str, Any]) -> bytes:
    return f"data: {json.dumps(event)}\n\n".encode()


def _timeout_frame() -> bytes:
    error = {"message": "Stream retrieve timed out", "type": "server_error"}
    return _frame({"error": {**error, "code": "stream_timeout"}})  # untyped, as the server's


def _resumed_exchange(run: _Run, body: dict[str, Any]) -> tuple[Any, Any, Any]:
    """The exchange, backend and backend request of a resumed attempt (new input, rotated
    context, same response id)."""
    assert run.origin is not None
    exchange, backend, request = run.origin
    request = dataclasses.replace(
        request,
        body=body,
        messages=inbound.responses_messages(body["input"]),
        custom_inputs=body.get("custom_inputs"),
        context=body.get("context"),
    )
    exchange = dataclasses.replace(
        exchange,
        body=body,
        ctx=dataclasses.replace(exchange.ctx),
        final=Reply(),
        response=None,
        error=None,
        cut_after=None,
        fault=None,
        recorder=TraceRecorder.start(exchange.endpoint, agent=True, body=body),
    )
    return exchange, backend, request
