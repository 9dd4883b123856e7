"""Encoding neutral replies into the responses shape (ResponsesAgent / OpenAI responses).

Whole replies are ``{"object": "response", "output": [items], "usage", ...}``. Streams emit the
events OpenAI-style agents pass through Model Serving: ``response.created``, then per output
item ``response.output_item.added``, its deltas (``response.output_text.delta``,
``response.reasoning_summary_text.delta``, ``response.function_call_arguments.delta``) and
``response.output_item.done`` with the full item, and finally ``response.completed`` with the
whole response and usage. Agent tool results arrive as ``output_item.done`` items of type
``function_call_output`` (as Model Serving sends them). ``Quirks.no_lifecycle_events`` drops
``response.created``/``completed`` and ``sequence_number``, like ResponsesAgents on Model Serving.
"""

from __future__ import annotations

from typing import Any

from langchain_dbx_serving.testing.local_endpoint._wire import WireContext, new_id
from langchain_dbx_serving.testing.local_endpoint.replies import (
    Delta,
    Quirks,
    Reply,
    ToolStep,
    Usage,
)


def responses_usage(usage: Usage) -> dict[str, Any]:
    """``usage`` in responses naming."""
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "total_tokens": usage.total,
        "input_tokens_details": {"cached_tokens": usage.cached_tokens or 0},
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens or 0},
    }


def _message_item(item_id: str, text: str, status: str = "completed") -> dict[str, Any]:
    content = (
        [{"type": "output_text", "text": text, "annotations": []}] if status == "completed" else []
    )
    return {
        "type": "message",
        "id": item_id,
        "role": "assistant",
        "status": status,
        "content": content,
    }


def _reasoning_item(item_id: str, text: str | None) -> dict[str, Any]:
    summary = [] if text is None else [{"type": "summary_text", "text": text}]
    return {"type": "reasoning", "id": item_id, "summary": summary}


def _call_item(
    item_id: str, call_id: str, name: str, arguments: str, status: str
) -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": item_id,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": status,
    }


def _step_items(step: ToolStep, quirks: Quirks) -> list[dict[str, Any]]:
    arguments = step.call.arguments_json(empty_for_no_args=quirks.empty_arguments_for_no_args)
    return [
        _call_item(new_id("fc_"), step.id or "", step.name, arguments, "completed"),
        {"type": "function_call_output", "call_id": step.id, "output": step.output},
    ]


def _status(reply: Reply) -> dict[str, Any]:
    if reply.finish_reason == "length":
        return {"status": "incomplete", "incomplete_details": {"reason": "max_output_tokens"}}
    return {"status": "completed"}


def _envelope(
    ctx: WireContext, output: list[dict[str, Any]], reply: Reply | None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": ctx.response_id,
        "object": "response",
        "created_at": ctx.created,
        "model": ctx.model_name,
        "output": output,
    }
    body.update(_status(reply) if reply else {"status": "in_progress"})
    if reply and reply.usage:
        body["usage"] = responses_usage(reply.usage)
    return body


def responses_body(reply: Reply, ctx: WireContext) -> dict[str, Any]:
    """A whole responses reply."""
    output = [item for step in reply.steps for item in _step_items(step, reply.quirks)]
    if reply.reasoning:
        output.append(_reasoning_item(new_id("rs_"), reply.full_reasoning))
    if reply.full_text or not reply.tool_calls:
        output.append(_message_item(new_id("msg_"), reply.full_text))
    for call in reply.tool_calls:
        arguments = call.arguments_json(empty_for_no_args=reply.quirks.empty_arguments_for_no_args)
        output.append(_call_item(new_id("fc_"), call.id or "", call.name, arguments, "completed"))
    body = _envelope(ctx, output, reply)
    if reply.custom_outputs is not None:
        body["custom_outputs"] = dict(reply.custom_outputs)
    return body


class _Item:
    """The output item being streamed."""

    def __init__(self, kind: str, index: int, key: int | None = None, **fields: str) -> None:
        self.kind = kind
        self.index = index
        self.key = key
        self.id = new_id({"message": "msg_", "reasoning": "rs_", "function_call": "fc_"}[kind])
        self.text = ""
        self.fields = fields

    def snapshot(self, *, done: bool) -> dict[str, Any]:
        status = "completed" if done else "in_progress"
        if self.kind == "message":
            return _message_item(self.id, self.text, status)
        if self.kind == "reasoning":
            return _reasoning_item(self.id, self.text if done else None)
        return _call_item(
            self.id, self.fields["call_id"], self.fields["name"], self.text if done else "", status
        )


