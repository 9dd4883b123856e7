"""The local endpoint's Starlette app: routes, auth, endpoint lookup, encoding, recording.

Routes (PROTOCOLS.md section 1): ``POST /serving-endpoints/chat/completions`` and
``POST /serving-endpoints/responses`` (``"model"`` names the endpoint),
``POST /serving-endpoints/{name}/invocations`` (shape chosen by the body),
``POST /serving-endpoints/embeddings`` (and ``{"input": [texts]}`` on invocations), and MLflow
AgentServer's ``POST /invocations``, ``POST /responses``, ``GET /health`` and
``GET /agent/info`` at the root. AI Gateway's ``POST /ai-gateway/mlflow/v1/chat/completions``
and ``.../responses`` (and the same under ``/ai-gateway/openai/v1``) work like the
OpenAI-compatible routes, and ``GET /api/2.0/apps/{root}`` answers the URL of the agent served
at the root, as the workspace Apps API does for an App.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from langchain_dbx_serving.testing.local_endpoint import _inbound as inbound
from langchain_dbx_serving.testing.local_endpoint._error_replies import (
    common_headers as _common_headers,
)
from langchain_dbx_serving.testing.local_endpoint._error_replies import error_response
from langchain_dbx_serving.testing.local_endpoint._family_rules import FamilyRules
from langchain_dbx_serving.testing.local_endpoint._faults import (
    CUT,
    STALL,
    ExposeConnection,
    ResetResponse,
    early_fault_response,
    fault_frames,
    padded,
    wait_for_disconnect,
)
from langchain_dbx_serving.testing.local_endpoint._trace import (
    TraceFacts,
    TraceRecorder,
    new_trace_id,
)
from langchain_dbx_serving.testing.local_endpoint._wire import (
    Aggregate,
    ChatAgentStream,
    ChatCompletionStream,
    WireContext,
    chat_agent_body,
    chat_completion_body,
    expand,
    sse_frame,
)
from langchain_dbx_serving.testing.local_endpoint._wire_responses import (
    ResponsesStream,
    responses_body,
)
from langchain_dbx_serving.testing.local_endpoint.backends import (
    Backend,
    BackendRequest,
    EmbeddingBackend,
)
from langchain_dbx_serving.testing.local_endpoint.replies import (
    ErrorReply,
    Fault,
    FaultPlan,
    Quirks,
    RawReply,
    Reply,
)

_ENCODERS: dict[str, tuple[Callable[[Reply, WireContext], dict[str, Any]], Any, str]] = {
    inbound.CHAT_COMPLETIONS: (chat_completion_body, ChatCompletionStream, "chatcmpl-"),
    inbound.RESPONSES: (responses_body, ResponsesStream, "resp_"),
    inbound.CHAT_AGENT: (chat_agent_body, ChatAgentStream, "msg_"),
}
_CUT = CUT  # stream sentinel: drop the connection here
_INTENTIONAL_CUT: contextvars.ContextVar[bool] = contextvars.ContextVar("cut", default=False)
_UNCOMPLETED = "ASGI callable returned without completing response."


class _QuietIntentionalCuts(logging.Filter):
    """uvicorn logs an error when a response is left incomplete; ours are on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (_INTENTIONAL_CUT.get() and record.getMessage() == _UNCOMPLETED)


_uvicorn_logger = logging.getLogger("uvicorn.error")
if not any(isinstance(f, _QuietIntentionalCuts) for f in _uvicorn_logger.filters):
    _uvicorn_logger.addFilter(_QuietIntentionalCuts())


@dataclass(frozen=True)
class RecordedRequest:
    """A request the endpoint received: ``headers`` (lowercase names) have the credential of
    ``authorization`` replaced by ``***``; ``body`` is the parsed JSON (``None`` if not JSON).

    Example::

        assert ep.requests[-1].body["messages"][0]["content"] == "hi"
    """

    method: str
    path: str
    headers: Mapping[str, str]
    body: Any


def _redact(headers: Mapping[str, str]) -> dict[str, str]:
    out = dict(headers)
    if "authorization" in out:
        scheme, _, _ = out["authorization"].partition(" ")
        out["authorization"] = f"{scheme} ***"
    return out


