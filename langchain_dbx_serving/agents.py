"""``AgentEndpoint``: a Runnable over a responses agent endpoint, with a typed ``AgentResponse``.

Multi-agent systems need the whole reply of an agent (every output item, the agent's own tool
calls with their results, ``custom_outputs``, usage, the trace), not only an ``AIMessage``.
The request is built and the reply decoded by the same transport and responses protocol as
:class:`~langchain_dbx_serving.ChatDatabricksResponses`, which ``AgentEndpoint`` wraps.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManagerForChainRun,
    CallbackManagerForChainRun,
)
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.runnables import Runnable, RunnableConfig, RunnableLambda, RunnableSerializable

from langchain_dbx_serving._agent_reply import AgentEvent, AgentInput, AgentResponse, AgentToolCall
from langchain_dbx_serving._frames import clears_frames
from langchain_dbx_serving._lifecycle import Closeable
from langchain_dbx_serving.agent_tool import AgentTool, agent_tool
from langchain_dbx_serving.approvals import ApprovalRequest, approval_requests
from langchain_dbx_serving.background import BackgroundRun
from langchain_dbx_serving.chat_models import _background
from langchain_dbx_serving.chat_models._base import PreparedCall
from langchain_dbx_serving.chat_models._guard import (
    Decoding,
    KeepPartial,
    auntil_complete,
    until_complete,
)
from langchain_dbx_serving.chat_models._layers import (
    DatabricksBinding,
    bind_kwargs,
    check_call_kwargs,
)
from langchain_dbx_serving.chat_models.responses import ChatDatabricksResponses
from langchain_dbx_serving.protocols import _responses_background, responses
from langchain_dbx_serving.tracing._model_run import agent_model_run, async_agent_model_run
from langchain_dbx_serving.tracing._surface import RunManager, TraceSurfacer
from langchain_dbx_serving.transport._resume import ResumeState

__all__ = ["AgentEndpoint", "AgentEvent", "AgentResponse", "AgentToolCall"]


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
    def _prepare(
        self, value: AgentInput, kwargs: Mapping[str, Any], stream: bool, run_manager: Any = None
    ) -> PreparedCall:
        messages, items, body_keys = responses.split_request(value)
        call = self.chat.prepare_call(
            messages, kwargs, stream=stream, request=body_keys, run_manager=run_manager
        )
        if items is not None:
            call = dataclasses.replace(call, body=responses.with_input_items(call.body, items))
        return call

    def bind(self, **kwargs: Any) -> Runnable[AgentInput, AgentResponse]:
        """Bind call kwargs. ``custom_inputs``, ``databricks_options`` and ``context`` merge key
        by key: constructor < each bind < the request dict's own < call kwargs."""
        check_call_kwargs(kwargs, type(self).__name__)
        return DatabricksBinding(bound=self, kwargs=bind_kwargs({}, kwargs))

    # -- invoke -----------------------------------------------------------------------------------
    def invoke(
        self, input: AgentInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> AgentResponse:
        return self._call_with_config(self._invoke, input, config, **kwargs)

    async def ainvoke(
        self, input: AgentInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> AgentResponse:
        return await self._acall_with_config(self._ainvoke, input, config, **kwargs)

    def _surfacer(
        self, call: PreparedCall, run_manager: RunManager | None, model_run: Any = None
    ) -> TraceSurfacer:
        return TraceSurfacer(
            call.endpoint, run_manager, merge=self.chat.merge_mlflow_trace, span_run=model_run
        )

    def _background_call(
        self, value: AgentInput, kwargs: Mapping[str, Any], run_manager: RunManager | None
    ) -> tuple[PreparedCall, TraceSurfacer]:
        """The request of a background run (``background`` set) and its trace surfacer."""
        call = self._prepare(
            value, {**kwargs, _responses_background.BACKGROUND_KEY: True}, stream=False
        )
        return call, self._surfacer(call, run_manager)

    @clears_frames
    def _invoke(
        self,
        value: AgentInput,
        run_manager: CallbackManagerForChainRun | None = None,
        **kwargs: Any,
    ) -> AgentResponse:
        if kwargs.get("background") is True:  # a long-running agent: submit, then wait
            call, traces = self._background_call(value, kwargs, run_manager)
            return _background.agent_invoke(self.chat, call, traces, kwargs, _RUNS)
        with agent_model_run(run_manager, self.endpoint, value) as model:
            call = self._prepare(value, kwargs, stream=False, run_manager=model.run)
            transport = self.chat.transport
            guard = Decoding(call.endpoint, run=run_manager)
            reply = transport.post_json(
                call.url, call.body, endpoint=call.endpoint, headers=call.headers, info=guard
            )
            response = guard.reply(_response_from_reply, reply)
            self._surfacer(call, run_manager, model.run).metadata(_trace_metadata(response))
            model.end(response.message)
        return response

    @clears_frames
    async def _ainvoke(
        self,
        value: AgentInput,
        run_manager: AsyncCallbackManagerForChainRun | None = None,
        **kwargs: Any,
    ) -> AgentResponse:
        if kwargs.get("background") is True:  # a long-running agent: submit, then wait
            call, traces = self._background_call(value, kwargs, run_manager)
            return await _background.agent_ainvoke(self.chat, call, traces, kwargs, _RUNS)
        async with async_agent_model_run(run_manager, self.endpoint, value) as model:
            call = self._prepare(value, kwargs, stream=False, run_manager=model.run)
            transport = self.chat.transport
            guard = Decoding(call.endpoint, run=run_manager)
            reply = await transport.apost_json(
                call.url, call.body, endpoint=call.endpoint, headers=call.headers, info=guard
            )
            response = guard.reply(_response_from_reply, reply)
            surfacer = self._surfacer(call, run_manager, model.run)
            await surfacer.ametadata(_trace_metadata(response))
            await model.aend(response.message)
        return response

    # -- approval turns ---------------------------------------------------------------------------
    def resolve_approvals(
        self,
        input: AgentInput,
        response: AgentResponse,
        approve: bool | Mapping[str, bool] | Callable[[ApprovalRequest], bool],
        *,
        reason: str | None = None,
        config: RunnableConfig | None = None,
        **kwargs: Any,
    ) -> AgentResponse:
        """Answer the ``mcp_approval_request`` items of ``response`` and run the next turn.

        ``input`` is what produced ``response``; ``approve`` is one decision for all requests,
        a mapping from request id to decision, or a function of the
        :class:`~langchain_dbx_serving.approvals.ApprovalRequest`. The agent receives the
        whole history: ``input``, its own output, then one ``mcp_approval_response`` per
        request. ``ValueError`` when ``response`` asks for no approval.

        Example:
            .. code-block:: python

                reply = agent.invoke("Clean up the staging tables")
                if approval_requests(reply):
                    reply = agent.resolve_approvals("Clean up the staging tables", reply, True)
        """
        items, extra = approval_turn(self, input, response, approve, reason)
        return self.invoke({**extra, "input": items}, config, **kwargs)

    async def aresolve_approvals(
        self,
        input: AgentInput,
        response: AgentResponse,
        approve: bool | Mapping[str, bool] | Callable[[ApprovalRequest], bool],
        *,
        reason: str | None = None,
        config: RunnableConfig | None = None,
        **kwargs: Any,
    ) -> AgentResponse:
        """Async :meth:`resolve_approvals`."""
        items, extra = approval_turn(self, input, response, approve, reason)
        return await self.ainvoke({**extra, "input": items}, config, **kwargs)

    # -- background runs (long-running agents, see langchain_dbx_serving.background) ------------
    def submit(self, input: AgentInput, **kwargs: Any) -> BackgroundRun:
        """Start a background run and return its handle (``result()`` is an AgentResponse)."""
        call = self._prepare(input, {**kwargs, "background": True}, stream=False)
        return _background.submit(self.chat, [], None, {}, reader=_RUNS, call=call)

    async def asubmit(self, input: AgentInput, **kwargs: Any) -> BackgroundRun:
        """Async :meth:`submit`."""
        call = self._prepare(input, {**kwargs, "background": True}, stream=False)
        return await _background.asubmit(self.chat, [], None, {}, reader=_RUNS, call=call)

    def background_run(self, run_id: str, *, echoed: int = 0) -> BackgroundRun:
        """The handle of a run submitted earlier (by this or another process), by its id
        (``echoed`` as saved by ``BackgroundRun.to_dict()``)."""
        return BackgroundRun(self.chat, run_id, reader=_RUNS, echoed=echoed)

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

        # aclosing: a consumer that stops early closes the call now (its model run ends with
        # on_llm_error and its connection is released), not whenever the generator is collected.
        events = self._atransform_stream_with_config(one(), self._astream_events, config, **kwargs)
        async with contextlib.aclosing(events):
            async for event in events:
                yield event

    @clears_frames
    def _stream_events(
        self,
        inputs: Iterator[AgentInput],
        run_manager: CallbackManagerForChainRun | None = None,
        **kwargs: Any,
    ) -> Iterator[AgentEvent]:
        for value in inputs:
            with agent_model_run(run_manager, self.endpoint, value) as model:
                call = self._prepare(value, kwargs, stream=True, run_manager=model.run)
                events = _EventBuilder()
                traces = self._surfacer(call, run_manager, model.run)
                guard = Decoding(call.endpoint, run=run_manager)
                stream = _background.agent_events(self.chat, call, traces, events, guard)
                with KeepPartial(events.chunks, call.endpoint, events.partial):
                    for data in until_complete(stream, events.decoder):
                        with guard.event(data):
                            fed = events.feed(data)
                        for event in fed:
                            model.token(event.delta if event.type == "text_delta" else "")
                            yield event
                    with guard.event("<end of stream>"):
                        finished = events.finish()
                for event in finished:
                    if event.response is not None:
                        traces.metadata(_trace_metadata(event.response))
                        model.end(event.response.message)
                    yield event

    @clears_frames
    async def _astream_events(
        self,
        inputs: AsyncIterator[AgentInput],
        run_manager: AsyncCallbackManagerForChainRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[AgentEvent]:
        async for value in inputs:
            async with async_agent_model_run(run_manager, self.endpoint, value) as model:
                call = self._prepare(value, kwargs, stream=True, run_manager=model.run)
                events = _EventBuilder()
                traces = self._surfacer(call, run_manager, model.run)
                guard = Decoding(call.endpoint, run=run_manager)
                stream = _background.agent_aevents(self.chat, call, traces, events, guard)
                with KeepPartial(events.chunks, call.endpoint, events.partial):
                    async for data in auntil_complete(stream, events.decoder):
                        with guard.event(data):
                            fed = events.feed(data)
                        for event in fed:
                            await model.atoken(event.delta if event.type == "text_delta" else "")
                            yield event
                    with guard.event("<end of stream>"):
                        finished = events.finish()
                for event in finished:
                    if event.response is not None:
                        await traces.ametadata(_trace_metadata(event.response))
                        await model.aend(event.response.message)
                    yield event

    # -- LangGraph --------------------------------------------------------------------------------
    def as_node(
        self, key: str = "messages", *, runnable: Runnable[Any, AgentResponse] | None = None
    ) -> Runnable[Mapping[str, Any], dict[str, Any]]:
        """A LangGraph node: reads ``state[key]`` and returns ``{key: [the agent's AIMessage]}``.

        ``agent.bind(custom_inputs=...).as_node()`` calls the binding (``runnable``), so what
        was bound is sent.

        In a graph, an answer with ``mcp_approval_request`` items becomes a LangGraph
        ``interrupt``; ``Command(resume=decision)`` sends the ``mcp_approval_response`` turn,
        and the node adds the request reply, the approval turn and the final reply to
        ``state[key]``. The agent gets each turn once (see
        :mod:`langchain_dbx_serving.approval_interrupts`). Outside a graph the node returns
        the reply as it is.
        """
        from langchain_dbx_serving import approval_interrupts as approvals

        agent = runnable if runnable is not None else self

        async def anode(state: Mapping[str, Any], config: RunnableConfig) -> dict[str, Any]:
            if approvals.in_graph(config):
                messages = list(state[key])
                return {key: await approvals.anode_messages(agent, self.endpoint, messages, config)}
            reply = await agent.ainvoke(list(state[key]), config)
            return {key: [reply.to_message()]}

        def node(state: Mapping[str, Any], config: RunnableConfig) -> dict[str, Any]:
            if approvals.in_graph(config):
                messages = list(state[key])
                return {key: approvals.node_messages(agent, self.endpoint, messages, config)}
            return {key: [agent.invoke(list(state[key]), config).to_message()]}

        return RunnableLambda(node, afunc=anode, name=f"{self.endpoint}_node")

    def as_tool(  # type: ignore[override]
        self,
        *,
        name: str | None = None,
        description: str | None = None,
        custom_inputs: Mapping[str, Any] | None = None,
        forward_custom_inputs: Sequence[str] = (),
    ) -> AgentTool:
        """This agent as a tool for a supervisor: content = answer text, artifact = reply.

        The tool passes on the caller's ``context`` and the chosen ``custom_inputs`` and
        streams the agent's progress as custom events (see :mod:`langchain_dbx_serving.agent_tool`).

        Example:
            .. code-block:: python

                tool = AgentEndpoint("research-agent").as_tool(
                    name="research", description="Finds facts.", forward_custom_inputs=["tier"]
                )
                message = tool.invoke({"type": "tool_call", "id": "c1", "name": "research",
                                       "args": {"request": "Q3 revenue?"}})
                message.content, message.artifact.custom_outputs
        """
        return agent_tool(
            self,
            name=name,
            description=description,
            custom_inputs=custom_inputs,
            forward_custom_inputs=forward_custom_inputs,
        )


def approval_turn(
    agent: AgentEndpoint,
    value: AgentInput,
    response: AgentResponse,
    approve: bool | Mapping[str, bool] | Callable[[ApprovalRequest], bool],
    reason: str | None,
) -> tuple[list[Any], dict[str, Any]]:
    """The input items of the turn answering ``response``'s approval requests."""
    requests = approval_requests(response)
    if not requests:
        raise ValueError("the agent's response asks for no approval (no mcp_approval_request)")
    answers = []
    for request in requests:
        if callable(approve):
            decision = approve(request)
        elif isinstance(approve, Mapping):
            if request.id not in approve:
                raise ValueError(f"no decision for approval request {request.id!r}")
            decision = approve[request.id]
        else:
            decision = approve
        answers.append(request.respond(bool(decision), reason))
    history, extra = responses.input_items(value)
    return responses.approval_turn_items(history, response.output, answers), extra


def _tool_calls(items: Sequence[Mapping[str, Any]], message: AIMessage) -> list[AgentToolCall]:
    return [AgentToolCall(**call) for call in responses.agent_tool_calls(items, message.content)]


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
    items = message.response_metadata.get("output")
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


class _AgentRuns:
    """How a background run of an ``AgentEndpoint`` is read (``background.RunReader``): its
    answer as an ``AgentResponse``, its stream as ``AgentEvent`` s."""

    def answer(self, body: Mapping[str, Any]) -> AgentResponse:
        return _response_from_reply(body)

    def events(self, state: ResumeState) -> _EventBuilder:
        builder = _EventBuilder()
        builder.decoder = _responses_background.ResumeAwareDecoder(builder.decoder, state)
        return builder


_RUNS = _AgentRuns()
