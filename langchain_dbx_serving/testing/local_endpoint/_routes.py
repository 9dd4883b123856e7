"""The local endpoint's routing: which handler answers a path, and which backend a name means.

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

import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from langchain_dbx_serving.testing.local_endpoint import _inbound as inbound
from langchain_dbx_serving.testing.local_endpoint._auth import BearerAuth
from langchain_dbx_serving.testing.local_endpoint._error_replies import error_response
from langchain_dbx_serving.testing.local_endpoint._recording import RequestLog
from langchain_dbx_serving.testing.local_endpoint.backends import Backend
from langchain_dbx_serving.testing.local_endpoint.replies import ErrorReply

__all__ = ["Directory", "Routes"]

# app.handle(request, route_shape=..., name=..., root=...): the answer to a model request.
Handler = Callable[..., Awaitable[Response]]


class Directory:
    """The served endpoints: backends by name (or one ``default`` for every name), the name of
    the agent at the root, and which names answer in ChatAgent shape."""

    def __init__(
        self,
        endpoints: Mapping[str, Backend] | None,
        default: Backend | None,
        *,
        chat_agents: bool | frozenset[str],
        root: str,
    ) -> None:
        self.endpoints = endpoints
        self.default = default
        self.chat_agents = chat_agents
        self.root = root

    def backend(self, name: str | None = None) -> Backend:
        """The backend serving ``name`` (or the single backend); ``KeyError`` when unknown."""
        if self.endpoints is None:
            assert self.default is not None
            return self.default
        return self.endpoints[name or self.root]

    def lookup(
        self, body: Mapping[str, Any], name: str | None, root: bool
    ) -> tuple[str, Backend, bool]:
        """The endpoint name, its backend and whether it is a ChatAgent; a 400/404
        :class:`~._inbound.RequestRejected` as Databricks answers when there is none."""
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


class Routes:
    """The URL table: model requests go to ``handle`` with the shape the route fixes; the
    small GET APIs (health, agent info, Apps, serving-endpoints) are answered here."""

    def __init__(
        self, handle: Handler, directory: Directory, auth: BearerAuth, log: RequestLog
    ) -> None:
        self.handle = handle
        self.directory = directory
        self.auth = auth
        self.log = log

    def table(self) -> list[Route]:
        return [
            Route("/serving-endpoints/chat/completions", self._chat, methods=["POST"]),
            Route("/serving-endpoints/responses", self._responses, methods=["POST"]),
            Route("/serving-endpoints/embeddings", self._embeddings, methods=["POST"]),
            Route("/serving-endpoints/{name}/invocations", self._invocations, methods=["POST"]),
            *(
                Route(f"/ai-gateway/{api}/v1/{path}", handler, methods=["POST"])
                for api in ("mlflow", "openai")
                for path, handler in (
                    ("chat/completions", self._chat),
                    ("responses", self._responses),
                )
            ),
            Route("/api/2.0/apps/{name}", self._app_lookup, methods=["GET"]),
            Route("/invocations", self._root_invocations, methods=["POST"]),
            Route("/responses", self._root_responses, methods=["POST"]),
            Route("/health", self._health, methods=["GET"]),
            Route("/agent/info", self._agent_info, methods=["GET"]),
            Route("/api/2.0/serving-endpoints/{name}", self._endpoint_info, methods=["GET"]),
        ]

    # -- model requests ------------------------------------------------------------------------

    async def _chat(self, request: Request) -> Response:
        return await self.handle(request, route_shape=inbound.CHAT_COMPLETIONS)

    async def _responses(self, request: Request) -> Response:
        return await self.handle(request, route_shape=inbound.RESPONSES)

    async def _embeddings(self, request: Request) -> Response:
        return await self.handle(request, route_shape=inbound.EMBEDDINGS)

    async def _invocations(self, request: Request) -> Response:
        return await self.handle(request, route_shape=None, name=request.path_params["name"])

    async def _root_invocations(self, request: Request) -> Response:
        return await self.handle(request, route_shape=None, root=True)

    async def _root_responses(self, request: Request) -> Response:
        return await self.handle(request, route_shape=inbound.RESPONSES, root=True)

    # -- the small GET APIs --------------------------------------------------------------------

    async def _app_lookup(self, request: Request) -> Response:
        """The workspace Apps API: the agent served at the root is the App named ``root``."""
        self.log.record(request, b"")
        try:
            self.auth.check(request)
        except inbound.RequestRejected as exc:
            return error_response(exc.reply, str(uuid.uuid4()))
        name = request.path_params["name"]
        if name != self.directory.root:
            message = f"App with name {name} does not exist or is deleted."
            reply = ErrorReply(404, "RESOURCE_DOES_NOT_EXIST", message)
            return error_response(reply, str(uuid.uuid4()))
        return JSONResponse({"name": name, "url": str(request.base_url).rstrip("/")})

    async def _health(self, request: Request) -> Response:
        return JSONResponse({"status": "healthy"})

    async def _agent_info(self, request: Request) -> Response:
        info = {"name": self.directory.root, "use_case": "agent", "agent_api": "responses"}
        return JSONResponse(info)

    async def _endpoint_info(self, request: Request) -> Response:
        """The serving-endpoints GET API (what ``model.check()`` asks), in short."""
        try:
            self.auth.check(request)
            name, _backend, _agent = self.directory.lookup({}, request.path_params["name"], False)
        except inbound.RequestRejected as exc:
            return error_response(exc.reply, str(uuid.uuid4()))
        state = {"ready": "READY", "config_update": "NOT_UPDATING"}
        return JSONResponse({"name": name, "state": state, "creator": "local"})

    async def no_route(self, request: Request, exc: Exception) -> Response:
        """What a path (or method) nothing serves gets: Databricks' 404 / 400."""
        status = getattr(exc, "status_code", 404)
        message = f"No API found for '{request.method} {request.url.path}'"
        code = "ENDPOINT_NOT_FOUND" if status == 404 else "BAD_REQUEST"
        return error_response(ErrorReply(status, code, message), str(uuid.uuid4()))
