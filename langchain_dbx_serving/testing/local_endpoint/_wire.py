"""Encoding neutral replies into wire shapes: chat completions and ChatAgent (whole and SSE).

The responses shape lives in ``_wire_responses``. A stream encoder is an object fed one
:class:`Delta` at a time (``feed``) that returns the wire events to send, then ``close``\\ d
with the aggregated reply (finish reason, usage) or ``fail``\\ ed with an in-stream error.
``close``/``fail`` always return at least one event: the app attaches ``custom_outputs`` and
``databricks_output`` to the last event of a stream.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from langchain_dbx_serving.testing.local_endpoint.replies import (
    Delta,
    Quirks,
    Reply,
    ToolCall,
    ToolCallDelta,
    ToolStep,
    Usage,
)


def new_id(prefix: str) -> str:
    """A random wire id such as ``call_3f2a...``."""
    return f"{prefix}{uuid.uuid4().hex[:24]}"


@dataclass
class WireContext:
    """Per-request facts the encoders share. ``quirks``/``usage``/``model`` are set from the
    first :class:`Reply` a backend produced (live streams may only know them at the end)."""

    endpoint: str
    request_id: str
    created: int
    quirks: Quirks = field(default_factory=Quirks)
    usage: Usage | None = None
    model: str | None = None
    response_id: str = ""

    @property
    def model_name(self) -> str:
        return self.model or self.endpoint

    def adopt(self, reply: Reply) -> None:
        """Take the stream-wide settings of a backend's reply."""
        self.quirks = reply.quirks
        self.usage = reply.usage or self.usage
        self.model = reply.model or self.model


# ---------------------------------------------------------------------------------------------
# Aggregation of stream pieces (for trace outputs and final events)


class Aggregate:
    """Builds the complete :class:`Reply` from stream pieces and metadata replies."""

    def __init__(self) -> None:
        self.content: list[str] = []
        self.reasoning: list[str] = []
        self.signature: str | None = None
        self.calls: dict[int, list[str]] = {}
        self.thought_signatures: dict[int, str] = {}
        self.steps: list[ToolStep] = []
        self.meta = Reply()

    def add(self, delta: Delta) -> None:
        self.content += [delta.text] if delta.text else []
        self.reasoning += [delta.reasoning] if delta.reasoning else []
        self.signature = delta.signature or self.signature
        if delta.step:
            self.steps.append(delta.step)
        if delta.tool_call:
            piece = delta.tool_call
            call = self.calls.setdefault(piece.index, [piece.id or "", piece.name or "", ""])
            call[0] = call[0] or piece.id or ""
            call[1] = call[1] or piece.name or ""
            call[2] += piece.arguments
            if piece.thought_signature:
                self.thought_signatures[piece.index] = piece.thought_signature

    def add_meta(self, reply: Reply) -> None:
        meta = self.meta
        self.meta = Reply(
            usage=reply.usage or meta.usage,
            custom_outputs=reply.custom_outputs
            if reply.custom_outputs is not None
            else meta.custom_outputs,
            finish_reason=reply.finish_reason or meta.finish_reason,
            model=reply.model or meta.model,
            quirks=reply.quirks if reply.quirks != Quirks() else meta.quirks,
            stream_error=reply.stream_error or meta.stream_error,
            stream_error_code=reply.stream_error_code
            if reply.stream_error
            else meta.stream_error_code,
            cut_after=reply.cut_after if reply.cut_after is not None else meta.cut_after,
        )

    def reply(self) -> Reply:
        meta = self.meta
        calls = tuple(
            ToolCall(name, args, call_id, self.thought_signatures.get(index))
            for index, (call_id, name, args) in self.calls.items()
        )
        return Reply(
            content=tuple(self.content),
            reasoning=tuple(self.reasoning),
            reasoning_signature=self.signature,
            tool_calls=calls,
            steps=tuple(self.steps),
            usage=meta.usage,
            custom_outputs=meta.custom_outputs,
            finish_reason=meta.finish_reason,
            model=meta.model,
            quirks=meta.quirks,
        )


def with_ids(reply: Reply) -> Reply:
    """The reply with generated ids on tool calls and steps that have none."""
    calls = tuple(c if c.id else replace(c, id=new_id("call_")) for c in reply.tool_calls)
    steps = tuple(
        s if s.id else ToolStep(s.name, s.arguments, s.output, new_id("call_")) for s in reply.steps
    )
    return replace(reply, tool_calls=calls, steps=steps)


