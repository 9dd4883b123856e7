"""An ASGI middleware that traces an AgentServer app the way a Databricks endpoint does.

Wrapped around ``AgentServer(...).app``, it makes every POST one trace whose root is an AGENT
span named after the endpoint (the AgentServer's own span nests under it), and:

- honours a ``traceparent`` header the way MLflow documents distributed tracing: the request is
  handled inside ``mlflow.tracing.set_tracing_context_from_http_request_headers(headers)``, so
  the root span joins the caller's trace (all processes must share one tracking store, e.g.
  SQLite);
- when the body asks ``databricks_options: {"return_trace": true}`` (and no ``traceparent``
  was honoured), returns the request's whole trace as Model Serving does: the JSON reply gets
  ``databricks_output: {"trace": Trace.to_dict()}``; a stream gets a last event carrying it,
  before ``[DONE]`` (sent once the trace is complete).
"""

from __future__ import annotations

import json
from typing import Any

import mlflow
from mlflow.tracing import set_tracing_context_from_http_request_headers

Scope = dict[str, Any]


class ServingTracing:
    """``ServingTracing(app, name)``: see the module docstring."""

    def __init__(self, app: Any, name: str) -> None:
        self.app = app
        self.name = name

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        raw = await _read_body(receive)
        replay = _replay(raw, receive)
        request = _json(raw)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        if "traceparent" in headers:
            with (
                set_tracing_context_from_http_request_headers(headers),
                mlflow.start_span(self.name, span_type="AGENT") as span,
            ):
                span.set_inputs(request)
                await self.app(scope, replay, send)
            return
        options = request.get("databricks_options") if isinstance(request, dict) else None
        wants_trace = isinstance(options, dict) and options.get("return_trace") is True
        if not wants_trace:
            with mlflow.start_span(self.name, span_type="AGENT") as span:
                span.set_inputs(request)
                await self.app(scope, replay, send)
            return
        if request.get("stream"):
            stream = _HeldDone(send)
            with mlflow.start_span(self.name, span_type="AGENT") as span:
                span.set_inputs(request)
                await self.app(scope, replay, stream.send)
            trace = mlflow.get_trace(span.trace_id)
            await stream.finish({"trace": trace.to_dict()} if trace is not None else None)
            return
        reply = _Buffered()
        with mlflow.start_span(self.name, span_type="AGENT") as span:
            span.set_inputs(request)
            await self.app(scope, replay, reply.send)
            body = _json(reply.body)
            span.set_outputs(body)
        trace = mlflow.get_trace(span.trace_id)
        if isinstance(body, dict) and trace is not None and reply.status == 200:
            body["databricks_output"] = {"trace": trace.to_dict()}
            reply.body = json.dumps(body).encode()
        await reply.replay(send)


async def _read_body(receive: Any) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


def _replay(raw: bytes, receive: Any) -> Any:
    """A ``receive`` giving the body read already, then the real one (a stream listens on it
    for the client's disconnect)."""
    sent = False

    async def replay() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": raw, "more_body": False}
        return await receive()

    return replay


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw or b"null")
    except ValueError:
        return None


class _Buffered:
    """Collects a whole (non-streamed) reply so its body can be extended before it is sent."""

    def __init__(self) -> None:
        self.start: dict[str, Any] = {}
        self.body = b""

    @property
    def status(self) -> int:
        return int(self.start.get("status", 0))

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.start = message
        elif message["type"] == "http.response.body":
            self.body += message.get("body", b"")

    async def replay(self, send: Any) -> None:
        headers = [(k, v) for k, v in self.start.get("headers", []) if k != b"content-length"]
        headers.append((b"content-length", str(len(self.body)).encode()))
        await send({**self.start, "headers": headers})
        await send({"type": "http.response.body", "body": self.body, "more_body": False})


class _HeldDone:
    """Passes a stream through, holding back its ``[DONE]`` event and its end."""

    _DONE = b"data: [DONE]\n\n"

    def __init__(self, send: Any) -> None:
        self._send = send
        self.done = False

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] != "http.response.body":
            await self._send(message)
            return
        body = message.get("body", b"")
        if self._DONE in body:
            self.done = True
            body = body.replace(self._DONE, b"")
        if body:
            await self._send({"type": "http.response.body", "body": body, "more_body": True})

    async def finish(self, databricks_output: dict[str, Any] | None) -> None:
        tail = b""
        if databricks_output is not None:
            tail += f"data: {json.dumps({'databricks_output': databricks_output})}\n\n".encode()
        if self.done:
            tail += self._DONE
        await self._send({"type": "http.response.body", "body": tail, "more_body": False})
