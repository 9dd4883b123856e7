"""``ChatDatabricksResponses``: responses-style agent endpoints (ResponsesAgent, agent Apps)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal, get_args

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun
from langchain_core.language_models import LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_core.tools import BaseTool
from pydantic import PrivateAttr, field_validator

from langchain_dbx_serving._paths import endpoint_segment
from langchain_dbx_serving.background import BackgroundRun
from langchain_dbx_serving.chat_models import _background, _routes
from langchain_dbx_serving.chat_models._base import DatabricksChatBase, PreparedCall
from langchain_dbx_serving.protocols import responses
from langchain_dbx_serving.protocols._seam import WireProtocol

if TYPE_CHECKING:
    from langchain_dbx_serving.tracing._surface import TraceSurfacer

# MLflow's AgentServer returns the trace id only when asked with this header.
_TRACE_ID_HEADER = {"x-mlflow-return-trace-id": "true"}


class ChatDatabricksResponses(DatabricksChatBase):
    """Chat model for agent endpoints that speak the responses protocol.

    Targets MLflow ``ResponsesAgent`` endpoints on Model Serving (through the OpenAI-compatible
    ``/serving-endpoints/responses`` route, or ``/{endpoint}/invocations`` with
    ``route="invocations"``) and agents served by MLflow's ``AgentServer`` as Apps (by name
    with ``endpoint="apps/<name>"``, or the app's URL as ``base_url``). ``custom_outputs``,
    ``trace_id`` and the returned ``trace`` land in ``response_metadata`` (and in
    ``on_llm_end``, the ``databricks_trace`` custom event and the caller's MLflow trace: see
    ``langchain_dbx_serving.tracing``); every output item is kept under
    ``response_metadata["output"]``.

    Example:
        .. code-block:: python

            from langchain_dbx_serving import ChatDatabricksResponses

            agent = ChatDatabricksResponses(endpoint="my-agent", return_trace=True)
            reply = agent.invoke("Summarise ticket 42", custom_inputs={"team": "support"})
            reply.text, reply.response_metadata["trace_id"]
            print(get_trace(reply).tree())  # from langchain_dbx_serving import get_trace

            app = ChatDatabricksResponses(endpoint="apps/my-agent")  # an App, by name
            for chunk in app.stream("hi"):
                print(chunk.text, end="")

    Long-running agents (a durable agent server such as databricks-ai-bridge's
    ``LongRunningAgentServer``): ``submit()`` starts a background run and returns a
    :class:`~langchain_dbx_serving.background.BackgroundRun` handle; ``invoke(...,
    background=True)`` submits and waits (``background_timeout``), reporting each poll as a
    ``databricks_background_progress`` custom event; a stream from such a server that drops is
    resumed from the last event seen (``max_resumes``), and a server-side restart
    (``response.resumed``) rotates the conversation id later calls use (see
    ``chat_models/_background.py``).

    .. code-block:: python

        run = app.submit("Write the quarterly report")
        run.to_dict()                      # {"id": "resp_...", "endpoint": "my-agent"}
        message = app.background_run(run.id).result(timeout=900)
        slow = app.bind(background=True)   # invoke() now submits and waits
    """

    route: Literal["responses", "invocations", "ai-gateway", "ai-gateway/openai"] = "responses"
    """``responses`` POSTs ``{base_url}/responses`` with ``"model": endpoint``; ``invocations``
    POSTs ``{base_url}/{endpoint}/invocations``; ``ai-gateway`` AI Gateway's unified
    ``/ai-gateway/mlflow/v1/responses`` and ``ai-gateway/openai`` its OpenAI route
    ``/ai-gateway/openai/v1/responses``."""
    app: str | None = None
    """A Databricks App to call by name (``endpoint="apps/<name>"`` works too, as with the
    official clients): its URL is looked up once with the workspace API (same credentials)
    and cached; requests go to ``{app url}/responses`` (or ``/invocations``). Apps require
    OAuth credentials on a real workspace."""

    previous_response_id: str | None = None
    """Continue a stored response: sent as ``previous_response_id`` (OpenAI-style responses
    routes; MLflow's ``ResponsesAgentRequest`` has no such field and ignores it)."""
    use_previous_response_id: bool = False
    """Like ChatOpenAI's: send the id of the latest response in the history as
    ``previous_response_id`` and only the messages after it."""
    include: list[str] | None = None
    """Extra output to include, e.g. ``["reasoning.encrypted_content"]``."""
    store: bool | None = None
    """Whether the service stores the response (needed for ``previous_response_id``)."""
    truncation: str | None = None
    """``"auto"`` or ``"disabled"``: what the service does with an input over the context."""
    context_management: Any = None
    """Sent as ``context_management`` (server-side context compaction settings)."""

    @field_validator("route", mode="before")
    @classmethod
    def _known_route(cls, value: Any) -> str:
        """A route this class serves, else a ConfigurationError naming those it does."""
        supported = get_args(cls.model_fields["route"].annotation)
        return _routes.check_route(value, supported, cls.__name__)

    max_resumes: int = 3
    """How many times a dropped stream from a durable agent server is resumed, per call."""
    background_timeout: float | None = 1800.0
    """How long ``invoke(..., background=True)`` waits for a background run (``None``: no
    limit); also a call kwarg. The run itself goes on after the wait ends."""

    _protocol: ClassVar[WireProtocol] = responses.PROTOCOL
    _conversation_aliases: dict[str, str] = PrivateAttr(default_factory=dict)
    _protocol_kind: ClassVar[Literal["chat", "responses"]] = "responses"

    @property
    def _llm_type(self) -> str:
        return "databricks-serving-responses"

    def _url(self, endpoint: str) -> str:
        app = self.app or _routes.app_name(endpoint)
        if app:
            root = _routes.app_url(self, app)
            return f"{root}/invocations" if self.route == "invocations" else f"{root}/responses"
        if self.route in _routes.GATEWAY_ROOTS:
            return _routes.gateway_url(self, self.route, "responses")
        if self.route == "invocations":
            return f"{self._root_url()}/{endpoint_segment(endpoint)}/invocations"
        return f"{self._root_url()}/responses"

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        await self._aresolve_app(kwargs)
        async for chunk in super()._astream(messages, stop, run_manager, **kwargs):
            yield chunk

    async def _aresolve_app(self, kwargs: Mapping[str, Any]) -> None:
        """Look an App's URL up off the event loop (then ``_url`` finds it cached)."""
        endpoint = kwargs.get("endpoint") or kwargs.get("model") or self.endpoint
        app = self.app or _routes.app_name(endpoint)
        if app:
            await asyncio.to_thread(_routes.app_url, self, app)

    def _route_params(self, endpoint: str) -> dict[str, Any]:
        return {"model": endpoint} if self.route != "invocations" else {}

    def _protocol_options(
        self, messages: Sequence[BaseMessage], params: dict[str, Any]
    ) -> tuple[Sequence[BaseMessage], dict[str, Any]]:
        for key in _OPTIONS:
            if key not in params and getattr(self, key) is not None:
                params[key] = getattr(self, key)
        use_previous = params.pop("use_previous_response_id", self.use_previous_response_id)
        if use_previous and "previous_response_id" not in params:
            response_id, rest = _after_last_response(messages)
            if response_id is not None:
                params["previous_response_id"] = response_id
                messages = rest
        return messages, params

    def _decode_options(self, params: Mapping[str, Any]) -> dict[str, Any]:
        # Only calls of tools the caller bound are tool_calls; the agent's own are server blocks.
        return {"client_tools": responses.tool_names(params)}

    def _responses_url(self) -> str:
        """Where background runs are retrieved: ``{base}/responses`` (the server's root), or
        the AI Gateway route's ``.../responses`` (the Supervisor API)."""
        if self.route in _routes.GATEWAY_ROOTS and not (
            self.app or _routes.app_name(self.endpoint)
        ):
            return _routes.gateway_url(self, self.route, "responses")
        return f"{self._root_url()}/responses"

    def _prepare(
        self,
        messages: Sequence[BaseMessage],
        stop: list[str] | None,
        kwargs: Mapping[str, Any],
        *,
        stream: bool,
        request: Mapping[str, Any] | None = None,
        run_manager: Any = None,
    ) -> PreparedCall:
        kwargs = {k: v for k, v in kwargs.items() if k not in _background.CALL_ONLY}
        if request:
            request = {k: v for k, v in request.items() if k not in _background.CALL_ONLY}
        call = super()._prepare(
            messages, stop, kwargs, stream=stream, request=request, run_manager=run_manager
        )
        if not self._conversation_aliases:
            return call
        body = _background.apply_aliases(self._conversation_aliases, call.body)
        return dataclasses.replace(call, body=body)

    # -- background runs and resumable streams ----------------------------------------------------
    def submit(self, input: LanguageModelInput, **kwargs: Any) -> BackgroundRun:
        """Start a background run of ``input`` and return its handle at once."""
        messages = self._convert_input(input).to_messages()
        return _background.submit(self, messages, kwargs.pop("stop", None), kwargs)

    async def asubmit(self, input: LanguageModelInput, **kwargs: Any) -> BackgroundRun:
        """Async :meth:`submit`."""
        messages = self._convert_input(input).to_messages()
        return await _background.asubmit(self, messages, kwargs.pop("stop", None), kwargs)

    def background_run(self, run_id: str, *, echoed: int = 0) -> BackgroundRun:
        """The handle of a run submitted earlier (by this or another process), by its id
        (``echoed`` as saved by ``BackgroundRun.to_dict()``)."""
        return BackgroundRun(self, run_id, echoed=echoed)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> ChatResult:
        if kwargs.get("background") is True:
            return _background.generate(self, messages, stop, run_manager, kwargs)
        return super()._generate(messages, stop, run_manager, **kwargs)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> ChatResult:
        await self._aresolve_app(kwargs)  # an App's URL is looked up off the event loop
        if kwargs.get("background") is True:
            return await _background.agenerate(self, messages, stop, run_manager, kwargs)
        return await super()._agenerate(messages, stop, run_manager, **kwargs)

    def _stream_source(
        self, call: PreparedCall, traces: TraceSurfacer, info: Any = None
    ) -> tuple[Iterator[str], Any]:
        return _background.stream_source(self, call, traces, info)

    def _astream_source(
        self, call: PreparedCall, traces: TraceSurfacer, info: Any = None
    ) -> tuple[AsyncIterator[str], Any]:
        return _background.astream_source(self, call, traces, info)

    def _headers(self, params: Mapping[str, Any]) -> dict[str, str] | None:
        options = params.get("databricks_options")
        if isinstance(options, Mapping) and options.get("return_trace"):
            return _TRACE_ID_HEADER
        return None

    def as_tool(  # type: ignore[override]
        self,
        args_schema: Any = None,
        *,
        name: str | None = None,
        description: str | None = None,
        arg_types: dict[str, type] | None = None,
        custom_inputs: Mapping[str, Any] | None = None,
        forward_custom_inputs: Sequence[str] = (),
    ) -> BaseTool:
        """This agent as a sub-agent tool: ``AgentEndpoint(chat=self).as_tool(...)``.

        Content is the answer text, ``ToolMessage.artifact`` the whole ``AgentResponse`` (see
        ``langchain_dbx_serving.agent_tool``). With ``args_schema`` or ``arg_types`` this is
        LangChain's generic ``Runnable.as_tool``.

        Example:
            .. code-block:: python

                research = ChatDatabricksResponses(endpoint="research-agent").as_tool(
                    name="research", description="Finds facts about a topic."
                )
        """
        if args_schema is not None or arg_types is not None:
            return super().as_tool(
                args_schema, name=name, description=description, arg_types=arg_types
            )
        from langchain_dbx_serving.agents import AgentEndpoint

        return AgentEndpoint(chat=self).as_tool(
            name=name,
            description=description,
            custom_inputs=custom_inputs,
            forward_custom_inputs=forward_custom_inputs,
        )


_OPTIONS = ("previous_response_id", "include", "store", "truncation", "context_management")


def _after_last_response(
    messages: Sequence[BaseMessage],
) -> tuple[str | None, Sequence[BaseMessage]]:
    """The id of the latest AI message that came from a responses call (``resp_...``, as
    ChatOpenAI checks), and the messages after it."""
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        response_id = (
            message.response_metadata.get("id") if isinstance(message, AIMessage) else None
        )
        if isinstance(response_id, str) and response_id.startswith("resp_"):
            return response_id, messages[index + 1 :]
    return None, messages