def expand(pieces: Iterable[Delta | Reply]) -> Iterator[Delta | Reply]:
    """Stream pieces with each :class:`Reply` followed by its own deltas, and an id on the
    first fragment of every tool call (live streams may not give one)."""
    seen: set[int] = set()
    for piece in pieces:
        if isinstance(piece, Reply):
            piece = with_ids(piece)
            yield piece
            yield from piece.deltas()
            continue
        call = piece.tool_call
        if call is not None and call.index not in seen:
            seen.add(call.index)
            if not call.id:
                piece = replace(piece, tool_call=replace(call, id=new_id("call_")))
        yield piece


# ---------------------------------------------------------------------------------------------
# Chat completions


def chat_usage(usage: Usage, *, partial: bool = False) -> dict[str, Any]:
    """``usage`` in chat-completions naming; ``partial``: the nulls Databricks Claude sends."""
    if partial:
        return {
            "prompt_tokens": usage.input_tokens,
            "completion_tokens": None,
            "total_tokens": None,
        }
    out: dict[str, Any] = {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total,
    }
    if usage.cached_tokens is not None:
        out["prompt_tokens_details"] = {"cached_tokens": usage.cached_tokens}
    if usage.reasoning_tokens is not None:
        out["completion_tokens_details"] = {"reasoning_tokens": usage.reasoning_tokens}
    out.update(usage.extra)
    return out


def _reasoning_part(text: str, signature: str | None = None) -> dict[str, Any]:
    summary: dict[str, Any] = {"type": "summary_text", "text": text}
    if signature:
        summary["signature"] = signature
    return {"type": "reasoning", "summary": [summary]}


def _wire_call(call: ToolCall, quirks: Quirks) -> dict[str, Any]:
    arguments = call.arguments_json(empty_for_no_args=quirks.empty_arguments_for_no_args)
    wire: dict[str, Any] = {
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": arguments},
    }
    if call.thought_signature:
        wire["thought_signature"] = call.thought_signature
    return wire


def _chat_finish_reason(reply: Reply) -> str | None:
    reason = reply.effective_finish_reason
    return None if reason == "stop" and reply.quirks.no_finish_reason_on_stop else reason


def chat_completion_body(reply: Reply, ctx: WireContext) -> dict[str, Any]:
    """A whole ``chat.completion`` reply."""
    content: Any = reply.full_text
    if reply.reasoning:
        content = [_reasoning_part(reply.full_reasoning, reply.reasoning_signature)]
        content += [{"type": "text", "text": reply.full_text}] if reply.full_text else []
    elif not content and reply.tool_calls:
        content = None
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if reply.tool_calls:
        message["tool_calls"] = [_wire_call(c, reply.quirks) for c in reply.tool_calls]
    body: dict[str, Any] = {
        "id": ctx.response_id,
        "object": "chat.completion",
        "created": ctx.created,
        "model": ctx.model_name,
        "choices": [{"index": 0, "message": message, "finish_reason": _chat_finish_reason(reply)}],
    }
    if reply.usage:
        body["usage"] = chat_usage(reply.usage)
    if reply.custom_outputs is not None:
        body["custom_outputs"] = dict(reply.custom_outputs)
    return body


