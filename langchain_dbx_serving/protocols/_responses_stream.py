"""The responses-protocol stream decoder: SSE events in, ``AIMessageChunk``s out.

Facts this follows (PROTOCOLS.md sections 3, 5 and 7):

- ``response.output_item.done`` repeats an item whose text or arguments may already have
  streamed as deltas: only what was not streamed is emitted. An item that arrives *only* as
  ``done`` (common from Model Serving) is emitted in full.
- Item ids can differ between the events of one item: the ledger (``_responses_ledger``) matches.
- Model Serving streams may lack ``response.created``/``response.completed``, carry a top-level
  ``id`` on every event, attach ``databricks_output`` to the last event, and hold two whole
  response lifecycles with a bare ``{"type": "function_call_output", ...}`` event between them.
- MLflow's AgentServer sends ``{"trace_id": ...}`` and ``{"error": "<text>"}`` with no ``type``.
- A ``function_call`` is the caller's only when it names a tool the caller bound
  (``client_tools``); its deltas stream live as ``tool_call_chunks`` when
  ``response.output_item.added`` names it. Every other call is buffered (never a partial
  ``server_tool_call`` block) and becomes one block when done. A caller's call that arrives
  whole (Model Serving and MLflow send calls as ``done`` items only) is held until the stream
  ends, and becomes the agent's own if a ``function_call_output`` answers it meanwhile, as in
  ``decode_reply``. (A call that already streamed live cannot be taken back: it stays in
  ``tool_calls`` and its result is still a ``server_tool_result`` block.)
- All metadata and usage go on one last chunk (``_responses_reply``).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from langchain_core.messages import AIMessageChunk
from langchain_core.messages.ai import UsageMetadata

from langchain_dbx_serving.errors import AgentError, StreamInterruptedError
from langchain_dbx_serving.protocols import _responses_chunks as emit
from langchain_dbx_serving.protocols import _responses_items as items
from langchain_dbx_serving.protocols._common import as_str, parse_event
from langchain_dbx_serving.protocols._responses_ledger import ItemLedger, StreamedItem
from langchain_dbx_serving.protocols._responses_reply import ResponseMetadata


class StreamDecoder:
    """Decode a responses SSE stream, one ``data`` payload at a time, into chunks.

    Text deltas arrive as ``str`` content, reasoning as indexed ``reasoning`` blocks, calls of
    the caller's tools (``client_tools``, the names bound in this request) as
    ``tool_call_chunks``, the agent's own tool calls and results as whole ``server_tool_call``
    and ``server_tool_result`` blocks, other items (MCP requests, ...) as ``non_standard``
    blocks. ``finish`` emits the one chunk that carries ``response_metadata`` and
    ``usage_metadata`` (after any held caller's tool calls).

    The decoder is the event dispatch over two parts: the item ledger (``ItemLedger``: per-item
    state, ids, slots, done items, held calls) and the reply metadata (``ResponseMetadata``).
    After the stream, ``output_items``, ``custom_outputs``, ``usage``, ``response_id``,
    ``trace_id`` and ``trace`` describe the whole reply.

    Example:
        >>> decoder = StreamDecoder()
        >>> chunks = decoder.feed('{"type": "response.output_text.delta", "item_id": "m1", '
        ...                       '"delta": "Hi"}')
        >>> chunks += decoder.feed("[DONE]")
        >>> chunks += decoder.finish()
        >>> sum(chunks[1:], chunks[0]).text
        'Hi'
    """

    def __init__(self, *, client_tools: Collection[str] = ()) -> None:
        self._client_tools = items.as_tool_names(client_tools)
        self._ledger = ItemLedger()
        self._meta = ResponseMetadata()
        self._emitted: list[AIMessageChunk] = []
        self._saw_done_marker = False
        self._saw_completion = False
        self._finished = False

    # ---- public state --------------------------------------------------------------------

    @property
    def output_items(self) -> list[dict[str, Any]]:
        """Every finished output item so far, in order, each once (function_call_output too)."""
        return self._ledger.output_items

    @property
    def completed_items(self) -> list[dict[str, Any]]:
        """The output items whose ``done`` event (or whole item) has arrived, in order."""
        return self._ledger.completed_items

    @property
    def custom_outputs(self) -> dict[str, Any] | None:
        """The ``custom_outputs`` of every event so far, merged key by key (later keys win)."""
        return self._meta.custom_outputs

    @property
    def usage(self) -> UsageMetadata | None:
        """Token usage, summed over the response lifecycles of the stream."""
        return self._meta.usage

    @property
    def response_id(self) -> str | None:
        """The response id, else the request id that Model Serving puts on every event."""
        return self._meta.id

    @property
    def trace_id(self) -> str | None:
        """The MLflow trace id (AgentServer's ``trace_id`` event or the returned trace)."""
        return self._meta.trace_id

    @property
    def trace(self) -> Any:
        """The MLflow trace dict from ``databricks_output``, when the endpoint returned one."""
        return self._meta.trace

    # ---- feeding -------------------------------------------------------------------------

    def feed(self, data: str) -> list[AIMessageChunk]:
        """Decode one SSE ``data`` payload (JSON text or ``[DONE]``) into chunks."""
        stripped = data.strip()
        if not stripped or stripped == "[DONE]":
            self._saw_done_marker |= stripped == "[DONE]"
            return []
        event = parse_event(data)
        if not isinstance(event, dict):
            raise items.malformed("an event that is not a JSON object", event)
        try:
            chunks = self._dispatch(event)
        except AgentError as err:
            err.request_id = err.request_id or self._meta.request_id
            raise
        self._emitted.extend(chunks)
        return chunks

    def finish(self) -> list[AIMessageChunk]:
        """Emit the last chunk (metadata and usage); raise if the reply never completed."""
        if self._finished:
            return []
        self._finished = True
        if not self._complete():
            partial = self._emitted[0] + self._emitted[1:] if self._emitted else None
            raise StreamInterruptedError(
                "the responses stream ended before the reply was complete (no "
                "response.completed event, no [DONE] and no finished output item): the "
                "connection probably dropped; retry the request",
                partial=partial,
            )
        tail = self._unfinished_calls()
        self._emitted.extend(tail)
        last = emit.chunk(
            response_metadata=self._meta.build(output=self.output_items),
            usage_metadata=self.usage,
            id=self.response_id,
            chunk_position="last",
        )
        return [*tail, last]

    def _unfinished_calls(self) -> list[AIMessageChunk]:
        """Buffered calls whose ``done`` never came (the stream is complete), then held calls."""
        chunks = [
            c for call in self._ledger.unfinished_buffered_calls() for c in self._call_done(call)
        ]
        for item in self._ledger.take_held():
            call_id, name = items.call_id_of(item), as_str(item.get("name"))
            index = self._ledger.take_tool_index()
            chunks.append(emit.tool_chunk(index, call_id, name, items.arguments_of(item)))
        return chunks

    def _complete(self) -> bool:
        if self._saw_done_marker or self._saw_completion:
            return True
        return self._ledger.saw_item_done and not self._ledger.open_items_streamed()

    # ---- dispatch ------------------------------------------------------------------------

    def _dispatch(self, event: dict[str, Any]) -> list[AIMessageChunk]:
        kind = event.get("type")
        if kind != "response.output_text.delta":
            self._ledger.last_text = None  # the next text delta searches its slot again
        if kind is not None and not isinstance(kind, str):
            raise items.malformed("an event whose type is not a string", event)
        if kind in items.ITEM_TYPES:
            # A bare item between two agent turns (Model Serving): a finished item.
            self._meta.absorb_event(event, with_id=False)
            return self._item_done(event, None)
        # Model Serving puts the request id on every typed event; a whole reply's id is the
        # response id, read with the rest of the reply.
        self._meta.absorb_event(event, with_id=kind is not None)
        if kind is None:
            return self._untyped(event)
        handler = _HANDLERS.get(kind)
        return handler(self, event) if handler else []

    def _untyped(self, event: dict[str, Any]) -> list[AIMessageChunk]:
        error = items.error_in(event)
        if error is not None:
            raise error
        if "output" in event or event.get("object") == "response":
            return self._absorb_response(event)  # a whole reply instead of a stream
        if "choices" in event:
            raise items.malformed("a chat-completions chunk in a responses stream", event)
        return []  # trace_id / databricks_output / custom_outputs only: already noted

    def _on_error(self, event: dict[str, Any]) -> list[AIMessageChunk]:
        nested = event.get("error")
        fields = {k: v for k, v in event.items() if k != "type"}
        source = {"error": nested} if isinstance(nested, Mapping) else {"error": fields}
        raise items.error_in(source) or items.malformed("an error event", event)

    def _on_failed(self, event: dict[str, Any]) -> list[AIMessageChunk]:
        response = event.get("response")
        error = items.error_in(response) if isinstance(response, Mapping) else None
        raise error or items.error_in({"status": "failed"}) or items.malformed("failure", event)

    def _on_created(self, event: dict[str, Any]) -> list[AIMessageChunk]:
        response = items.parse_shape(items.ResponseFields, event.get("response") or {}, event)
        self._ledger.new_lifecycle()
        self._meta.absorb_created(response)
        return []

    def _on_completed(self, event: dict[str, Any]) -> list[AIMessageChunk]:
        response = event.get("response")
        if response is not None and not isinstance(response, dict):
            raise items.malformed("a response.completed event without a response object", event)
        return self._absorb_response(response or {})

    def _absorb_response(self, body: dict[str, Any]) -> list[AIMessageChunk]:
        """A finished response (``response.completed`` or a whole reply fed as one event)."""
        error = items.error_in(body)
        if error is not None:
            raise error
        response = items.parse_shape(items.ResponseFields, body, body)
        self._meta.absorb_event(body, with_id=False)
        self._meta.absorb_response(body, response)
        chunks: list[AIMessageChunk] = []
        for item in self._ledger.unseen(response.output or []):
            chunks.extend(self._item_done(item, None))
        self._ledger.new_lifecycle()
        self._saw_completion = True
        return chunks

    # ---- items ---------------------------------------------------------------------------

    def _on_item_added(self, event: dict[str, Any]) -> list[AIMessageChunk]:
        parsed = items.parse_shape(items.ItemEvent, event, event)
        item = parsed.item
        kind = items.item_kind(item)
        if kind == "other":
            return []  # its done event carries everything
        slot = self._ledger.new_slot(kind, as_str(item.get("id")), parsed.output_index)
        slot.added = item
        if kind != "function_call":
            return []
        slot.call_id, slot.name = as_str(item.get("call_id")), as_str(item.get("name"))
        slot.args = items.arguments_of(item)
        if not items.names_callers_tool(item, self._client_tools):
            return []  # the agent's own call: one server_tool_call block when it is done
        slot.live, slot.tool_index = True, self._ledger.take_tool_index()
        return [emit.tool_chunk(slot.tool_index, slot.call_id, slot.name, slot.args)]

    def _on_text_delta(self, event: dict[str, Any]) -> list[AIMessageChunk]:
        delta = items.parse_shape(items.Delta, event, event)
        self._ledger.text_slot(delta).add_text(delta.delta)
        return [emit.chunk(delta.delta)] if delta.delta else []

    def _on_annotation(self, event: dict[str, Any]) -> list[AIMessageChunk]:
        parsed = items.parse_shape(items.AnnotationEvent, event, event)
        slot = self._ledger.slot_for_delta("message", parsed)
        slot.annotations.append(parsed.annotation)
        return [emit.chunk([{"type": "text", "text": "", "annotations": [parsed.annotation]}])]

    def _on_arguments_delta(self, event: dict[str, Any]) -> list[AIMessageChunk]:
        delta = items.parse_shape(items.Delta, event, event)
        slot = self._ledger.slot_for_delta("function_call", delta)
        slot.args += delta.delta
        if not slot.live:
            return []  # buffered until the call is done (or the stream ends)
        return [emit.tool_chunk(slot.tool_index, None, None, delta.delta)]

    def _on_reasoning_delta(self, event: dict[str, Any]) -> list[AIMessageChunk]:
        delta = items.parse_shape(items.Delta, event, event)
        slot = self._ledger.slot_for_delta("reasoning", delta)
        if event.get("type") == "response.reasoning_text.delta":
            key = ("content", delta.content_index or 0)
        else:
            key = ("summary", delta.summary_index or 0)
        piece = emit.reasoning_piece(slot, key, delta.delta, self._ledger.take_block_index)
        return [emit.chunk([piece])]

    def _call_done(self, item: dict[str, Any]) -> list[AIMessageChunk]:
        """A finished ``function_call`` that did not stream live as the caller's."""
        if items.names_callers_tool(item, self._client_tools) and not self._ledger.answered(item):
            self._ledger.held.append(item)  # the caller's, unless the agent answers it first
            return []
        return [emit.chunk([items.server_tool_call_block(item)])]

    def _tool_result(self, item: dict[str, Any]) -> list[AIMessageChunk]:
        """The agent's tool result; a held call it answers was the agent's own: shown first."""
        answered = self._ledger.take_held_answered_by(item)
        blocks = [items.server_tool_call_block(h) for h in answered]
        blocks.append(items.server_tool_result_block(item))
        return [emit.chunk(blocks)]

    def _on_item_done(self, event: dict[str, Any]) -> list[AIMessageChunk]:
        parsed = items.parse_shape(items.ItemEvent, event, event)
        return self._item_done(parsed.item, parsed.output_index)

    def _item_done(self, item: dict[str, Any], output_index: int | None) -> list[AIMessageChunk]:
        new, slot = self._ledger.record_done(item, output_index)
        if not new:
            return []
        return self._whole_item(item) if slot is None else self._rest_of(slot, item)

    def _rest_of(self, slot: StreamedItem, item: dict[str, Any]) -> list[AIMessageChunk]:
        """Chunks for what a done item holds beyond what its deltas already streamed."""
        if slot.kind == "function_call" and not slot.live:
            return self._call_done(item)
        if slot.kind == "function_call":
            return emit.rest_of_live_call(slot, item)
        if not slot.streamed or (slot.kind == "reasoning" and not slot.parts):
            return self._whole_item(item)
        if slot.kind == "reasoning":
            return emit.rest_of_reasoning(slot, item, self._ledger.take_block_index)
        return emit.rest_of_message(slot, item)

    def _whole_item(self, item: dict[str, Any]) -> list[AIMessageChunk]:
        """Chunks for an item nothing of which was streamed."""
        kind = items.item_kind(item)
        if kind == "function_call":
            return self._call_done(item)
        if item.get("type") == "function_call_output":
            return self._tool_result(item)
        blocks = items.item_blocks(item)
        if kind == "message" and items.is_plain_text(blocks):
            text = items.message_text(item)
            return [emit.chunk(text)] if text else []
        return [emit.chunk(blocks)] if blocks else []


_HANDLERS = {
    "response.created": StreamDecoder._on_created,
    "response.output_item.added": StreamDecoder._on_item_added,
    "response.output_item.done": StreamDecoder._on_item_done,
    "response.output_text.delta": StreamDecoder._on_text_delta,
    "response.output_text.annotation.added": StreamDecoder._on_annotation,
    "response.function_call_arguments.delta": StreamDecoder._on_arguments_delta,
    "response.reasoning_summary_text.delta": StreamDecoder._on_reasoning_delta,
    "response.reasoning_text.delta": StreamDecoder._on_reasoning_delta,
    "response.completed": StreamDecoder._on_completed,
    "response.incomplete": StreamDecoder._on_completed,
    "response.failed": StreamDecoder._on_failed,
    "error": StreamDecoder._on_error,
    "response.error": StreamDecoder._on_error,
}
