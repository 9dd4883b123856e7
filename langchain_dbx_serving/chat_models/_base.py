"""What every chat class shares: fields, credentials, request building, the call paths.

A subclass names its wire protocol (a ``protocols._seam.WireProtocol``: ``encode_request``,
``decode_reply``, ``stream_decoder``) and its URL; everything else (merging bound kwargs over
constructor fields, tools, structured output, sync/async/stream paths) lives here once.
There is no wire-format logic in this module.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LangSmithParams, LanguageModelInput
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableConfig
from pydantic import ConfigDict, Field

from langchain_dbx_serving._connection import DatabricksConnection
from langchain_dbx_serving._frames import clears_frames
from langchain_dbx_serving.chat_models import _layers, _structured
from langchain_dbx_serving.chat_models._guard import (
    Decoding,
    KeepPartial,
    auntil_complete,
    until_complete,
)
from langchain_dbx_serving.chat_models._tools import (
    check_tool_choice,
    format_tools,
    normalize_tool_choice,
)
from langchain_dbx_serving.protocols import _families
from langchain_dbx_serving.protocols._seam import WireProtocol
from langchain_dbx_serving.tracing import _runs
from langchain_dbx_serving.tracing._propagation import with_trace_context
from langchain_dbx_serving.tracing._surface import RunManager, TraceSurfacer

# Call kwargs that steer the call itself and are never sent as body keys.
_CALL_ONLY = ("stream", "endpoint", "model", "extra_body", "return_trace", "stream_usage")
# Steers the trace context sent with the call (tracing/_propagation.py); never sent as a key.
_CALL_ONLY += ("propagate_trace_context",)


@dataclass(frozen=True)
class PreparedCall:
    """Everything needed to send one request: where, what, with which extra headers."""

    endpoint: str
    url: str
    body: dict[str, Any]
    headers: dict[str, str] | None
    decode_options: dict[str, Any]
    stream_usage: bool = True


class DatabricksChatBase(DatabricksConnection, BaseChatModel):
    """Shared base of the chat classes; not used directly."""

    model_config = ConfigDict(
        populate_by_name=True, arbitrary_types_allowed=True, protected_namespaces=()
    )

    endpoint: str = Field(alias="model")
    """Name of the serving endpoint (``model`` is accepted as an alias)."""
    temperature: float | None = None
    max_tokens: int | None = None
    stop: list[str] | None = None
    n: int | None = None
    custom_inputs: dict[str, Any] | None = None
    """Sent as ``custom_inputs``; call-time ``custom_inputs`` are merged over these."""
    context: dict[str, Any] | None = None
    """Agent ``context`` (``conversation_id``, ``user_id``); merged like ``custom_inputs``."""
    databricks_options: dict[str, Any] | None = None
    """Sent as ``databricks_options`` only when set (Foundation Model APIs reject it)."""
    return_trace: bool = False
    """Shorthand for ``databricks_options={"return_trace": True}``."""
    merge_mlflow_trace: bool = True
    """Merge a returned trace under the caller's active MLflow span (``@mlflow.trace``,
    ``mlflow.start_span``, mlflow's LangChain autolog). Needs mlflow already imported."""
    trace_destination: dict[str, Any] | None = None
    """Sent as ``trace_destination`` (``{"catalog_name", "schema_name"[, "table_prefix"]}``):
    where an agent API that honours ``traceparent`` writes its spans (Supervisor API)."""
    extra_body: dict[str, Any] | None = None
    """Any other keys to send at the top level of the request body."""
    streaming: bool = False
    """Whether ``invoke`` should stream under the hood (LangChain convention)."""
    stream_usage: bool = True
    """Whether streams carry ``usage_metadata`` (on their last chunk); also a call kwarg."""
    reasoning_effort: str | None = None
    """One reasoning knob, mapped per model family (``docs/models.md``): ``reasoning_effort``
    for OpenAI-family and Gemini models; Claude takes ``reasoning={"budget_tokens": N}``."""
    reasoning: dict[str, Any] | None = None
    """``{"effort", "budget_tokens", "summary"}``, mapped per family like ``reasoning_effort``.
    Used when a call passes neither ``reasoning`` nor ``reasoning_effort``."""
    model_family: _families.Family | None = None
    """Family of the served model (``claude``, ``gemini-2.5``, ``gemini-3``, ``openai``,
    ``other``); default: from the endpoint name. ``other`` sends fields unchanged."""

    _protocol: ClassVar[WireProtocol]
    """The wire protocol (``chat_completions.PROTOCOL`` or ``responses.PROTOCOL``)."""
    _protocol_kind: ClassVar[_families.Protocol] = "chat"

    @property
    def model(self) -> str:
        """The endpoint name, under databricks-langchain's and langchain-openai's name."""
        return self.endpoint

    # -- LangChain plumbing -----------------------------------------------------------------------
    # Not lc-serializable: langchain-core 1.x's load() revives only classes in its own
    # mapping (or an explicit allowlist), so a dumpd() manifest of ours could not be loaded by
    # generic LangChain code anyway. dumpd() gives a "not_implemented" stub whose repr masks
    # the token. Pickling (for Spark / multiprocessing) is supported separately.

    @property
    def lc_secrets(self) -> dict[str, str]:
        return {"token": "DATABRICKS_TOKEN"}

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "stop": self.stop,
            "n": self.n,
            "custom_inputs": self.custom_inputs,
            "databricks_options": self._databricks_options(),
            "extra_body": self.extra_body,
            "reasoning_effort": self.reasoning_effort,
            "reasoning": self.reasoning,
            "model_family": self.model_family,
        }

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = LangSmithParams(
            ls_provider="databricks",
            ls_model_name=kwargs.get("model") or kwargs.get("endpoint") or self.endpoint,
            ls_model_type="chat",
        )
        temperature = kwargs.get("temperature", self.temperature)
        if isinstance(temperature, (int, float)):
            params["ls_temperature"] = temperature
        max_tokens = kwargs.get("max_tokens", self.max_tokens)
        if isinstance(max_tokens, int):
            params["ls_max_tokens"] = max_tokens
        if stop := stop or kwargs.get("stop") or self.stop:
            params["ls_stop"] = stop
        return params

    def _resolve_model_profile(self) -> Any:
        """What Databricks documents about the model behind the endpoint (docs/models.md)."""
        return _families.profile_for(
            self._family(self.endpoint), self.endpoint, self._protocol_kind
        )

    # -- subclass hooks ---------------------------------------------------------------------------
    def _url(self, endpoint: str) -> str:
        raise NotImplementedError

    def _route_params(self, endpoint: str) -> dict[str, Any]:
        """Body keys the route itself needs (e.g. ``model`` on OpenAI-compatible routes)."""
        return {}

    def _headers(self, params: Mapping[str, Any]) -> dict[str, str] | None:
        return None

    def _protocol_options(
        self, messages: Sequence[BaseMessage], params: dict[str, Any]
    ) -> tuple[Sequence[BaseMessage], dict[str, Any]]:
        """Protocol-specific options applied before encoding (e.g. ``previous_response_id``)."""
        return messages, params

    def _decode_options(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Keyword arguments for the protocol's ``decode_reply`` and ``StreamDecoder``."""
        return {}

    def _stream_source(
        self, call: PreparedCall, traces: TraceSurfacer, info: Decoding | None = None
    ) -> tuple[Iterator[str], Any]:
        """The SSE payloads of a stream call and the decoder to feed them to."""
        events = self.transport.stream(
            call.url, call.body, endpoint=call.endpoint, headers=call.headers, info=info
        )
        return events, self._protocol.stream_decoder(**call.decode_options)

    def _astream_source(
        self, call: PreparedCall, traces: TraceSurfacer, info: Decoding | None = None
    ) -> tuple[AsyncIterator[str], Any]:
        """Async :meth:`_stream_source`."""
        events = self.transport.astream(
            call.url, call.body, endpoint=call.endpoint, headers=call.headers, info=info
        )
        return events, self._protocol.stream_decoder(**call.decode_options)

    # -- building a request -----------------------------------------------------------------------
    def _databricks_options(self) -> dict[str, Any] | None:
        options = dict(self.databricks_options or {})
        if self.return_trace:
            options["return_trace"] = True
        return options or None

    def _params(
        self,
        stop: list[str] | None,
        kwargs: Mapping[str, Any],
        request: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The body parameters: constructor < each ``bind`` < ``request`` < call kwargs.

        ``custom_inputs``, ``databricks_options`` and ``context`` merge key by key across
        these layers (``None`` removes a key); other keys: the last layer wins.
        """
        _layers.check_call_kwargs(kwargs, type(self).__name__)
        bound, call = _layers.split_call_kwargs(kwargs)
        constructor: dict[str, Any] = {
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "stop": self.stop or None,
            "n": self.n,
            "custom_inputs": self.custom_inputs,
            "context": self.context,
            "databricks_options": self._databricks_options(),
            "trace_destination": self.trace_destination,
        }
        params: dict[str, Any] = {}
        layers = [constructor, self.extra_body or {}]
        for kwarg_layer in (bound, request, call):
            if kwarg_layer:  # an empty layer sets nothing (the usual bound/request/call)
                layers += _kwarg_layers(kwarg_layer)
        for layer in layers:
            for key, value in layer.items():
                if key in _layers.MERGED_KEYS:
                    params[key] = _layers.merge_layers(params.get(key), value)
                else:
                    params[key] = value
        if stop is not None:
            params["stop"] = stop or None
        if "tool_choice" in params:
            params["tool_choice"] = normalize_tool_choice(params["tool_choice"])
        return {k: v for k, v in params.items() if v is not None}

    def _family_rules(self, endpoint: str, params: dict[str, Any]) -> dict[str, Any]:
        """The reasoning knob mapped and the family's rules checked (``protocols/_families``)."""
        if "reasoning" not in params and "reasoning_effort" not in params:
            if self.reasoning is not None:
                params["reasoning"] = self.reasoning
            if self.reasoning_effort is not None:
                params["reasoning_effort"] = self.reasoning_effort
        return _families.apply_family_rules(
            params, family=self._family(endpoint), protocol=self._protocol_kind, endpoint=endpoint
        )

    def _family(self, endpoint: str) -> str:
        return self.model_family or _families.detect_family(endpoint)

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
        request = request or {}
        endpoint = (
            kwargs.get("endpoint")
            or kwargs.get("model")
            or request.get("endpoint")
            or request.get("model")
            or self.endpoint
        )
        params = self._family_rules(endpoint, self._params(stop, kwargs, request))
        messages, params = self._protocol_options(messages, params)
        params.update(self._route_params(endpoint))
        body = self._protocol.encode_request(messages, params, stream=stream)
        body = _families.apply_body_rules(
            body, family=self._family(endpoint), protocol=self._protocol_kind, endpoint=endpoint
        )
        stream_usage = kwargs.get("stream_usage")
        propagate = kwargs.get("propagate_trace_context", self.propagate_trace_context)
        headers = with_trace_context(
            self._headers(params), _runs.run_of(run_manager), enabled=bool(propagate)
        )
        return PreparedCall(
            endpoint,
            self._url(endpoint),
            body,
            headers,
            self._decode_options(params),
            self.stream_usage if stream_usage is None else bool(stream_usage),
        )

    def prepare_call(
        self,
        messages: Sequence[BaseMessage],
        kwargs: Mapping[str, Any] | None = None,
        *,
        stream: bool = False,
        stop: list[str] | None = None,
        request: Mapping[str, Any] | None = None,
        run_manager: RunManager | None = None,
    ) -> PreparedCall:
        """The request one call would send, without sending it (for glue that sends it itself,
        such as ``AgentEndpoint``): endpoint, URL, encoded body, extra headers, decode options.

        ``kwargs`` are call kwargs, layered over bound and constructor settings as in
        ``invoke``; ``request`` holds a request dict's own body keys (``custom_inputs``,
        ``context``, ...), between the two; ``run_manager`` is the run whose trace context
        the headers carry. Subclasses extend :meth:`_prepare`, which this calls.

        Example:
            .. code-block:: python

                call = chat.prepare_call([HumanMessage("hi")], {"temperature": 0})
                call.url, call.body["messages"], call.headers
        """
        return self._prepare(
            messages, stop, kwargs or {}, stream=stream, request=request, run_manager=run_manager
        )

    # -- the run, where LangChain does not pass it (see tracing/_runs.py) --------------------------
    def stream(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> Iterator[AIMessageChunk]:
        config, run = _runs.stream_run(self, config, is_async=False)
        chunks = super().stream(input, config, stop=stop, **kwargs)
        yield from _runs.step_in_run(run, chunks)

    async def astream(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[AIMessageChunk]:
        config, run = _runs.stream_run(self, config, is_async=True)
        chunks = super().astream(input, config, stop=stop, **kwargs)
        async for chunk in _runs.astep_in_run(run, chunks):
            yield chunk

    def _generate_with_cache(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        with _runs.current_run(run_manager):
            return super()._generate_with_cache(messages, stop, run_manager, **kwargs)

    async def _agenerate_with_cache(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        with _runs.current_run(run_manager):
            return await super()._agenerate_with_cache(messages, stop, run_manager, **kwargs)

    # -- the four call paths ----------------------------------------------------------------------
    def _surfacer(self, call: PreparedCall, run_manager: RunManager | None) -> TraceSurfacer:
        run = _runs.run_of(run_manager)
        return TraceSurfacer(call.endpoint, run, merge=self.merge_mlflow_trace)

    @clears_frames
    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        call = self._prepare(messages, stop, kwargs, stream=False)
        guard = Decoding(call.endpoint)
        reply = self.transport.post_json(
            call.url, call.body, endpoint=call.endpoint, headers=call.headers, info=guard
        )
        result = _finish_reasons(
            guard.reply(self._protocol.decode_reply, reply, **call.decode_options)
        )
        return self._surfacer(call, run_manager).result(result)

    @clears_frames
    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        call = self._prepare(messages, stop, kwargs, stream=False)
        guard = Decoding(call.endpoint)
        reply = await self.transport.apost_json(
            call.url, call.body, endpoint=call.endpoint, headers=call.headers, info=guard
        )
        result = _finish_reasons(
            guard.reply(self._protocol.decode_reply, reply, **call.decode_options)
        )
        return await self._surfacer(call, run_manager).aresult(result)

    @clears_frames
    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        call = self._prepare(messages, stop, kwargs, stream=True)
        traces = self._surfacer(call, run_manager)
        received: list[AIMessageChunk] = []
        guard = Decoding(call.endpoint)
        events, decoder = self._stream_source(call, traces, guard)
        with KeepPartial(received, call.endpoint):
            for data in until_complete(events, decoder):
                try:  # guard.event(data), without a scope object per event
                    chunks = decoder.feed(data)
                except Exception as exc:
                    if (typed := guard.typed(exc, data)) is None:
                        raise
                    raise typed from None
                for chunk in chunks:
                    received.append(chunk)
                    yield _finished(traces.chunk(_usage_if(call, chunk)))
            with guard.event("<end of stream>"):
                chunks = decoder.finish()
            for chunk in chunks:
                yield _finished(traces.chunk(_usage_if(call, chunk)))

    @clears_frames
    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        call = self._prepare(messages, stop, kwargs, stream=True)
        traces = self._surfacer(call, run_manager)
        received: list[AIMessageChunk] = []
        guard = Decoding(call.endpoint)
        events, decoder = self._astream_source(call, traces, guard)
        with KeepPartial(received, call.endpoint):
            async for data in auntil_complete(events, decoder):
                try:  # guard.event(data), without a scope object per event
                    chunks = decoder.feed(data)
                except Exception as exc:
                    if (typed := guard.typed(exc, data)) is None:
                        raise
                    raise typed from None
                for chunk in chunks:
                    received.append(chunk)
                    yield _finished(await traces.achunk(_usage_if(call, chunk)))
            with guard.event("<end of stream>"):
                chunks = decoder.finish()
            for chunk in chunks:
                yield _finished(await traces.achunk(_usage_if(call, chunk)))

    # -- tools and structured output --------------------------------------------------------------
    def bind(self, **kwargs: Any) -> Runnable[LanguageModelInput, BaseMessage]:
        """Bind call kwargs; ``custom_inputs``, ``databricks_options`` and ``context`` merge
        key by key with the constructor's, other binds' and the call's (``None`` removes)."""
        _layers.check_call_kwargs(kwargs, type(self).__name__)
        return _layers.DatabricksBinding(bound=self, kwargs=_layers.bind_kwargs({}, kwargs))

    def _tool_binding_kwargs(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | Any],
        *,
        tool_choice: str | dict[str, Any] | bool | None = None,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        formatted = format_tools(tools, strict=strict)
        if not formatted:
            # OpenAI-compatible routes answer 400 to "tools": [] ("[] is too short"), and
            # create_agent binds an empty list when it has no tools: send neither key.
            choice = normalize_tool_choice(tool_choice) if tool_choice is not None else None
            if choice not in (None, "auto", "none"):
                raise ValueError(
                    f"tool_choice={tool_choice!r} asks for a tool call, but no tools are bound: "
                    "pass the tools, or leave tool_choice out"
                )
            return dict(kwargs)
        if tool_choice is not None:
            kwargs["tool_choice"] = check_tool_choice(normalize_tool_choice(tool_choice), formatted)
        return {"tools": formatted, **kwargs}

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | Any],
        *,
        tool_choice: str | dict[str, Any] | bool | None = None,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, BaseMessage]:
        """Bind tools (LangChain tools, functions, pydantic models or OpenAI tool dicts).

        ``tool_choice``: ``"auto"``, ``"none"``, ``"required"``/``"any"``, a tool name, or a dict;
        naming a tool that is not in ``tools`` raises ``ValueError`` here, not at the endpoint.
        """
        tool_kwargs = self._tool_binding_kwargs(
            tools, tool_choice=tool_choice, strict=strict, **kwargs
        )
        return self.bind(**tool_kwargs)

    def with_structured_output(  # type: ignore[override]
        self,
        schema: dict[str, Any] | type | None = None,
        *,
        method: _structured.Method | None = None,
        include_raw: bool = False,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, dict[str, Any] | Any]:
        """Return a runnable whose output matches ``schema``.

        ``method``: ``"function_calling"`` (a forced tool call), ``"json_schema"``
        (``response_format`` with the schema) or ``"json_mode"`` (``{"type": "json_object"}``);
        by default ``"json_schema"`` when ``model.profile`` says the model supports native
        structured output, else ``"function_calling"`` (``docs/models.md``).
        With ``include_raw=True`` the output is ``{"raw", "parsed", "parsing_error"}``.
        """
        return _structured.build(
            self,
            schema,
            method=method or _structured.default_method(self.profile),
            include_raw=include_raw,
            strict=strict,
            endpoint=self.endpoint,
            **kwargs,
        )


def _kwarg_layers(kwargs: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The body parameters one layer of kwargs sets: its keys, its extra_body, return_trace."""
    body = {k: v for k, v in kwargs.items() if k not in _CALL_ONLY and not _consumed(k)}
    layers = [body, dict(kwargs.get("extra_body") or {})]
    if kwargs.get("return_trace") is not None:
        layers.append({"databricks_options": {"return_trace": bool(kwargs["return_trace"])}})
    return layers


def _consumed(key: str) -> bool:
    """Kwargs langchain-core takes for itself (tracing hints), never body keys."""
    return key.startswith("ls_") or key == "structured_output_format"


def _usage_if(call: PreparedCall, chunk: AIMessageChunk) -> AIMessageChunk:
    """``stream_usage=False``: the stream carries no ``usage_metadata``."""
    if call.stream_usage or chunk.usage_metadata is None:
        return chunk
    return chunk.model_copy(update={"usage_metadata": None})


def _finished(generation: ChatGenerationChunk) -> ChatGenerationChunk:
    """``generation_info["finish_reason"]`` on the chunk that carries it (as langchain-openai)."""
    reason = generation.message.response_metadata.get("finish_reason")
    if reason is not None:
        generation.generation_info = {**(generation.generation_info or {}), "finish_reason": reason}
    return generation


def _finish_reasons(result: ChatResult) -> ChatResult:
    for generation in result.generations:
        reason = generation.message.response_metadata.get("finish_reason")
        if reason is not None:
            generation.generation_info = {
                **(generation.generation_info or {}),
                "finish_reason": reason,
            }
    return result
