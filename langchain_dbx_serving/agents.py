"""``AgentEndpoint``: a Runnable over a responses agent endpoint, with a typed ``AgentResponse``.

Multi-agent systems need the whole reply of an agent (every output item, the agent's own tool
calls with their results, ``custom_outputs``, usage, the trace), not only an ``AIMessage``.
The request is built and the reply decoded by the same transport and responses protocol as
:class:`~langchain_dbx_serving.ChatDatabricksResponses`, which ``AgentEndpoint`` wraps.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any, Literal

from langchain_core.callbacks import (
    AsyncCallbackManagerForChainRun,
    CallbackManagerForChainRun,
)
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, convert_to_messages
from langchain_core.runnables import Runnable, RunnableConfig, RunnableLambda, RunnableSerializable
from pydantic import BaseModel, ConfigDict, Field

from langchain_dbx_serving._lifecycle import Closeable
from langchain_dbx_serving.chat_models._base import PreparedCall
from langchain_dbx_serving.chat_models._guard import (
    Decoding,
    KeepPartial,
    auntil_complete,
    until_complete,
)
from langchain_dbx_serving.chat_models.responses import ChatDatabricksResponses
from langchain_dbx_serving.protocols import responses
from langchain_dbx_serving.tracing._surface import RunManager, TraceSurfacer

__all__ = ["AgentEndpoint", "AgentEvent", "AgentResponse", "AgentToolCall"]

AgentInput = str | Sequence[Any] | Mapping[str, Any]


class AgentToolCall(BaseModel):
    """A tool call in an agent's output, with the agent's own result when it ran the tool."""

    id: str | None = None
    name: str
    args: dict[str, Any] = Field(default_factory=dict)
    output: Any = None


class AgentResponse(BaseModel):
    """The whole reply of a responses agent.

    Example:
        .. code-block:: python

            reply = AgentEndpoint("support-agent").invoke("Where is order 42?")
            reply.text, [call.name for call in reply.tool_calls], reply.custom_outputs
    """

    model_config = ConfigDict(frozen=True)

    output: list[dict[str, Any]] = Field(default_factory=list)
    """Every output item as the agent sent it (messages, function calls and outputs, ...)."""
    text: str = ""
    """The answer text (reasoning and tool traffic excluded)."""
    tool_calls: list[AgentToolCall] = Field(default_factory=list)
    custom_outputs: dict[str, Any] | None = None
    usage: dict[str, Any] | None = None
    id: str | None = None
    trace_id: str | None = None
    trace: dict[str, Any] | None = None
    message: AIMessage | None = Field(default=None, exclude=True, repr=False)

    def to_message(self) -> AIMessage:
        """The reply as an ``AIMessage`` (as ``ChatDatabricksResponses`` would return it)."""
        return self.message if self.message is not None else AIMessage(self.text)


class AgentEvent(BaseModel):
    """One event of ``AgentEndpoint.stream()``.

    ``text_delta`` and ``reasoning_delta`` carry ``delta``; ``output_item`` carries a completed
    ``item``; the last event is always ``response``, carrying the whole ``AgentResponse``.
    """

    type: Literal["text_delta", "reasoning_delta", "output_item", "response"]
    delta: str | None = None
    item: dict[str, Any] | None = None
    response: AgentResponse | None = None


class AgentEndpoint(Closeable, RunnableSerializable[AgentInput, AgentResponse]):
    """A Runnable over a responses agent endpoint (ResponsesAgent on Model Serving, or an App).

    Input: a string, a list of messages, a LangGraph-style ``{"messages": [...]}`` state, or a
    ``ResponsesAgentRequest``-shaped dict (``input`` items, ``custom_inputs``, ``context`` and
    any other body keys). Output: an :class:`AgentResponse`. ``stream()`` yields
    :class:`AgentEvent` objects, ending with the whole response.

    Example:
        .. code-block:: python

            from langchain_dbx_serving import AgentEndpoint

            agent = AgentEndpoint("support-agent", return_trace=True)
            reply = agent.invoke({"input": [{"role": "user", "content": "hi"}],
                                  "custom_inputs": {"tier": "gold"}})
            reply.text, reply.custom_outputs, reply.trace_id
            print(get_trace(reply).tree())  # from langchain_dbx_serving import get_trace

            for event in agent.stream("Tell me about order 42"):
                if event.type == "text_delta":
                    print(event.delta, end="")

            # In a LangGraph graph: a node that appends the agent's answer to the messages.
            graph.add_node("support", agent.as_node())
    """

    chat: ChatDatabricksResponses
    """The chat model whose endpoint, credentials, transport and defaults are used."""

    def __init__(
        self,
        endpoint: str | None = None,
        *,
        chat: ChatDatabricksResponses | None = None,
        **kwargs: Any,
    ) -> None:
        if chat is None:
            if endpoint is None:
                raise ValueError("AgentEndpoint needs an endpoint name (or chat=)")
            chat = ChatDatabricksResponses(endpoint=endpoint, **kwargs)
        elif endpoint is not None or kwargs:
            raise ValueError("pass either chat= or the endpoint and its settings, not both")
        super().__init__(chat=chat)

    @property
    def endpoint(self) -> str:
        return self.chat.endpoint

    def _owned(self) -> list[Any]:
        return [self.chat]

    def check(self) -> Any:
        """Validate host, credentials and the endpoint (see ``ChatDatabricksResponses.check``)."""
        return self.chat.check()

    async def acheck(self) -> Any:
        """Async :meth:`check`."""
        return await self.chat.acheck()

    # -- request ----------------------------------------------------------------------------------
    def _prepare(self, value: AgentInput, kwargs: Mapping[str, Any], stream: bool) -> PreparedCall:
        messages, items, body_keys = _split_input(value)
        call = self.chat._prepare(messages, None, {**body_keys, **kwargs}, stream=stream)
        if items is not None:
            call = dataclasses.replace(call, body={**call.body, "input": items})
        return call

    # -- invoke -----------------------------------------------------------------------------------
    def invoke(
        self, input: AgentInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> AgentResponse:
        return self._call_with_config(self._invoke, input, config, **kwargs)

    async def ainvoke(
        self, input: AgentInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> AgentResponse:
        return await self._acall_with_config(self._ainvoke, input, config, **kwargs)

    def _surfacer(self, call: PreparedCall, run_manager: RunManager | None) -> TraceSurfacer:
        return TraceSurfacer(call.endpoint, run_manager, merge=self.chat.merge_mlflow_trace)

    def _invoke(
        self,
        value: AgentInput,
        run_manager: CallbackManagerForChainRun | None = None,
        **kwargs: Any,
    ) -> AgentResponse:
        call = self._prepare(value, kwargs, stream=False)
        transport = self.chat.transport
        guard = Decoding(call.endpoint, run=run_manager)
        reply = transport.post_json(
            call.url, call.body, endpoint=call.endpoint, headers=call.headers, info=guard
        )
        response = guard.reply(_response_from_reply, reply)
        self._surfacer(call, run_manager).metadata(_trace_metadata(response))
        return response

    async def _ainvoke(
        self,
        value: AgentInput,
        run_manager: AsyncCallbackManagerForChainRun | None = None,
        **kwargs: Any,
    ) -> AgentResponse:
        call = self._prepare(value, kwargs, stream=False)
        transport = self.chat.transport
        guard = Decoding(call.endpoint, run=run_manager)
        reply = await transport.apost_json(
            call.url, call.body, endpoint=call.endpoint, headers=call.headers, info=guard
        )
        response = guard.reply(_response_from_reply, reply)
        await self._surfacer(call, run_manager).ametadata(_trace_metadata(response))
        return response

    # -- stream -----------------------------------------------------------------------------------
    def stream(
        self, input: AgentInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Iterator[AgentEvent]:
        yield from self._transform_stream_with_config(
            iter([input]), self._stream_events, config, **kwargs
        )

    async def astream(
        self, input: AgentInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> AsyncIterator[AgentEvent]:
        async def one() -> AsyncIterator[AgentInput]:
            yield input

        async for event in self._atransform_stream_with_config(
            one(), self._astream_events, config, **kwargs
        ):
            yield event

    def _stream_events(
        self,
        inputs: Iterator[AgentInput],
        run_manager: CallbackManagerForChainRun | None = None,
        **kwargs: Any,
    ) -> Iterator[AgentEvent]:
        for value in inputs:
            call = self._prepare(value, kwargs, stream=True)
            events = _EventBuilder()
            traces = self._surfacer(call, run_manager)
            transport = self.chat.transport
            guard = Decoding(call.endpoint, run=run_manager)
            stream = transport.stream(
                call.url, call.body, endpoint=call.endpoint, headers=call.headers, info=guard
            )
            with KeepPartial(events.chunks, call.endpoint, events.partial):
                for data in until_complete(stream, events.decoder):
                    with guard.event(data):
                        fed = events.feed(data)
                    yield from fed
                with guard.event("<end of stream>"):
                    finished = events.finish()
            for event in finished:
                traces.metadata(_trace_metadata(event.response))
                yield event

    async def _astream_events(
        self,
        inputs: AsyncIterator[AgentInput],
        run_manager: AsyncCallbackManagerForChainRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[AgentEvent]:
        async for value in inputs:
            call = self._prepare(value, kwargs, stream=True)
            events = _EventBuilder()
            traces = self._surfacer(call, run_manager)
            transport = self.chat.transport
            guard = Decoding(call.endpoint, run=run_manager)
            stream = transport.astream(
                call.url, call.body, endpoint=call.endpoint, headers=call.headers, info=guard
            )
            with KeepPartial(events.chunks, call.endpoint, events.partial):
                async for data in auntil_complete(stream, events.decoder):
                    with guard.event(data):
                        fed = events.feed(data)
                    for event in fed:
                        yield event
                with guard.event("<end of stream>"):
                    finished = events.finish()
            for event in finished:
                await traces.ametadata(_trace_metadata(event.response))
                yield event

    # -- LangGraph --------------------------------------------------------------------------------
    def as_node(self, key: str = "messages") -> Runnable[Mapping[str, Any], dict[str, Any]]:
        """A LangGraph node: reads ``state[key]`` and returns ``{key: [the agent's AIMessage]}``."""

        async def anode(state: Mapping[str, Any], config: RunnableConfig) -> dict[str, Any]:
            reply = await self.ainvoke(list(state[key]), config)
            return {key: [reply.to_message()]}

        def node(state: Mapping[str, Any], config: RunnableConfig) -> dict[str, Any]:
            return {key: [self.invoke(list(state[key]), config).to_message()]}

        return RunnableLambda(node, afunc=anode, name=f"{self.endpoint}_node")


def _split_input(
    value: AgentInput,
) -> tuple[list[BaseMessage], list[Any] | None, dict[str, Any]]:
    """``(messages, raw input items or None, other body keys)`` from any accepted input."""
    if isinstance(value, str):
        return convert_to_messages([value]), None, {}
    if isinstance(value, Mapping):
        body_keys = {k: v for k, v in value.items() if k not in ("input", "messages")}
        if "messages" in value:
            return convert_to_messages(value["messages"]), None, body_keys
        raw = value.get("input")
        if isinstance(raw, str):
            return convert_to_messages([raw]), None, body_keys
        if isinstance(raw, list):
            return [], raw, body_keys
        raise ValueError("an AgentEndpoint dict input needs 'input' (a string or a list of items)")
    return convert_to_messages(value), None, {}


def _tool_calls(items: Sequence[Mapping[str, Any]], message: AIMessage) -> list[AgentToolCall]:
    outputs = {
        item.get("call_id"): item.get("output")
        for item in items
        if item.get("type") == "function_call_output"
    }
    calls = []
    for block in message.content if isinstance(message.content, list) else []:
        if isinstance(block, dict) and block.get("type") == "server_tool_call":
            call_id = block.get("id")
            calls.append(
                AgentToolCall(
                    id=call_id,
                    name=block.get("name") or "",
                    args=block.get("args") or {},
                    output=outputs.get(call_id),
                )
            )
    return calls


def _response(message: AIMessage, items: list[dict[str, Any]]) -> AgentResponse:
    meta = message.response_metadata
    return AgentResponse(
        output=items,
        text=message.text,
        tool_calls=_tool_calls(items, message),
        custom_outputs=meta.get("custom_outputs"),
        usage=dict(message.usage_metadata) if message.usage_metadata else None,
        id=meta.get("id"),
        trace_id=meta.get("trace_id"),
        trace=meta.get("trace"),
        message=message,
    )


def _trace_metadata(response: AgentResponse | None) -> dict[str, Any] | None:
    return response.message.response_metadata if response and response.message else None


def _response_from_reply(reply: Any) -> AgentResponse:
    message = responses.decode_reply(reply).generations[0].message
    assert isinstance(message, AIMessage)
    items = reply.get("output") if isinstance(reply, Mapping) else None
    return _response(message, [i for i in items or [] if isinstance(i, dict)])


class _EventBuilder:
    """Feeds SSE payloads to the responses decoder and turns its output into AgentEvents."""

    def __init__(self) -> None:
        self.decoder = responses.StreamDecoder()
        self.chunks: list[AIMessageChunk] = []
        self.emitted: list[dict[str, Any]] = []

    def feed(self, data: str) -> list[AgentEvent]:
        events: list[AgentEvent] = []
        for chunk in self.decoder.feed(data):
            self.chunks.append(chunk)
            events += _deltas(chunk)
        events += self._new_items(self.decoder.completed_items)
        return events

    def finish(self) -> list[AgentEvent]:
        events: list[AgentEvent] = []
        for chunk in self.decoder.finish():
            self.chunks.append(chunk)
            events += _deltas(chunk)
        items = [item for item in self.decoder.output_items if isinstance(item, dict)]
        events += self._new_items(items)
        events.append(AgentEvent(type="response", response=self._response(self.chunks, items)))
        return events

    def partial(self, chunks: list[AIMessageChunk]) -> AgentResponse:
        """What arrived before a stream failed, as an ``AgentResponse`` (``partial``)."""
        items = [item for item in self.decoder.output_items if isinstance(item, dict)]
        return self._response(chunks, items)

    @staticmethod
    def _response(chunks: list[AIMessageChunk], items: list[dict[str, Any]]) -> AgentResponse:
        total = AIMessageChunk(content="")
        for chunk in chunks:
            total = total + chunk
        message = AIMessage(
            content=total.content,
            tool_calls=total.tool_calls,
            invalid_tool_calls=total.invalid_tool_calls,
            usage_metadata=total.usage_metadata,
            response_metadata=total.response_metadata,
            id=total.id,
        )
        return _response(message, items)

    def _new_items(self, items: list[dict[str, Any]]) -> list[AgentEvent]:
        fresh = [item for item in items if item not in self.emitted]
        self.emitted += fresh
        return [AgentEvent(type="output_item", item=item) for item in fresh]


def _deltas(chunk: AIMessageChunk) -> list[AgentEvent]:
    events: list[AgentEvent] = []
    if isinstance(chunk.content, str):
        if chunk.content:
            events.append(AgentEvent(type="text_delta", delta=chunk.content))
        return events
    for block in chunk.content:
        if isinstance(block, str) and block:
            events.append(AgentEvent(type="text_delta", delta=block))
        elif isinstance(block, dict) and block.get("type") == "text" and block.get("text"):
            events.append(AgentEvent(type="text_delta", delta=block["text"]))
        elif (
            isinstance(block, dict) and block.get("type") == "reasoning" and block.get("reasoning")
        ):
            events.append(AgentEvent(type="reasoning_delta", delta=block["reasoning"]))
    return events
