"""What every chat class shares: fields, credentials, request building, the call paths.

A subclass names its protocol module (``encode_request``/``decode_reply``/``StreamDecoder``)
and its URL; everything else (merging bound kwargs over constructor fields, tools, structured
output, sync/async/stream paths) lives here once. There is no wire-format logic in this module.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any, ClassVar

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LangSmithParams, LanguageModelInput
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableConfig
from pydantic import ConfigDict, Field

from langchain_dbx_serving._connection import DatabricksConnection
from langchain_dbx_serving.chat_models import _structured
from langchain_dbx_serving.chat_models._guard import (
    Decoding,
    KeepPartial,
    auntil_complete,
    until_complete,
)
from langchain_dbx_serving.chat_models._tools import format_tools, normalize_tool_choice
from langchain_dbx_serving.tracing import _runs
from langchain_dbx_serving.tracing._surface import RunManager, TraceSurfacer

# Body keys whose dict values are merged key by key (call over constructor), not replaced.
_MERGED_KEYS = ("custom_inputs", "databricks_options", "context")
# Call kwargs that steer the call itself and are never sent as body keys.
_CALL_ONLY = ("stream", "endpoint", "model", "extra_body", "return_trace")


@dataclass(frozen=True)
class PreparedCall:
    """Everything needed to send one request: where, what, with which extra headers."""

    endpoint: str
    url: str
    body: dict[str, Any]
    headers: dict[str, str] | None
    decode_options: dict[str, Any]


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
    extra_body: dict[str, Any] | None = None
    """Any other keys to send at the top level of the request body."""
    streaming: bool = False
    """Whether ``invoke`` should stream under the hood (LangChain convention)."""

    _protocol: ClassVar[ModuleType]

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

    # -- subclass hooks ---------------------------------------------------------------------------
    def _url(self, endpoint: str) -> str:
        raise NotImplementedError

    def _route_params(self, endpoint: str) -> dict[str, Any]:
        """Body keys the route itself needs (e.g. ``model`` on OpenAI-compatible routes)."""
        return {}

    def _headers(self, params: Mapping[str, Any]) -> dict[str, str] | None:
        return None

    def _decode_options(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Keyword arguments for the protocol's ``decode_reply`` and ``StreamDecoder``."""
        return {}

    # -- building a request -----------------------------------------------------------------------
    def _databricks_options(self) -> dict[str, Any] | None:
        options = dict(self.databricks_options or {})
        if self.return_trace:
            options["return_trace"] = True
        return options or None

    def _params(self, stop: list[str] | None, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """Constructor fields, then ``extra_body``, then call kwargs (``bind``/``invoke``)."""
        params: dict[str, Any] = {
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "stop": self.stop or None,
            "n": self.n,
            "custom_inputs": self.custom_inputs,
            "context": self.context,
            "databricks_options": self._databricks_options(),
        }
        params.update(self.extra_body or {})
        call = {k: v for k, v in kwargs.items() if k not in _CALL_ONLY}
        call.update(kwargs.get("extra_body") or {})
        if kwargs.get("return_trace") is not None:
            call["databricks_options"] = {
                **(call.get("databricks_options") or {}),
                "return_trace": bool(kwargs["return_trace"]),
            }
        for key, value in call.items():
            current = params.get(key)
            if key in _MERGED_KEYS and isinstance(value, Mapping) and isinstance(current, Mapping):
                params[key] = {**current, **value}
            else:
                params[key] = value
        if stop is not None:
            params["stop"] = stop or None
        if "tool_choice" in params:
            params["tool_choice"] = normalize_tool_choice(params["tool_choice"])
        return {k: v for k, v in params.items() if v is not None}

    def _prepare(
        self,
        messages: Sequence[BaseMessage],
        stop: list[str] | None,
        kwargs: Mapping[str, Any],
        *,
        stream: bool,
    ) -> PreparedCall:
        endpoint = kwargs.get("endpoint") or kwargs.get("model") or self.endpoint
        params = self._params(stop, kwargs)
        params.update(self._route_params(endpoint))
        body = self._protocol.encode_request(messages, params, stream=stream)
        return PreparedCall(
            endpoint, self._url(endpoint), body, self._headers(params), self._decode_options(params)
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
        result = guard.reply(self._protocol.decode_reply, reply, **call.decode_options)
        return self._surfacer(call, run_manager).result(result)

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
        result = guard.reply(self._protocol.decode_reply, reply, **call.decode_options)
        return await self._surfacer(call, run_manager).aresult(result)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        call = self._prepare(messages, stop, kwargs, stream=True)
        decoder = self._protocol.StreamDecoder(**call.decode_options)
        traces = self._surfacer(call, run_manager)
        received: list[AIMessageChunk] = []
        guard = Decoding(call.endpoint)
        events = self.transport.stream(
            call.url, call.body, endpoint=call.endpoint, headers=call.headers, info=guard
        )
        with KeepPartial(received, call.endpoint):
            for data in until_complete(events, decoder):
                with guard.event(data):
                    chunks = decoder.feed(data)
                for chunk in chunks:
                    received.append(chunk)
                    yield traces.chunk(chunk)
            with guard.event("<end of stream>"):
                chunks = decoder.finish()
            for chunk in chunks:
                yield traces.chunk(chunk)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        call = self._prepare(messages, stop, kwargs, stream=True)
        decoder = self._protocol.StreamDecoder(**call.decode_options)
        traces = self._surfacer(call, run_manager)
        received: list[AIMessageChunk] = []
        guard = Decoding(call.endpoint)
        events = self.transport.astream(
            call.url, call.body, endpoint=call.endpoint, headers=call.headers, info=guard
        )
        with KeepPartial(received, call.endpoint):
            async for data in auntil_complete(events, decoder):
                with guard.event(data):
                    chunks = decoder.feed(data)
                for chunk in chunks:
                    received.append(chunk)
                    yield await traces.achunk(chunk)
            with guard.event("<end of stream>"):
                chunks = decoder.finish()
            for chunk in chunks:
                yield await traces.achunk(chunk)

    # -- tools and structured output --------------------------------------------------------------
    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | Any],
        *,
        tool_choice: str | dict[str, Any] | bool | None = None,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, BaseMessage]:
        """Bind tools (LangChain tools, functions, pydantic models or OpenAI tool dicts).

        ``tool_choice``: ``"auto"``, ``"none"``, ``"required"``/``"any"``, a tool name, or a dict.
        """
        if tool_choice is not None:
            kwargs["tool_choice"] = normalize_tool_choice(tool_choice)
        return super().bind(tools=format_tools(tools, strict=strict), **kwargs)

    def with_structured_output(  # type: ignore[override]
        self,
        schema: dict[str, Any] | type | None = None,
        *,
        method: _structured.Method = "function_calling",
        include_raw: bool = False,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, dict[str, Any] | Any]:
        """Return a runnable whose output matches ``schema``.

        ``method``: ``"function_calling"`` (a forced tool call), ``"json_schema"``
        (``response_format`` with the schema) or ``"json_mode"`` (``{"type": "json_object"}``).
        With ``include_raw=True`` the output is ``{"raw", "parsed", "parsing_error"}``.
        """
        return _structured.build(
            self, schema, method=method, include_raw=include_raw, strict=strict, **kwargs
        )