class ResponsesStream:
    """Responses stream events for stream pieces (see the module docstring)."""

    def __init__(self, ctx: WireContext) -> None:
        self.ctx = ctx
        self.sequence = 0
        self.opened = False
        self.items: list[dict[str, Any]] = []
        self.current: _Item | None = None

    @property
    def _lifecycle(self) -> bool:
        return not self.ctx.quirks.no_lifecycle_events

    def _event(self, kind: str, **fields: Any) -> dict[str, Any]:
        event: dict[str, Any] = {"type": kind, **fields}
        if self._lifecycle:
            event["sequence_number"] = self.sequence
            self.sequence += 1
        if self.ctx.quirks.id_on_every_event:
            event["id"] = self.ctx.request_id
        return event

    def _open(self) -> list[dict[str, Any]]:
        if self.opened:
            return []
        self.opened = True
        if not self._lifecycle:
            return []
        return [self._event("response.created", response=_envelope(self.ctx, [], None))]

    def _finish_item(self) -> list[dict[str, Any]]:
        item, self.current = self.current, None
        if item is None:
            return []
        full = item.snapshot(done=True)
        self.items.append(full)
        return [self._event("response.output_item.done", output_index=item.index, item=full)]

    def _item(self, kind: str, key: int | None = None, **fields: str) -> list[dict[str, Any]]:
        """Make ``kind`` the current item, closing the previous one when it differs."""
        if self.current and self.current.kind == kind and self.current.key == key:
            return []
        out = self._finish_item()
        self.current = _Item(kind, len(self.items), key, **fields)
        snapshot = self.current.snapshot(done=False)
        out.append(
            self._event(
                "response.output_item.added", output_index=self.current.index, item=snapshot
            )
        )
        return out

    def _step(self, step: ToolStep) -> list[dict[str, Any]]:
        out = self._finish_item()
        call, result = _step_items(step, self.ctx.quirks)
        added = {**call, "arguments": "", "status": "in_progress"}
        out.append(
            self._event("response.output_item.added", output_index=len(self.items), item=added)
        )
        out.append(
            self._event("response.output_item.done", output_index=len(self.items), item=call)
        )
        self.items.append(call)
        out.append(
            self._event("response.output_item.done", output_index=len(self.items), item=result)
        )
        self.items.append(result)
        return out

    def feed(self, delta: Delta) -> list[dict[str, Any]]:
        out = self._open()
        if delta.step:
            out += self._step(delta.step)
        if delta.reasoning:
            out += self._item("reasoning")
            out.append(
                self._delta(
                    "response.reasoning_summary_text.delta", delta.reasoning, summary_index=0
                )
            )
        if delta.text:
            out += self._item("message")
            out.append(
                self._delta("response.output_text.delta", delta.text, content_index=0, logprobs=[])
            )
        piece = delta.tool_call
        if piece:
            call_id, name = piece.id or "", piece.name or ""
            out += self._item("function_call", piece.index, call_id=call_id, name=name)
            if piece.arguments:
                out.append(self._delta("response.function_call_arguments.delta", piece.arguments))
        return out

    def _delta(self, kind: str, text: str, **fields: Any) -> dict[str, Any]:
        assert self.current is not None
        self.current.text += text
        return self._event(
            kind, item_id=self.current.id, output_index=self.current.index, delta=text, **fields
        )

    def close(self, final: Reply) -> list[dict[str, Any]]:
        out = [*self._open(), *self._finish_item()]
        if not self.items:  # a responses reply always has a message, even an empty one
            out += self._item("message")
            out += self._finish_item()
        if self._lifecycle:
            response = _envelope(self.ctx, self.items, final)
            out.append(self._event("response.completed", response=response))
        return out

    def fail(self, code: str, message: str) -> list[dict[str, Any]]:
        out = [*self._open(), *self._finish_item()]
        out.append(self._event("error", code=code, message=message))
        if self._lifecycle:
            response = _envelope(self.ctx, self.items, None)
            response.update(status="failed", error={"code": code, "message": message})
            out.append(self._event("response.failed", response=response))
        return out
