"""The responses-protocol stream decoder: SSE events in, ``AIMessageChunk``s out.

Facts this follows (PROTOCOLS.md sections 3, 5 and 7):

- ``response.output_item.done`` repeats an item whose text or arguments may already have
  streamed as deltas: only what was not streamed is emitted. An item that arrives *only* as
  ``done`` (common from Model Serving) is emitted in full.
- Item ids can differ between the ``added`` and ``delta`` events of one item, and between
  ``delta`` and ``done``: a delta or a done item is matched to an open item by id, then by
  ``output_index``, then by kind and content.
- Model Serving streams may lack ``response.created``/``response.completed``, carry a top-level
  ``id`` on every event, attach ``databricks_output`` to the last event, and hold two whole
  response lifecycles with a bare ``{"type": "function_call_output", ...}`` event between them.
- MLflow's AgentServer sends ``{"trace_id": ...}`` and ``{"error": "<text>"}`` events with no
  ``type``.
- A ``function_call`` is the caller's only when it names a tool the caller bound
  (``client_tools``). When ``response.output_item.added`` names such a tool, its argument
  deltas stream live as ``tool_call_chunks``. Every other call (the agent's own, or one whose
  name is not known yet) is buffered: never a partial ``server_tool_call`` block. When it is
  done, the agent's own call becomes one ``server_tool_call`` block; a caller's call that was
  not streamed live (Model Serving and MLflow send calls as ``done`` items only) is held until
  the stream ends, and becomes the agent's own if a ``function_call_output`` answers it
  meanwhile, so that the stream reads like ``decode_reply`` of the whole reply. (A call that
  already streamed live cannot be taken back: if the agent then answers it itself, it stays
  in ``tool_calls`` and its result is still a ``server_tool_result`` block.)
- All metadata and usage go on one last chunk, because LangChain adds chunks with
  ``merge_dicts`` (strings concatenate, usage adds up).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from langchain_core.messages import AIMessageChunk
from langchain_core.messages.ai import UsageMetadata, add_usage
from langchain_core.messages.tool import tool_call_chunk

from langchain_dbx_serving.errors import AgentError, StreamInterruptedError
from langchain_dbx_serving.protocols import _responses_items as items
from langchain_dbx_serving.protocols._common import (
    databricks_output_metadata,
    map_usage,
    parse_event,
)
from langchain_dbx_serving.protocols._responses_items import StreamedItem


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _chunk(content: str | list[Any] = "", **kwargs: Any) -> AIMessageChunk:
    return AIMessageChunk(content=content, **kwargs)


class StreamDecoder:
    """Decode a responses SSE stream, one ``data`` payload at a time, into chunks.

    Text deltas arrive as ``str`` content, reasoning as indexed ``reasoning`` blocks, calls of
    the caller's tools (``client_tools``, the names bound in this request) as
    ``tool_call_chunks``, the agent's own tool calls and results as whole ``server_tool_call``
    and ``server_tool_result`` blocks, other items (MCP requests, ...) as ``non_standard``
    blocks. ``finish`` emits the one chunk that carries ``response_metadata`` and
    ``usage_metadata`` (after any held caller's tool calls).

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
        self._held: list[dict[str, Any]] = []  # caller's calls that arrived whole, not answered
        self._emitted: list[AIMessageChunk] = []
        self._entries: list[dict[str, Any] | StreamedItem] = []
        self._slots: list[StreamedItem] = []
        self._lifecycle_done: list[dict[str, Any]] = []
        self._next_block = 0
        self._next_tool = 0
        self._saw_done_marker = False
        self._saw_completion = False
        self._saw_item_done = False
        self._finished = False
        self._response_id: str | None = None
        self._event_id: str | None = None
        self._status: str | None = None
        self._model: str | None = None
        self._incomplete_details: Any = None
        self._custom_outputs: dict[str, Any] | None = None
        self._databricks: dict[str, Any] = {}
        self._trace_id: str | None = None
        self._usages: dict[str, UsageMetadata] = {}

    # ---- public state --------------------------------------------------------------------

    @property
    def output_items(self) -> list[dict[str, Any]]:
        """Every finished output item so far, in order, each once (function_call_output too)."""
        found: list[dict[str, Any]] = []
        for entry in self._entries:
            if isinstance(entry, StreamedItem):
                if entry.streamed:
                    found.append(entry.as_item())
            else:
                found.append(entry)
        return found

    @property
    def completed_items(self) -> list[dict[str, Any]]:
        """The output items whose ``done`` event (or whole item) has arrived, in order."""
        return [entry for entry in self._entries if not isinstance(entry, StreamedItem)]

    @property
    def custom_outputs(self) -> dict[str, Any] | None:
        """The ``custom_outputs`` of every event so far, merged key by key (later keys win)."""
        return self._custom_outputs

    @property
    def usage(self) -> UsageMetadata | None:
        """Token usage, summed over the response lifecycles of the stream."""
        total: UsageMetadata | None = None
        for usage in self._usages.values():
            total = add_usage(total, usage) if total is not None else usage
        return total

    @property
    def response_id(self) -> str | None:
        """The response id, else the request id that Model Serving puts on every event."""
        return self._response_id or self._event_id

    @property
    def trace_id(self) -> str | None:
        """The MLflow trace id (AgentServer's ``trace_id`` event or the returned trace)."""
        return self._trace_id or self._databricks.get("trace_id")

    @property
    def trace(self) -> Any:
        """The MLflow trace dict from ``databricks_output``, when the endpoint returned one."""
        return self._databricks.get("trace")

    # ---- feeding -------------------------------------------------------------------------

    def feed(self, data: str) -> list[AIMessageChunk]:
        """Decode one SSE ``data`` payload (JSON text or ``[DONE]``) into chunks."""
        if data.strip() == "[DONE]":
            self._saw_done_marker = True
            return []
        if not data.strip():
            return []
        event = parse_event(data)
        if not isinstance(event, dict):
            raise items.malformed("an event that is not a JSON object", event)
        try:
            chunks = self._dispatch(event)
        except AgentError as err:
            err.request_id = err.request_id or self._databricks.get("databricks_request_id")
            err.request_id = err.request_id or self._event_id
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
        last = _chunk(
            response_metadata=items.build_response_metadata(
                response_id=self.response_id,
                status=self._status,
                model=self._model,
                custom_outputs=self._custom_outputs,
                databricks=self._databricks,
                trace_id=self._trace_id,
                output=self.output_items,
                incomplete_details=self._incomplete_details,
            ),
            usage_metadata=self.usage,
            id=self.response_id,
            chunk_position="last",
        )
        return [*tail, last]

    def _unfinished_calls(self) -> list[AIMessageChunk]:
        """Buffered calls whose ``done`` never came (the stream is complete), then held calls."""
        chunks: list[AIMessageChunk] = []
        for entry in self._entries:
            if isinstance(entry, StreamedItem) and entry.kind == "function_call" and not entry.live:
                chunks.extend(self._call_done(entry.as_item()) if entry.streamed else [])
        for item in self._held:
            index = self._take_tool_index()
            name = _str(item.get("name"))
            chunks.append(
                self._tool_chunk(index, items.call_id_of(item), name, items.arguments_of(item))
            )
        self._held = []
        return chunks

    def _complete(self) -> bool:
        if self._saw_done_marker or self._saw_completion:
            return True
        unfinished = any(s.streamed for s in self._slots)
        return self._saw_item_done and not unfinished

    # ---- dispatch ------------------------------------------------------------------------

    def _dispatch(self, event: dict[str, Any]) -> list[AIMessageChunk]:
        kind = event.get("type")
        if kind is not None and not isinstance(kind, str):
            raise items.malformed("an event whose type is not a string", event)
        if kind in items.ITEM_TYPES:
            # A bare item between two agent turns (Model Serving): a finished item.
            self._note_common(event, with_id=False)
            return self._item_done(event, None)
        # Model Serving puts the request id on every typed event; a whole reply's id is the
        # response id, read with the rest of the reply.
        self._note_common(event, with_id=kind is not None)
        if kind is None:
            return self._untyped(event)
        handler = _HANDLERS.get(kind)
        return handler(self, event) if handler else []

    def _note_common(self, event: Mapping[str, Any], *, with_id: bool) -> None:
        custom = event.get("custom_outputs")
        if isinstance(custom, dict):
            # Accumulated key by key over the events, as on the chat-completions side.
            self._custom_outputs = {**(self._custom_outputs or {}), **custom}
        found = databricks_output_metadata(event)
        if found:
            self._databricks = found
        if isinstance(event.get("trace_id"), str):
            self._trace_id = event["trace_id"]
        if with_id and isinstance(event.get("id"), str) and self._event_id is None:
            self._event_id = event["id"]

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
        self._retire_slots()
        self._lifecycle_done = []
        self._response_id = response.id or self._response_id
        self._model = response.model or self._model
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
        self._response_id = response.id or self._response_id
        self._model = response.model or self._model
        self._status = response.status or self._status
        self._incomplete_details = response.incomplete_details or self._incomplete_details
        self._note_common(body, with_id=False)
        self._trace_id = items.trace_id_in(body) or self._trace_id
        usage = map_usage(response.usage)
        if usage is not None:
            self._usages[response.id or f"#{len(self._usages)}"] = usage
        chunks = self._unseen_output(response.output or [])
        self._retire_slots()
        self._lifecycle_done = []
        self._saw_completion = True
        return chunks

    def _unseen_output(self, output: list[Any]) -> list[AIMessageChunk]:
        """Emit the items of a finished response that no done event delivered."""
        seen = [items.item_key(item) for item in self._lifecycle_done]
        chunks: list[AIMessageChunk] = []
        for item in output:
            if not isinstance(item, dict):
                raise items.malformed("an output item that is not an object", item)
            key = items.item_key(item)
            if key in seen:
                seen.remove(key)
                continue
            chunks.extend(self._item_done(item, None))
        return chunks

    def _retire_slots(self) -> None:
        # A new lifecycle restarts output_index at 0: old open items must not match it.
        for slot in self._slots:
            slot.retired = True

    # ---- items ---------------------------------------------------------------------------

    def _new_slot(self, kind: str, item_id: str | None, output_index: int | None) -> StreamedItem:
        slot = StreamedItem(kind=kind, ids={item_id}, output_index=output_index)
        self._slots.append(slot)
        self._entries.append(slot)
        return slot

    def _on_item_added(self, event: dict[str, Any]) -> list[AIMessageChunk]:
        parsed = items.parse_shape(items.ItemEvent, event, event)
        item = parsed.item
        kind = items.item_kind(item)
        if kind == "other":
            return []  # its done event carries everything
        slot = self._new_slot(kind, _str(item.get("id")), parsed.output_index)
        slot.added = item
        if kind != "function_call":
            return []
        slot.call_id, slot.name = _str(item.get("call_id")), _str(item.get("name"))
        slot.args = items.arguments_of(item)
        if not items.names_callers_tool(item, self._client_tools):
            return []  # the agent's own call: one server_tool_call block when it is done
        slot.live, slot.tool_index = True, self._take_tool_index()
        return [self._tool_chunk(slot.tool_index, slot.call_id, slot.name, slot.args)]

    def _slot_for_delta(self, kind: str, event: items.Event) -> StreamedItem:
        live = [s for s in self._slots if s.kind == kind and not s.retired]
        found = next((s for s in live if event.item_id in s.ids), None)
        if found is None and event.output_index is not None:
            found = next((s for s in live if s.output_index == event.output_index), None)
        if found is None:
            # The same item under a new id: an `added` item whose deltas have not started.
            found = next(
                (s for s in reversed(live) if s.added is not None and not s.delta_ids), None
            )
        if found is None:
            found = self._new_slot(kind, event.item_id, event.output_index)
        found.ids.add(event.item_id)
        found.delta_ids.add(event.item_id)
        return found

    def _on_text_delta(self, event: dict[str, Any]) -> list[AIMessageChunk]:
        delta = items.parse_shape(items.Delta, event, event)
        slot = self._slot_for_delta("message", delta)
        slot.text += delta.delta
        return [_chunk(delta.delta)] if delta.delta else []

    def _on_annotation(self, event: dict[str, Any]) -> list[AIMessageChunk]:
        parsed = items.parse_shape(items.AnnotationEvent, event, event)
        slot = self._slot_for_delta("message", parsed)
        slot.annotations.append(parsed.annotation)
        return [_chunk([{"type": "text", "text": "", "annotations": [parsed.annotation]}])]

    def _on_arguments_delta(self, event: dict[str, Any]) -> list[AIMessageChunk]:
        delta = items.parse_shape(items.Delta, event, event)
        slot = self._slot_for_delta("function_call", delta)
        slot.args += delta.delta
        if not slot.live:
            return []  # buffered until the call is done (or the stream ends)
        return [self._tool_chunk(slot.tool_index, None, None, delta.delta)]

    def _on_reasoning_delta(self, event: dict[str, Any]) -> list[AIMessageChunk]:
        delta = items.parse_shape(items.Delta, event, event)
        slot = self._slot_for_delta("reasoning", delta)
        if event.get("type") == "response.reasoning_text.delta":
            key = ("content", delta.content_index or 0)
        else:
            key = ("summary", delta.summary_index or 0)
        return [_chunk([self._reasoning_piece(slot, key, delta.delta)])]

    def _reasoning_piece(
        self, slot: StreamedItem, key: tuple[str, int], text: str
    ) -> dict[str, Any]:
        block: dict[str, Any] = {"type": "reasoning", "reasoning": text}
        if key not in slot.parts:
            slot.parts[key] = [self._next_block, ""]
            self._next_block += 1
            if slot.first_id() is not None:
                block["id"] = slot.first_id()
        part = slot.parts[key]
        part[1] += text
        block["index"] = part[0]
        return block

    def _take_tool_index(self) -> int:
        index, self._next_tool = self._next_tool, self._next_tool + 1
        return index

    @staticmethod
    def _tool_chunk(
        index: int | None, call_id: str | None, name: str | None, args: str
    ) -> AIMessageChunk:
        piece = tool_call_chunk(name=name, args=args, id=call_id, index=index)
        return _chunk(tool_call_chunks=[piece])

    def _call_done(self, item: dict[str, Any]) -> list[AIMessageChunk]:
        """A finished ``function_call`` that did not stream live as the caller's."""
        if items.names_callers_tool(item, self._client_tools) and not self._answered(item):
            self._held.append(item)  # the caller's, unless the agent answers it before the end
            return []
        return [_chunk([items.server_tool_call_block(item)])]

    def _answered(self, call: Mapping[str, Any]) -> bool:
        call_id = items.call_id_of(call)
        return call_id is not None and any(
            isinstance(e, dict)
            and e.get("type") == "function_call_output"
            and e.get("call_id") == call_id
            for e in self._entries
        )

    def _tool_result(self, item: dict[str, Any]) -> list[AIMessageChunk]:
        """The agent's tool result; a held call it answers was the agent's own: shown first."""
        call_id = item.get("call_id")
        answered = [
            h for h in self._held if isinstance(call_id, str) and items.call_id_of(h) == call_id
        ]
        self._held = [h for h in self._held if h not in answered]
        blocks = [items.server_tool_call_block(h) for h in answered]
        blocks.append(items.server_tool_result_block(item))
        return [_chunk(blocks)]

    def _on_item_done(self, event: dict[str, Any]) -> list[AIMessageChunk]:
        parsed = items.parse_shape(items.ItemEvent, event, event)
        return self._item_done(parsed.item, parsed.output_index)

    def _item_done(self, item: dict[str, Any], output_index: int | None) -> list[AIMessageChunk]:
        self._saw_item_done = True
        if self._repeated_tool_result(item):
            return []
        self._lifecycle_done.append(item)
        kind = items.item_kind(item)
        slot = self._match(kind, item, output_index) if kind != "other" else None
        if slot is None:
            self._entries.append(item)
            return self._whole_item(item)
        self._slots.remove(slot)
        self._entries[self._entries.index(slot)] = item
        return self._rest_of(slot, item)

    def _repeated_tool_result(self, item: dict[str, Any]) -> bool:
        """A tool result already delivered (a bare item event, then its done event)."""
        if item.get("type") != "function_call_output":
            return False
        key = items.item_key(item)
        return any(isinstance(e, dict) and items.item_key(e) == key for e in self._entries)

    def _match(
        self, kind: str, item: Mapping[str, Any], output_index: int | None
    ) -> StreamedItem | None:
        candidates = [s for s in self._slots if s.kind == kind]
        item_id = _str(item.get("id"))
        call_id = _str(item.get("call_id")) if kind == "function_call" else None
        for slot in candidates:
            if (item_id is not None and item_id in slot.ids) or (
                call_id is not None and call_id == slot.call_id
            ):
                return slot
        live = [s for s in candidates if not s.retired]
        if output_index is not None:
            for slot in live:
                if slot.output_index == output_index and slot.consistent_with(item):
                    return slot
        return next((s for s in candidates if s.consistent_with(item)), None)

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
            return [_chunk(text)] if text else []
        return [_chunk(blocks)] if blocks else []

    def _rest_of(self, slot: StreamedItem, item: dict[str, Any]) -> list[AIMessageChunk]:
        """Chunks for what a done item holds beyond what its deltas already streamed."""
        if slot.kind == "function_call":
            return self._rest_of_call(slot, item)
        if slot.kind == "reasoning":
            return self._rest_of_reasoning(slot, item)
        if not slot.streamed:
            return self._whole_item(item)
        chunks: list[AIMessageChunk] = []
        full = items.message_text(item)
        if full.startswith(slot.text) and len(full) > len(slot.text):
            chunks.append(_chunk(full[len(slot.text) :]))
        missing = list(items.message_annotations(item))
        for annotation in slot.annotations:
            if annotation in missing:
                missing.remove(annotation)
        others = [b for b in items.message_blocks(item) if b["type"] != "text"]
        if missing:
            others.insert(0, {"type": "text", "text": "", "annotations": missing})
        if others:
            chunks.append(_chunk(others))
        return chunks

    def _rest_of_call(self, slot: StreamedItem, item: dict[str, Any]) -> list[AIMessageChunk]:
        if not slot.live:
            return self._call_done(item)
        call_id = items.call_id_of(item) if slot.call_id is None else None
        name = _str(item.get("name")) if slot.name is None else None
        full = items.arguments_of(item)
        rest = full[len(slot.args) :] if full.startswith(slot.args) else ""
        if call_id is None and name is None and not rest:
            return []
        return [self._tool_chunk(slot.tool_index, call_id, name, rest)]

    def _rest_of_reasoning(self, slot: StreamedItem, item: dict[str, Any]) -> list[AIMessageChunk]:
        if not slot.parts:
            return self._whole_item(item)
        blocks: list[dict[str, Any]] = []
        for key, text in items.reasoning_parts(item):
            streamed = slot.parts.get(key, [None, ""])[1]
            if key in slot.parts and not text.startswith(streamed):
                continue
            if key not in slot.parts or len(text) > len(streamed):
                blocks.append(self._reasoning_piece(slot, key, text[len(streamed) :]))
        extras = items.reasoning_extras(item)
        if extras:
            first = min(part[0] for part in slot.parts.values())
            blocks.append({"type": "reasoning", "index": first, "extras": extras})
        return [_chunk(blocks)] if blocks else []


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