class _SSEResponse(StreamingResponse):
    """An SSE stream that can stop without completing the HTTP response (a dropped stream)."""

    def __init__(
        self, frames: AsyncIterator[Any], headers: Mapping[str, str], stall: float = 30.0
    ) -> None:
        headers = {**headers, "cache-control": "no-cache"}
        super().__init__(frames, 200, headers, "text/event-stream")
        self.stall = stall  # longest a STALL frame holds the connection

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        async for frame in self.body_iterator:
            if frame is _CUT or frame is STALL:
                _INTENTIONAL_CUT.set(True)
                if frame is STALL:
                    await wait_for_disconnect(receive, self.stall)
                return
            await send({"type": "http.response.body", "body": frame, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


class _CutBodyResponse(JSONResponse):
    """A JSON reply whose connection drops after half of the announced body."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        half = self.body[: len(self.body) // 2]
        await send({"type": "http.response.body", "body": half, "more_body": True})
        _INTENTIONAL_CUT.set(True)


@dataclass
class _Exchange:
    """One request being answered."""

    endpoint: str
    shape: str
    body: Mapping[str, Any]
    ctx: WireContext
    start_ns: int
    agent: bool
    trace_header: bool
    trace_id: str = field(default_factory=new_trace_id)
    final: Reply = field(default_factory=Reply)
    response: Any = None  # the whole-reply equivalent, for the trace's outputs
    error: str | None = None
    cut_after: int | None = None
    fault: Fault | None = None  # from the endpoint's FaultPlan
    recorder: TraceRecorder = field(default_factory=TraceRecorder)  # MLflow, when usable

    @property
    def wants_trace(self) -> bool:
        options = self.body.get("databricks_options") or {}
        return options.get("return_trace") is True

    def databricks_output(self) -> dict[str, Any]:
        options = self.body.get("databricks_options") or {}
        facts = TraceFacts(
            endpoint=self.endpoint,
            agent=self.agent,
            request={k: v for k, v in self.body.items() if k != "databricks_options"},
            response=self.response,
            answer=self.final.full_text,
            start_ns=self.start_ns,
            end_ns=time.time_ns(),
            trace_id=self.trace_id,
            usage=self.final.usage,
            steps=self.final.steps,
            client_request_id=self.body.get("client_request_id")
            or options.get("client_request_id"),
            error=self.error,
        )
        trace = self.recorder.finish(facts)
        return {"trace": trace, "databricks_request_id": self.ctx.request_id}


class ServingApp:
    """The ASGI app and its state (endpoints, token, recorded requests)."""

    def __init__(
        self,
        endpoints: Mapping[str, Backend] | None,
        default: Backend | None,
        *,
        chat_agents: bool | frozenset[str],
        token: str | None,
        root: str,
        faults: FaultPlan | None = None,
        long_running: Any = None,
    ) -> None:
        self.long_running = long_running  # a _long_running.LongRunningMode, or None
        self.endpoints = endpoints
        self.default = default
        self.chat_agents = chat_agents
        self.token = token
        self.root = root
        self.faults = faults if faults is not None else FaultPlan()
        self.requests: list[RecordedRequest] = []
        self.family_rules = FamilyRules()
        self._lock = threading.Lock()
        routes = [
            Route("/serving-endpoints/chat/completions", self._chat_route, methods=["POST"]),
            Route("/serving-endpoints/responses", self._responses_route, methods=["POST"]),
            Route("/serving-endpoints/embeddings", self._embeddings_route, methods=["POST"]),
            Route(
                "/serving-endpoints/{name}/invocations", self._invocations_route, methods=["POST"]
            ),
            *(
                Route(f"/ai-gateway/{api}/v1/{path}", handler, methods=["POST"])
                for api in ("mlflow", "openai")
                for path, handler in (
                    ("chat/completions", self._chat_route),
                    ("responses", self._responses_route),
                )
            ),
            Route("/api/2.0/apps/{name}", self._app_lookup, methods=["GET"]),
            Route("/invocations", self._root_invocations, methods=["POST"]),
            Route("/responses", self._root_responses, methods=["POST"]),
            Route("/health", self._health, methods=["GET"]),
            Route("/agent/info", self._agent_info, methods=["GET"]),
            Route("/api/2.0/serving-endpoints/{name}", self._endpoint_info, methods=["GET"]),
        ]
        if long_running is not None:
            routes += long_running.routes(self)
        starlette = Starlette(routes=routes, exception_handlers={HTTPException: self._no_route})
        self.app = ExposeConnection(starlette)

    # -- routes ------------------------------------------------------------------------------

    async def _chat_route(self, request: Request) -> Response:
        return await self._handle(request, route_shape=inbound.CHAT_COMPLETIONS)

    async def _responses_route(self, request: Request) -> Response:
        return await self._handle(request, route_shape=inbound.RESPONSES)

    async def _embeddings_route(self, request: Request) -> Response:
        return await self._handle(request, route_shape=inbound.EMBEDDINGS)

    async def _invocations_route(self, request: Request) -> Response:
        return await self._handle(request, route_shape=None, name=request.path_params["name"])

    async def _root_invocations(self, request: Request) -> Response:
        return await self._handle(request, route_shape=None, root=True)

    async def _root_responses(self, request: Request) -> Response:
        return await self._handle(request, route_shape=inbound.RESPONSES, root=True)

    async def _app_lookup(self, request: Request) -> Response:
        """The workspace Apps API: the agent served at the root is the App named ``root``."""
        self._record(request, b"")
        try:
            self._check_auth(request)
        except inbound.RequestRejected as exc:
            return error_response(exc.reply, str(uuid.uuid4()))
        name = request.path_params["name"]
        if name != self.root:
            message = f"App with name {name} does not exist or is deleted."
            reply = ErrorReply(404, "RESOURCE_DOES_NOT_EXIST", message)
            return error_response(reply, str(uuid.uuid4()))
        return JSONResponse({"name": name, "url": str(request.base_url).rstrip("/")})

    async def _health(self, request: Request) -> Response:
        return JSONResponse({"status": "healthy"})

    async def _agent_info(self, request: Request) -> Response:
        return JSONResponse({"name": self.root, "use_case": "agent", "agent_api": "responses"})

    async def _endpoint_info(self, request: Request) -> Response:
        """The serving-endpoints GET API (what ``model.check()`` asks), in short."""
        try:
            self._check_auth(request)
            name, _backend, _agent = self._lookup({}, request.path_params["name"], False)
        except inbound.RequestRejected as exc:
            return error_response(exc.reply, str(uuid.uuid4()))
        state = {"ready": "READY", "config_update": "NOT_UPDATING"}
        return JSONResponse({"name": name, "state": state, "creator": "local"})

    async def _no_route(self, request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 404)
        message = f"No API found for '{request.method} {request.url.path}'"
        code = "ENDPOINT_NOT_FOUND" if status == 404 else "BAD_REQUEST"
        return error_response(ErrorReply(status, code, message), str(uuid.uuid4()))

    # -- request handling --------------------------------------------------------------------

    def _check_auth(self, request: Request) -> None:
        if self.token is None:
            return
        header = request.headers.get("authorization")
        if not header:
            message = "Credential was not sent or was of an unsupported type for this API."
            raise inbound.RequestRejected(ErrorReply(401, "UNAUTHENTICATED", message))
        scheme, _, credential = header.partition(" ")
        if scheme.lower() != "bearer" or credential.strip() != self.token:
            raise inbound.RequestRejected(
                ErrorReply(401, "UNAUTHENTICATED", "Invalid access token.")
            )

    def _lookup(
        self, body: Mapping[str, Any], name: str | None, root: bool
    ) -> tuple[str, Backend, bool]:
        """The endpoint name, its backend and whether it is a ChatAgent."""
        if root:
            name = self.root
        elif name is None:
            name = body.get("model")
            if not isinstance(name, str) or not name:
                raise inbound.bad_request(
                    "'model' is required on this route: set it to the serving endpoint's name."
                )
        backend = self.endpoints.get(name) if self.endpoints is not None else self.default
        if backend is None:
            message = (
                f"The given endpoint '{name}' does not exist, please retry after checking the "
                "specified model and version deployment exists."
            )
            raise inbound.RequestRejected(ErrorReply(404, "RESOURCE_DOES_NOT_EXIST", message))
        chat_agent = self.chat_agents is True or (
            isinstance(self.chat_agents, frozenset) and name in self.chat_agents
        )
        return name, backend, chat_agent

    def _record(self, request: Request, raw: bytes) -> None:
        try:
            body = inbound.parse_body(raw)
        except inbound.RequestRejected:
            body = None
        entry = RecordedRequest(request.method, request.url.path, _redact(request.headers), body)
        with self._lock:
            self.requests.append(entry)

    async def _handle(
        self,
        request: Request,
        *,
        route_shape: str | None,
        name: str | None = None,
        root: bool = False,
    ) -> Response:
        start_ns = time.time_ns()
        request_id = str(uuid.uuid4())
        raw = await request.body()
        self._record(request, raw)
        planned = self.faults.next()  # a proxy or the network fails before the model is asked
        if isinstance(planned, ErrorReply):
            return error_response(planned, request_id)
        if isinstance(planned, Fault) and planned.kind == "reset":
            return ResetResponse()
        try:
            self._check_auth(request)
            body = inbound.parse_body(raw)
            if not isinstance(body, dict):
                raise inbound.bad_request("The request body must be a JSON object.", "BAD_REQUEST")
            name, backend, chat_agent = self._lookup(body, name, root)
            can_embed = isinstance(backend, EmbeddingBackend)
            texts = inbound.embedding_texts(body, route_shape=route_shape, can_embed=can_embed)
            if texts is not None:
                return await self._embed(name, backend, texts, request_id)
            shape = inbound.detect_shape(body, route_shape=route_shape, chat_agent=chat_agent)
            inbound.validate(shape, body)
            if shape != inbound.CHAT_AGENT and (broken := self.family_rules.check(name, body)):
                raise inbound.RequestRejected(broken)
        except inbound.RequestRejected as exc:
            detail = root and exc.reply.status == 400
            return error_response(exc.reply, request_id, detail_style=detail)
        items = body["input"] if shape == inbound.RESPONSES else body["messages"]
        messages = (
            inbound.responses_messages(items)
            if shape == inbound.RESPONSES
            else inbound.chat_messages(items)
        )
        backend_request = BackendRequest(
            endpoint=name,
            shape=shape,
            messages=messages,
            body=body,
            stream=body.get("stream") is True,
            custom_inputs=body.get("custom_inputs"),
            context=body.get("context"),
            tools=inbound.chat_tools(body.get("tools")),
            headers=_redact(request.headers),
            path=request.url.path,
        )
        header = request.headers.get("x-mlflow-return-trace-id", "").lower() == "true"
        prefix = _ENCODERS[shape][2]
        ctx = WireContext(
            name, request_id, int(start_ns // 1e9), response_id=prefix + uuid.uuid4().hex[:24]
        )
        agent = chat_agent or shape == inbound.RESPONSES
        exchange = _Exchange(
            name, shape, body, ctx, start_ns, agent, header and shape == inbound.RESPONSES
        )
        exchange.fault = planned
        exchange.recorder = recorder = TraceRecorder.start(name, agent=agent, body=body)
        exchange.trace_id = recorder.trace_id or exchange.trace_id
        if self.long_running is not None and self.long_running.wants(body, shape):
            return await self.long_running.submit(exchange, backend, backend_request)
        try:
            result = await run_in_threadpool(recorder.call, backend.respond, backend_request)
            result = self.family_rules.observe(result)
        except Exception as exc:  # a backend bug: answer as a failing model server would
            return error_response(_backend_failure(name, exc), request_id)
        return await self._answer(exchange, result, backend_request.stream)

    async def _embed(self, name: str, backend: Any, texts: list[str], request_id: str) -> Response:
        """An OpenAI-style embeddings reply (usage counts words)."""
        try:
            vectors = await run_in_threadpool(backend.embed, texts)
        except Exception as exc:  # a backend bug: answer as a failing model server would
            return error_response(_backend_failure(name, exc), request_id)
        data = [
            {"object": "embedding", "index": i, "embedding": list(v)} for i, v in enumerate(vectors)
        ]
        words = sum(len(text.split()) for text in texts)
        usage = {"prompt_tokens": words, "total_tokens": words}
        body = {"object": "list", "model": name, "data": data, "usage": usage}
        return JSONResponse(body, 200, _common_headers(request_id))

    async def _answer(self, ex: _Exchange, result: Any, stream: bool) -> Response:
        headers = _common_headers(ex.ctx.request_id)
        if isinstance(result, ErrorReply):
            return error_response(result, ex.ctx.request_id)
        if isinstance(result, Reply) and result.quirks.json_for_stream:
            stream = False
        if isinstance(result, RawReply) and result.events is None:
            stream = False  # a relayed whole body, even for a stream request
        if ex.fault is not None:
            early = early_fault_response(ex.fault, stream, headers)
            if early is not None:
                return early
            result = padded(result, ex.fault.size) if ex.fault.kind == "oversized" else result
        if stream:
            frames = iterate_in_threadpool(self._frames(ex, result))
            return _SSEResponse(frames, headers, ex.fault.seconds if ex.fault else 30.0)
        try:
            body = await run_in_threadpool(self._whole_body, ex, result)
        except Exception as exc:  # a live stream that failed while being collected
            return error_response(_backend_failure(ex.endpoint, exc), ex.ctx.request_id)
        if ex.cut_after is not None or (ex.fault and ex.fault.kind == "drop"):
            return _CutBodyResponse(body, 200, headers)
        return JSONResponse(body, 200, headers)

    # -- whole replies -----------------------------------------------------------------------

    def _whole_body(self, ex: _Exchange, result: Any) -> dict[str, Any]:
        if isinstance(result, RawReply):
            body = dict(result.body or {})
            ex.final = Reply.text(_raw_answer(body.get("output", [])))
        else:
            pieces = [result] if isinstance(result, Reply) else result
            aggregate = Aggregate()
            for piece in expand(pieces):
                if isinstance(piece, Reply):
                    ex.ctx.adopt(piece)
                    aggregate.add_meta(piece)
                else:
                    aggregate.add(piece)
            ex.final = aggregate.reply()
            ex.cut_after = aggregate.meta.cut_after
            body = _ENCODERS[ex.shape][0](ex.final, ex.ctx)
        ex.response = dict(body)
        if ex.trace_header:
            body["metadata"] = {**(body.get("metadata") or {}), "trace_id": ex.trace_id}
        if ex.wants_trace:
            body["databricks_output"] = ex.databricks_output()
        return body

    # -- streams -----------------------------------------------------------------------------

    def _frames(self, ex: _Exchange, result: Any) -> Iterator[Any]:
        """SSE frames (bytes), or ``_CUT``/``STALL`` where the connection must drop/stall."""
        for sent, event in enumerate(self._events(ex, result)):
            if ex.cut_after is not None and sent >= ex.cut_after:
                yield _CUT
                return
            frame = sse_frame(event, ex.ctx.quirks)
            if ex.fault is not None and sent == ex.fault.after:
                yield from fault_frames(ex.fault, frame)
            else:
                yield frame

    def _events(self, ex: _Exchange, result: Any) -> Iterator[Mapping[str, Any] | str]:
        """Wire events: the last one carries ``databricks_output``; then the trace id event
        (``x-mlflow-return-trace-id``) and ``[DONE]``."""
        source = (
            _raw_events(ex, result) if isinstance(result, RawReply) else self._encoded(ex, result)
        )
        held: dict[str, Any] | None = None
        for event in source:
            if held is not None:
                yield held
            # Strings are relayed verbatim as the data line (malformed events in tests).
            held = dict(event) if isinstance(event, Mapping) else event
        if held is not None:
            if ex.wants_trace and isinstance(held, dict):
                held["databricks_output"] = ex.databricks_output()
            yield held
        if ex.trace_header:
            yield {"trace_id": ex.trace_id}
        if not ex.ctx.quirks.no_done:
            yield "[DONE]"

    def _encoded(self, ex: _Exchange, result: Any) -> Iterator[dict[str, Any]]:
        encoder = _ENCODERS[ex.shape][1](ex.ctx)
        aggregate = Aggregate()
        pieces = [result] if isinstance(result, Reply) else result
        try:
            for piece in expand(pieces):
                if isinstance(piece, Reply):
                    ex.ctx.adopt(piece)
                    aggregate.add_meta(piece)
                    ex.cut_after = aggregate.meta.cut_after
                    continue
                aggregate.add(piece)
                yield from encoder.feed(piece)
        except Exception as exc:  # a live stream that fails mid-way
            ex.error = f"{type(exc).__name__}: {exc}"
            aggregate.add_meta(Reply(stream_error=ex.error))
        ex.final = final = aggregate.reply()
        ex.response = _ENCODERS[ex.shape][0](final, ex.ctx)
        meta = aggregate.meta
        if meta.stream_error:
            ex.error = meta.stream_error
            yield from encoder.fail(meta.stream_error_code, meta.stream_error)
            return
        tail = encoder.close(final)
        if final.custom_outputs is not None:
            tail[-1]["custom_outputs"] = dict(final.custom_outputs)
        yield from tail


def _backend_failure(name: str, exc: Exception) -> ErrorReply:
    message = f"The backend of endpoint '{name}' failed: {type(exc).__name__}: {exc}"
    return ErrorReply(500, "INTERNAL_ERROR", message)


def _raw_answer(output: Any) -> str:
    texts = []
    for item in output if isinstance(output, list) else []:
        if isinstance(item, Mapping) and item.get("type") == "message":
            texts += [
                p.get("text", "") for p in item.get("content") or [] if isinstance(p, Mapping)
            ]
    return "".join(texts)


def _raw_events(ex: _Exchange, result: RawReply) -> Iterator[Mapping[str, Any]]:
    """A relayed stream; items of ``output_item.done`` events make the trace's output."""
    items: list[Any] = []
    ex.ctx.quirks = Quirks()
    try:
        for event in result.events or ():
            if isinstance(event, Mapping) and event.get("type") == "response.output_item.done":
                items.append(event.get("item"))
            yield event
    except Exception as exc:  # as MLflow's AgentServer reports a failing stream
        ex.error = str(exc)
        yield {"error": str(exc)}
    ex.final = Reply.text(_raw_answer(items))
    ex.response = {"object": "response", "output": items}