class ChatCompletionStream:
    """``chat.completion.chunk`` events for stream pieces."""

    def __init__(self, ctx: WireContext) -> None:
        self.ctx = ctx
        self.opened = False
        self.text_seen = False
        self.index_offset: int | None = None

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        quirks = self.ctx.quirks
        if quirks.role_on_every_delta:
            delta = {"role": "assistant", **delta}
        chunk: dict[str, Any] = {
            "id": self.ctx.response_id,
            "object": "chat.completion.chunk",
            "created": self.ctx.created,
            "model": self.ctx.model_name,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        if quirks.usage_on_every_chunk and self.ctx.usage:
            chunk["usage"] = chat_usage(self.ctx.usage, partial=True)
        return chunk

    def _open(self) -> list[dict[str, Any]]:
        if self.opened:
            return []
        self.opened = True
        return [self._chunk({"role": "assistant", "content": ""})]

    def _tool_fragment(self, piece: ToolCallDelta) -> dict[str, Any]:
        if self.index_offset is None:
            after_text = self.text_seen and self.ctx.quirks.tool_index_from_1_after_text
            self.index_offset = 1 if after_text else 0
        fragment: dict[str, Any] = {"index": piece.index + self.index_offset}
        if piece.id or piece.name:
            fragment.update(id=piece.id, type="function")
            fragment["function"] = {"name": piece.name, "arguments": piece.arguments}
            if piece.thought_signature:
                fragment["thought_signature"] = piece.thought_signature
        else:
            fragment["function"] = {"arguments": piece.arguments}
        return fragment

    def feed(self, delta: Delta) -> list[dict[str, Any]]:
        out = self._open()
        if delta.text:
            self.text_seen = True
            out.append(self._chunk({"content": delta.text}))
        if delta.reasoning or delta.signature:
            part = _reasoning_part(delta.reasoning, delta.signature)
            out.append(self._chunk({"content": [part]}))
        if delta.tool_call:
            out.append(self._chunk({"tool_calls": [self._tool_fragment(delta.tool_call)]}))
        return out  # agent steps cannot be expressed in chat completions

    def close(self, final: Reply) -> list[dict[str, Any]]:
        out = self._open()
        quirks = self.ctx.quirks
        last = self._chunk(
            {"content": ""} if quirks.role_on_every_delta else {}, _chat_finish_reason(final)
        )
        out.append(last)
        if final.usage and quirks.usage_in_empty_choices_chunk:
            out.append(
                {
                    "id": self.ctx.response_id,
                    "object": "chat.completion.chunk",
                    "created": self.ctx.created,
                    "model": self.ctx.model_name,
                    "choices": [],
                    "usage": chat_usage(final.usage),
                }
            )
        elif final.usage:
            last["usage"] = chat_usage(final.usage)
        return out

    def fail(self, code: str, message: str) -> list[dict[str, Any]]:
        return [
            *self._open(),
            {"error": {"message": message, "type": "server_error", "code": code}},
        ]


# ---------------------------------------------------------------------------------------------
# ChatAgent (legacy MLflow agents)


def _step_messages(step: ToolStep, quirks: Quirks) -> list[dict[str, Any]]:
    call = _wire_call(step.call, quirks)
    return [
        {"role": "assistant", "content": "", "id": new_id("msg_"), "tool_calls": [call]},
        {
            "role": "tool",
            "content": step.output,
            "id": new_id("msg_"),
            "tool_call_id": step.id,
            "name": step.name,
        },
    ]


def chat_agent_body(reply: Reply, ctx: WireContext) -> dict[str, Any]:
    """A whole ChatAgent reply: the agent's tool turns, then the answer."""
    messages = [m for step in reply.steps for m in _step_messages(step, reply.quirks)]
    answer: dict[str, Any] = {
        "role": "assistant",
        "content": reply.full_text,
        "id": ctx.response_id,
    }
    if reply.tool_calls:
        answer["tool_calls"] = [_wire_call(c, reply.quirks) for c in reply.tool_calls]
    body: dict[str, Any] = {"messages": [*messages, answer]}
    body["finish_reason"] = reply.effective_finish_reason
    if reply.usage:
        body["usage"] = chat_usage(reply.usage)
    if reply.custom_outputs is not None:
        body["custom_outputs"] = dict(reply.custom_outputs)
    return body


class ChatAgentStream:
    """``{"delta": message}`` chunks; the answer's deltas share one ``id``. The last chunk
    carries ``finish_reason`` and ``usage`` (it is held back until the stream closes)."""

    def __init__(self, ctx: WireContext) -> None:
        self.ctx = ctx
        self.pending: dict[str, Any] | None = None

    def _push(self, message: dict[str, Any]) -> list[dict[str, Any]]:
        out = [self.pending] if self.pending else []
        self.pending = {"delta": message}
        return out

    def feed(self, delta: Delta) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if delta.step:
            for message in _step_messages(delta.step, self.ctx.quirks):
                out += self._push(message)
        if delta.text:
            out += self._push(
                {"role": "assistant", "content": delta.text, "id": self.ctx.response_id}
            )
        return out  # reasoning has no ChatAgent form; tool calls are sent whole on close

    def close(self, final: Reply) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if final.tool_calls or self.pending is None:
            message: dict[str, Any] = {
                "role": "assistant",
                "content": "",
                "id": self.ctx.response_id,
            }
            if final.tool_calls:
                message["tool_calls"] = [_wire_call(c, final.quirks) for c in final.tool_calls]
            out += self._push(message)
        last = self.pending or {}
        last["finish_reason"] = final.effective_finish_reason
        if final.usage:
            last["usage"] = chat_usage(final.usage)
        return [*out, last]

    def fail(self, code: str, message: str) -> list[dict[str, Any]]:
        out = [self.pending] if self.pending else []
        return [*out, {"error": message}]  # as MLflow's AgentServer reports a failure


# ---------------------------------------------------------------------------------------------
# SSE framing


def sse_frame(event: Mapping[str, Any] | str, quirks: Quirks) -> bytes:
    """One SSE event (``data: {json}``, with the quirks' comment and ``event:`` lines)."""
    lines = []
    if quirks.sse_comments:
        lines.append(": PROCESSING\n\n")
    if isinstance(event, str):
        lines.append(f"data: {event}\n\n")
    else:
        if quirks.sse_event_lines and isinstance(event.get("type"), str):
            lines.append(f"event: {event['type']}\n")
        lines.append(f"data: {json.dumps(event)}\n\n")
    return "".join(lines).encode()
