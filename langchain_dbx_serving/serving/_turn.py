"""One turn of a served agent as responses stream events: the adapter's stream encoder.

:class:`TurnStream` is fed what LangGraph streams (``messages`` mode chunks, ``values`` mode
states) and answers with responses events (plain dicts). Deltas stream as they arrive; each
message's items are sent *once*, as ``response.output_item.done``, when the graph's state holds
the finished message, built from that state (so a streamed turn's items equal the items of the
same turn run whole). The wire shapes come from ``protocols._responses_output``.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.ai import UsageMetadata, add_usage
from langchain_core.outputs import ChatGeneration, LLMResult

from langchain_dbx_serving.protocols import _responses_output as wire


@dataclass
class _StreamedCall:
    """A tool call of a message being streamed, until its call id and name are known."""

    call_id: str | None = None
    name: str | None = None
    pending: str = ""
    announced: bool = False


@dataclass
class _Turn:
    new_messages: list[BaseMessage] = field(default_factory=list)
    calls: dict[tuple[str, Any], _StreamedCall] = field(default_factory=dict)


class UsageCounter(BaseCallbackHandler):
    """Adds up the usage of every chat model call of a run (with or without a model name)."""

    def __init__(self) -> None:
        self.total: UsageMetadata | None = None
        self._lock = threading.Lock()

    def on_llm_end(self, response: LLMResult, **kwargs: Any) -> None:
        for generations in response.generations:
            for generation in generations:
                message = generation.message if isinstance(generation, ChatGeneration) else None
                usage = message.usage_metadata if isinstance(message, AIMessage) else None
                if usage:
                    with self._lock:
                        self.total = add_usage(self.total, usage)


class TurnStream:
    """Responses events for one turn, from LangGraph's ``messages`` and ``values`` streams.

    ``base`` is how many messages of the first state fed were there before the turn (the
    history and the new input); every message after them is the agent's output.
    """

    def __init__(self) -> None:
        self.response_id = f"resp_{uuid.uuid4().hex}"
        self._base: int | None = None
        self._turn = _Turn()
        self.items: list[dict[str, Any]] = []
        self.usage_counter = UsageCounter()
        """Add to the run's callbacks: it counts every model call, nested ones included."""

    @property
    def new_messages(self) -> list[BaseMessage]:
        """The messages the agent produced so far, as its state holds them."""
        return list(self._turn.new_messages)

    def chunk(self, chunk: AIMessageChunk) -> list[dict[str, Any]]:
        """Deltas for a streamed chunk of an AI message (text and tool-call arguments)."""
        if chunk.id is None:
            return []  # no item can be named; its items come whole with the state
        events = _content_deltas(chunk.content, chunk.id)
        for piece in chunk.tool_call_chunks:
            events += self._call_piece(chunk.id, piece)
        return events

    def _call_piece(self, message_id: str, piece: Any) -> list[dict[str, Any]]:
        key = (message_id, piece.get("index"))
        call = self._turn.calls.setdefault(key, _StreamedCall())
        call.call_id = call.call_id or piece.get("id")
        call.name = call.name or piece.get("name")
        call.pending += piece.get("args") or ""
        if not (call.call_id and call.name):
            return []
        events: list[dict[str, Any]] = []
        item_id = wire.call_item_id(call.call_id)
        if not call.announced:
            call.announced = True
            item = {
                "type": "function_call",
                "id": item_id,
                "call_id": call.call_id,
                "name": call.name,
                "arguments": "",
            }
            events.append(wire.item_added_event(item))
        if call.pending:
            events.append(wire.arguments_delta_event(item_id, call.pending))
            call.pending = ""
        return events

    def state(self, messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
        """``output_item.done`` for every message the state holds that was not done yet."""
        if self._base is None:
            self._base = len(messages)
            return []
        fresh = list(messages[self._base + len(self._turn.new_messages) :])
        return self.output(fresh)

    def output(self, messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
        """``output_item.done`` for finished output messages (given an id when they lack one)."""
        named = [_with_id(m) for m in messages]
        self._turn.new_messages += named
        items = wire.output_items(named)
        self.items += items
        return [wire.item_done_event(item) for item in items]

    def usage(self) -> dict[str, Any] | None:
        """The turn's usage: every model call the run made (a model called inside a tool or a
        sub-agent's graph included); when no call reported usage to callbacks, the sum over the
        AI messages the turn produced (e.g. replies of remote agents)."""
        if self.usage_counter.total is not None:
            return wire.encode_usage([self.usage_counter.total])
        return wire.encode_usage(
            m.usage_metadata for m in self._turn.new_messages if isinstance(m, AIMessage)
        )

    def completed(self, custom_outputs: dict[str, Any] | None) -> dict[str, Any]:
        return wire.completed_event(self.response_id, self.usage(), custom_outputs)


def _content_deltas(content: Any, message_id: str) -> list[dict[str, Any]]:
    """Text and reasoning deltas of a chunk's content, in order, naming their items."""
    events: list[dict[str, Any]] = []
    for block in [content] if isinstance(content, str) else content:
        if isinstance(block, str) or (isinstance(block, dict) and block.get("type") == "text"):
            text = block if isinstance(block, str) else block.get("text")
            if isinstance(text, str) and text:
                item_id = wire.text_item_id(block, message_id)
                events.append(wire.text_delta_event(item_id, text))
            continue
        for text in wire.reasoning_texts(block) or []:
            if text:
                item_id = wire.reasoning_item_id(block, message_id)
                events.append(wire.reasoning_delta_event(item_id, text))
    return events


def _with_id(message: BaseMessage) -> BaseMessage:
    if message.id is not None:
        return message
    return message.model_copy(update={"id": f"msg_{uuid.uuid4().hex}"})
