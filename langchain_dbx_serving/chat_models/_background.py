"""``ChatDatabricksResponses`` on durable agent servers: background calls, resumable streams,
rotated conversation ids.

- ``invoke(..., background=True)`` (or ``.bind(background=True)``) submits the request as a
  background run and polls it until it ends, within ``background_timeout``; every poll that
  finds it still running is reported as a ``databricks_background_progress`` custom callback
  event (``astream_events`` shows it as ``on_custom_event``).
- A stream whose frames carry ``sequence_number`` and ``response_id`` (a durable server's feed,
  e.g. ``stream(..., background=True)``) is resumed from the last sequence number when it
  drops, at most ``max_resumes`` times.
- A ``response.resumed`` frame (the server restarted the run after a crash) is reported as a
  ``databricks_response_resumed`` custom event and in ``response_metadata``
  (``conversation_id``, ``resumed``); later calls of the same model whose conversation anchor
  is the old one are sent with the rotated id instead.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from langchain_core.callbacks import adispatch_custom_event, dispatch_custom_event
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatResult

from langchain_dbx_serving.background import (
    PROGRESS_EVENT,
    RESUMED_EVENT,
    BackgroundRun,
    RunHost,
    RunReader,
    handle_from_reply,
)
from langchain_dbx_serving.protocols import _responses_background as wire
from langchain_dbx_serving.protocols import _supervisor_echo as echo
from langchain_dbx_serving.transport._resume import ResumeState, aresumable, resumable

if TYPE_CHECKING:
    from langchain_dbx_serving.chat_models._base import PreparedCall
    from langchain_dbx_serving.protocols._seam import WireProtocol
    from langchain_dbx_serving.tracing._surface import RunManager, TraceSurfacer

# Call kwargs that steer a background call and are never sent.
CALL_ONLY = ("background_timeout",)
_MAX_ALIAS_HOPS = 32


class ResponsesChat(RunHost, Protocol):
    """What this module needs of :class:`~langchain_dbx_serving.ChatDatabricksResponses`
    (whose module imports this one): a run host that prepares calls, knows its protocol, its
    wait limit and the conversation ids the server rotated, and surfaces traces."""

    _protocol: WireProtocol
    _conversation_aliases: dict[str, str]

    @property
    def background_timeout(self) -> float | None: ...

    def prepare_call(
        self, messages: Sequence[BaseMessage], kwargs: Mapping[str, Any], *, stop: list[str] | None
    ) -> PreparedCall: ...

    def _surfacer(self, call: PreparedCall, run_manager: RunManager | None) -> TraceSurfacer: ...


# -- conversation anchors -------------------------------------------------------------------------
def _anchor(body: Mapping[str, Any]) -> str | None:
    """The conversation anchor the server rotates: ``custom_inputs.thread_id``, ``session_id``,
    else ``context.conversation_id`` (the server's own order)."""
    custom = body.get("custom_inputs")
    context = body.get("context")
    for value in (
        custom.get("thread_id") if isinstance(custom, Mapping) else None,
        custom.get("session_id") if isinstance(custom, Mapping) else None,
        context.get("conversation_id") if isinstance(context, Mapping) else None,
    ):
        if isinstance(value, str) and value:
            return value
    return None


def apply_aliases(aliases: Mapping[str, str], body: dict[str, Any]) -> dict[str, Any]:
    """``body`` with a rotated conversation anchor, when its anchor was rotated by the server."""
    anchor = _anchor(body)
    if anchor is None or anchor not in aliases:
        return body
    rotated, hops = anchor, 0
    while rotated in aliases and hops < _MAX_ALIAS_HOPS:
        rotated, hops = aliases[rotated], hops + 1
    custom = body.get("custom_inputs")
    if isinstance(custom, Mapping):
        custom = {k: v for k, v in custom.items() if k not in ("thread_id", "session_id")}
    out = {**body, "context": {**(body.get("context") or {}), "conversation_id": rotated}}
    if custom is not None:
        out["custom_inputs"] = custom
    return out


def _remember(chat: ResponsesChat, call: PreparedCall, event: Mapping[str, Any]) -> None:
    anchor = _anchor(call.body)
    rotated = event.get("conversation_id")
    if anchor is not None and isinstance(rotated, str) and rotated and rotated != anchor:
        chat._conversation_aliases[anchor] = rotated


def _event_data(call: PreparedCall, event: Mapping[str, Any]) -> dict[str, Any]:
    data = {k: event.get(k) for k in ("attempt", "from_seq", "conversation_id", "response_id")}
    return {**data, "endpoint": call.endpoint}


# -- resumable streams ----------------------------------------------------------------------------
def stream_source(
    chat: ResponsesChat, call: PreparedCall, traces: TraceSurfacer, info: Any = None
) -> tuple[Iterator[str], Any]:
    state = ResumeState(chat._responses_url(), endpoint=call.endpoint, max_resumes=chat.max_resumes)

    def on_resumed(event: Mapping[str, Any]) -> None:
        _remember(chat, call, event)
        if (config := traces._config()) is not None:
            dispatch_custom_event(RESUMED_EVENT, _event_data(call, event), config=config)  # type: ignore[arg-type]

    first = chat.transport.stream(
        call.url, call.body, endpoint=call.endpoint, headers=call.headers, info=info
    )
    decoder = wire.ResumeAwareDecoder(chat._protocol.stream_decoder(**call.decode_options), state)
    return resumable(chat.transport, first, state, on_resumed), decoder


def astream_source(
    chat: ResponsesChat, call: PreparedCall, traces: TraceSurfacer, info: Any = None
) -> tuple[AsyncIterator[str], Any]:
    state = ResumeState(chat._responses_url(), endpoint=call.endpoint, max_resumes=chat.max_resumes)

    async def on_resumed(event: Mapping[str, Any]) -> None:
        _remember(chat, call, event)
        if (config := traces._config()) is not None:
            await adispatch_custom_event(RESUMED_EVENT, _event_data(call, event), config=config)  # type: ignore[arg-type]

    first = chat.transport.astream(
        call.url, call.body, endpoint=call.endpoint, headers=call.headers, info=info
    )
    decoder = wire.ResumeAwareDecoder(chat._protocol.stream_decoder(**call.decode_options), state)
    return aresumable(chat.transport, first, state, on_resumed), decoder


# -- submit ---------------------------------------------------------------------------------------
def _submit_call(
    chat: ResponsesChat,
    messages: Sequence[BaseMessage],
    stop: list[str] | None,
    kwargs: Mapping[str, Any],
) -> PreparedCall:
    params = {k: v for k, v in kwargs.items() if k not in CALL_ONLY}
    params[wire.BACKGROUND_KEY] = True
    return chat.prepare_call(list(messages), params, stop=stop)


def submit(
    chat: ResponsesChat,
    messages: Sequence[BaseMessage],
    stop: list[str] | None,
    kwargs: Mapping[str, Any],
    reader: RunReader | None = None,
    call: PreparedCall | None = None,
) -> BackgroundRun:
    call = call or _submit_call(chat, messages, stop, kwargs)
    reply = chat.transport.post_json(
        call.url, call.body, endpoint=call.endpoint, headers=call.headers
    )
    return handle_from_reply(chat, reply, reader=reader, echoed=_echoed(call))


async def asubmit(
    chat: ResponsesChat,
    messages: Sequence[BaseMessage],
    stop: list[str] | None,
    kwargs: Mapping[str, Any],
    reader: RunReader | None = None,
    call: PreparedCall | None = None,
) -> BackgroundRun:
    call = call or _submit_call(chat, messages, stop, kwargs)
    reply = await chat.transport.apost_json(
        call.url, call.body, endpoint=call.endpoint, headers=call.headers
    )
    return handle_from_reply(chat, reply, reader=reader, echoed=_echoed(call))


def _echoed(call: PreparedCall) -> int:
    """Output items the run will echo from the input (only the Supervisor API echoes)."""
    if not echo.echoes_history(call.url):
        return 0
    return echo.echoed_count(call.body.get("input"))


# -- invoke(background=True) -----------------------------------------------------------------------
class _Waiting:
    """The wait of ``invoke(..., background=True)``: a ``databricks_background_progress`` event
    for the state the submit answer showed (when the run is not done yet) and one per poll that
    finds it running, until it ends or ``timeout`` passes. :meth:`wait` and :meth:`await_`
    differ only in the calls."""

    def __init__(self, run: BackgroundRun, traces: TraceSurfacer, timeout: float | None) -> None:
        self.run, self.traces, self.timeout = run, traces, timeout
        self.start = time.monotonic()

    def _event(self, state: wire.RunState) -> tuple[dict[str, Any], Any] | None:
        config = self.traces._config()
        if config is None:
            return None
        data = {
            "id": self.run.id,
            "endpoint": self.run.endpoint,
            "status": state.status,
            "attempt_number": state.attempt_number,
            "elapsed": round(time.monotonic() - self.start, 3),
        }
        return data, config

    def _shown(self) -> wire.RunState | None:
        return self.run._state if not self.run.done else None

    def wait(self) -> None:
        def progress(state: wire.RunState) -> None:
            if (event := self._event(state)) is not None:
                dispatch_custom_event(PROGRESS_EVENT, event[0], config=event[1])

        if (state := self._shown()) is not None:
            progress(state)
        self.run.wait(self.timeout, on_progress=progress)

    async def await_(self) -> None:
        async def progress(state: wire.RunState) -> None:
            if (event := self._event(state)) is not None:
                await adispatch_custom_event(PROGRESS_EVENT, event[0], config=event[1])

        if (state := self._shown()) is not None:
            await progress(state)
        await self.run.await_(self.timeout, on_progress=progress)


def _timeout(chat: ResponsesChat, kwargs: Mapping[str, Any]) -> float | None:
    value = kwargs.get("background_timeout", chat.background_timeout)
    return None if value is None else float(value)


def _decoded(chat: ResponsesChat, run: BackgroundRun, call: PreparedCall) -> ChatResult:
    return chat._protocol.decode_reply(run._body(), **call.decode_options)


def generate(
    chat: ResponsesChat,
    messages: list[BaseMessage],
    stop: list[str] | None,
    run_manager: RunManager | None,
    kwargs: Mapping[str, Any],
) -> ChatResult:
    call = _submit_call(chat, messages, stop, kwargs)
    traces = chat._surfacer(call, run_manager)
    run = submit(chat, messages, stop, kwargs, call=call)
    _Waiting(run, traces, _timeout(chat, kwargs)).wait()
    return traces.result(_decoded(chat, run, call))


async def agenerate(
    chat: ResponsesChat,
    messages: list[BaseMessage],
    stop: list[str] | None,
    run_manager: RunManager | None,
    kwargs: Mapping[str, Any],
) -> ChatResult:
    call = _submit_call(chat, messages, stop, kwargs)
    traces = chat._surfacer(call, run_manager)
    run = await asubmit(chat, messages, stop, kwargs, call=call)
    await _Waiting(run, traces, _timeout(chat, kwargs)).await_()
    return await traces.aresult(_decoded(chat, run, call))


# -- AgentEndpoint -------------------------------------------------------------------------------
def agent_events(
    chat: ResponsesChat,
    call: PreparedCall,
    traces: TraceSurfacer,
    builder: Any,
    info: Any = None,
) -> Iterator[str]:
    """``AgentEndpoint.stream``'s payloads, resumable; ``builder``'s decoder reports resumes."""
    return _feeding(builder, *stream_source(chat, call, traces, info))


def agent_aevents(
    chat: ResponsesChat,
    call: PreparedCall,
    traces: TraceSurfacer,
    builder: Any,
    info: Any = None,
) -> AsyncIterator[str]:
    """Async :func:`agent_events`."""
    return _feeding(builder, *astream_source(chat, call, traces, info))


def _feeding(builder: Any, events: Any, decoder: Any) -> Any:
    """``events``, whose resume-aware ``decoder`` now wraps the decoder of ``builder``."""
    decoder._inner = builder.decoder
    builder.decoder = decoder
    return events


def agent_invoke(
    chat: ResponsesChat,
    call: PreparedCall,
    traces: TraceSurfacer,
    kwargs: Mapping[str, Any],
    reader: RunReader,
) -> Any:
    """``AgentEndpoint.invoke(..., background=True)``: submit ``call`` (prepared by the agent
    with ``background`` set), wait with progress events, and read the answer with ``reader``."""
    run = submit(chat, [], None, {}, reader=reader, call=call)
    _Waiting(run, traces, _timeout(chat, kwargs)).wait()
    response = run._decode()
    traces.metadata(response.message.response_metadata if response.message else None)
    return response


async def agent_ainvoke(
    chat: ResponsesChat,
    call: PreparedCall,
    traces: TraceSurfacer,
    kwargs: Mapping[str, Any],
    reader: RunReader,
) -> Any:
    """Async :func:`agent_invoke`."""
    run = await asubmit(chat, [], None, {}, reader=reader, call=call)
    await _Waiting(run, traces, _timeout(chat, kwargs)).await_()
    response = run._decode()
    await traces.ametadata(response.message.response_metadata if response.message else None)
    return response
