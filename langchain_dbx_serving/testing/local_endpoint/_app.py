"""The local endpoint's Starlette app: the parts put together, and the path of one request.

Each concern has its module: routing and endpoint lookup (``_routes``), the bearer check
(``_auth``), the record of what was received (``_recording``), planned network faults and cut
connections (``_faults``), the wire encoding of a backend's result (``_encoding``). This module
owns only the order in which a model request meets them: record, planned failure, auth, decode
and validate, backend, then the answer (whole or streamed, with the fault applied).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from langchain_dbx_serving.testing.local_endpoint import _encoding as encoding
from langchain_dbx_serving.testing.local_endpoint import _faults
from langchain_dbx_serving.testing.local_endpoint import _inbound as inbound
from langchain_dbx_serving.testing.local_endpoint._auth import BearerAuth, without_credential
from langchain_dbx_serving.testing.local_endpoint._error_replies import (
    common_headers,
    error_response,
)
from langchain_dbx_serving.testing.local_endpoint._exchange import Exchange
from langchain_dbx_serving.testing.local_endpoint._family_rules import FamilyRules
from langchain_dbx_serving.testing.local_endpoint._recording import RecordedRequest, RequestLog
from langchain_dbx_serving.testing.local_endpoint._routes import Directory, Routes
from langchain_dbx_serving.testing.local_endpoint._trace import TraceRecorder
from langchain_dbx_serving.testing.local_endpoint._wire import WireContext
from langchain_dbx_serving.testing.local_endpoint.backends import (
    Backend,
    BackendRequest,
    EmbeddingBackend,
)
from langchain_dbx_serving.testing.local_endpoint.replies import ErrorReply, FaultPlan

__all__ = ["RecordedRequest", "ServingApp"]


class ServingApp:
    """The ASGI app (``app``) and its state: the served endpoints (``directory``), the token
    (``auth``), the received requests (``log``, ``requests``), the fault plan and the
    long-running mode."""

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
        self.directory = Directory(endpoints, default, chat_agents=chat_agents, root=root)
        self.auth = BearerAuth(token)
        self.log = RequestLog()
        self.requests: list[RecordedRequest] = self.log.requests
        self.faults = faults if faults is not None else FaultPlan()
        self.family_rules = FamilyRules()
        routes = Routes(self.handle, self.directory, self.auth, self.log)
        table = routes.table()
        if long_running is not None:
            table += long_running.routes(self)
        starlette = Starlette(routes=table, exception_handlers={HTTPException: routes.no_route})
        self.app = _faults.ExposeConnection(starlette)

    @property
    def endpoints(self) -> Mapping[str, Backend] | None:
        """The backends by endpoint name (``None`` when one backend serves every name)."""
        return self.directory.endpoints

    @property
    def default(self) -> Backend | None:
        """The backend serving every name, when there is no mapping."""
        return self.directory.default

    @property
    def root(self) -> str:
        """The name of the agent served at the root routes."""
        return self.directory.root

    async def handle(
        self,
        request: Request,
        *,
        route_shape: str | None,
        name: str | None = None,
        root: bool = False,
    ) -> Response:
        """Answer a model request (chat, responses, ChatAgent or embeddings)."""
        start_ns = time.time_ns()
        request_id = str(uuid.uuid4())
        raw = await request.body()
        self.log.record(request, raw)
        planned = self.faults.next()  # a proxy or the network fails before the model is asked
        early = _faults.before_model(planned, request_id)
        if early is not None:
            return early
        try:
            self.auth.check(request)
            body = inbound.parse_body(raw)
            if not isinstance(body, dict):
                raise inbound.bad_request("The request body must be a JSON object.", "BAD_REQUEST")
            name, backend, chat_agent = self.directory.lookup(body, name, root)
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
            headers=without_credential(request.headers),
            path=request.url.path,
        )
        header = request.headers.get("x-mlflow-return-trace-id", "").lower() == "true"
        ctx = WireContext(
            name, request_id, int(start_ns // 1e9), response_id=encoding.response_id(shape)
        )
        agent = chat_agent or shape == inbound.RESPONSES
        exchange = Exchange(
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
        return JSONResponse(body, 200, common_headers(request_id))

    async def _answer(self, ex: Exchange, result: Any, stream: bool) -> Response:
        headers = common_headers(ex.ctx.request_id)
        if isinstance(result, ErrorReply):
            return error_response(result, ex.ctx.request_id)
        stream = encoding.streams(result, stream)
        if ex.fault is not None:
            early = _faults.early_fault_response(ex.fault, stream, headers)
            if early is not None:
                return early
            result = (
                _faults.padded(result, ex.fault.size) if ex.fault.kind == "oversized" else result
            )
        if stream:
            frames = iterate_in_threadpool(_faults.frames(ex, encoding.events(ex, result)))
            return _faults.SSEResponse(frames, headers, ex.fault.seconds if ex.fault else 30.0)
        try:
            body = await run_in_threadpool(encoding.whole_body, ex, result)
        except Exception as exc:  # a live stream that failed while being collected
            return error_response(_backend_failure(ex.endpoint, exc), ex.ctx.request_id)
        if ex.cut_after is not None or (ex.fault and ex.fault.kind == "drop"):
            return _faults.CutBodyResponse(body, 200, headers)
        return JSONResponse(body, 200, headers)


def _backend_failure(name: str, exc: Exception) -> ErrorReply:
    message = f"The backend of endpoint '{name}' failed: {type(exc).__name__}: {exc}"
    return ErrorReply(500, "INTERNAL_ERROR", message)
