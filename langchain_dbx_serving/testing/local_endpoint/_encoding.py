"""Wire encoding of a backend's result: a whole JSON body, or the events of an SSE stream.

The result (a :class:`Reply`, a live stream of pieces, or a relayed :class:`RawReply`) is
encoded into the request's wire shape (chat completions, responses, ChatAgent) by the encoders
of ``_wire`` / ``_wire_responses``; these functions add what every shape shares: the
``databricks_output`` trace on the last event, the trace id event, ``[DONE]``, and the
exchange's record of what was answered (for the trace and for cuts).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from langchain_dbx_serving.testing.local_endpoint import _inbound as inbound
from langchain_dbx_serving.testing.local_endpoint._exchange import Exchange
from langchain_dbx_serving.testing.local_endpoint._wire import (
    Aggregate,
    ChatAgentStream,
    ChatCompletionStream,
    WireContext,
    chat_agent_body,
    chat_completion_body,
    expand,
)
from langchain_dbx_serving.testing.local_endpoint._wire_responses import (
    ResponsesStream,
    responses_body,
)
from langchain_dbx_serving.testing.local_endpoint.replies import Quirks, RawReply, Reply

__all__ = ["events", "response_id", "streams", "whole_body"]

_ENCODERS: dict[str, tuple[Callable[[Reply, WireContext], dict[str, Any]], Any, str]] = {
    inbound.CHAT_COMPLETIONS: (chat_completion_body, ChatCompletionStream, "chatcmpl-"),
    inbound.RESPONSES: (responses_body, ResponsesStream, "resp_"),
    inbound.CHAT_AGENT: (chat_agent_body, ChatAgentStream, "msg_"),
}


def response_id(shape: str) -> str:
    """A fresh reply id in the id style of ``shape``."""
    return _ENCODERS[shape][2] + uuid.uuid4().hex[:24]


def streams(result: Any, asked: bool) -> bool:
    """Whether ``result`` is answered as a stream when the request ``asked`` for one or not."""
    if isinstance(result, Reply) and result.quirks.json_for_stream:
        return False
    if isinstance(result, RawReply) and result.events is None:
        return False  # a relayed whole body, even for a stream request
    return asked


def whole_body(ex: Exchange, result: Any) -> dict[str, Any]:
    """The whole JSON reply (a live stream is collected first)."""
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


def events(ex: Exchange, result: Any) -> Iterator[Mapping[str, Any] | str]:
    """Wire events: the last one carries ``databricks_output``; then the trace id event
    (``x-mlflow-return-trace-id``) and ``[DONE]``."""
    source = _raw_events(ex, result) if isinstance(result, RawReply) else _encoded(ex, result)
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


def _encoded(ex: Exchange, result: Any) -> Iterator[dict[str, Any]]:
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


def _raw_answer(output: Any) -> str:
    texts = []
    for item in output if isinstance(output, list) else []:
        if isinstance(item, Mapping) and item.get("type") == "message":
            texts += [
                p.get("text", "") for p in item.get("content") or [] if isinstance(p, Mapping)
            ]
    return "".join(texts)


def _raw_events(ex: Exchange, result: RawReply) -> Iterator[Mapping[str, Any]]:
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
