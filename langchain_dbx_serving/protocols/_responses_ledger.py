"""The item ledger of a responses stream: every output item, its ids, its slot and its done.

A responses stream delivers one output item in pieces (``added``, deltas, ``done``), under ids
that may change between them, and may deliver it again (a bare item between two agent turns,
then its ``done``; ``response.completed`` repeating every done item). The ledger keeps what the
stream decoder needs to tell which item a piece belongs to and what is new:

- ``entries``: every output item in order, an open :class:`StreamedItem` until its ``done``
  arrives, then the finished wire item;
- open slots: item ids can differ between the ``added`` and ``delta`` events of one item, and
  between ``delta`` and ``done``, so a delta or a done item is matched to an open item by id,
  then by ``output_index``, then by kind and content;
- the items done in the current response lifecycle (to skip them in ``response.completed``);
- the caller's calls held until the stream ends (the agent may still answer them);
- the indexes handed out to tool-call chunks and reasoning blocks.

It builds no chunks: that is the decoder's job (``_responses_stream``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from langchain_dbx_serving.protocols import _responses_items as items
from langchain_dbx_serving.protocols._common import as_str


@dataclass
class StreamedItem:
    """What the stream decoder has seen (and emitted) of one output item not done yet."""

    kind: str
    ids: set[str | None] = field(default_factory=set)
    output_index: int | None = None
    added: dict[str, Any] | None = None
    delta_ids: set[str | None] = field(default_factory=set)
    retired: bool = False
    # The text deltas so far, joined when read: `text += delta` would copy the whole text at
    # every delta (quadratic in a long answer).
    text_parts: list[str] = field(default_factory=list)
    annotations: list[Any] = field(default_factory=list)
    tool_index: int | None = None
    live: bool = False  # a caller's call whose arguments stream as tool_call_chunks
    call_id: str | None = None
    name: str | None = None
    args: str = ""
    parts: dict[tuple[str, int], list[Any]] = field(default_factory=dict)  # key -> [index, text]

    @property
    def text(self) -> str:
        """The text the deltas streamed so far."""
        parts = self.text_parts
        if len(parts) > 1:
            parts[:] = ["".join(parts)]
        return parts[0] if parts else ""

    def add_text(self, delta: str) -> None:
        if delta:
            self.text_parts.append(delta)

    @property
    def streamed(self) -> bool:
        return bool(self.text or self.annotations or self.args or self.parts)

    def first_id(self) -> str | None:
        if self.added and isinstance(self.added.get("id"), str):
            return self.added["id"]
        return next((i for i in self.ids if isinstance(i, str)), None)

    def consistent_with(self, item: Mapping[str, Any]) -> bool:
        """Could ``item`` be the finished form of what this slot streamed?"""
        if self.kind == "message":
            return items.message_text(item).startswith(self.text)
        if self.kind == "function_call":
            return items.arguments_of(item).startswith(self.args)
        done = dict(items.reasoning_parts(item))
        return all(done.get(key, "").startswith(part[1]) for key, part in self.parts.items())

    def as_item(self) -> dict[str, Any]:
        """The item this slot streamed, for a stream that never sent its ``done`` event."""
        item: dict[str, Any] = dict(self.added or {"type": self.kind})
        if self.first_id() is not None:
            item["id"] = self.first_id()
        if self.kind == "message":
            item.setdefault("role", "assistant")
            part = {"type": "output_text", "text": self.text, "annotations": self.annotations}
            item["content"] = [part]
        elif self.kind == "function_call":
            item.update(call_id=self.call_id, name=self.name, arguments=self.args)
        else:
            ordered = sorted(self.parts.items())
            item["summary"] = [{"type": "summary_text", "text": p[1]} for _k, p in ordered]
        return item


class ItemLedger:
    """Per-item state of one responses stream: entries, open slots, done items, held calls."""

    def __init__(self) -> None:
        self.entries: list[dict[str, Any] | StreamedItem] = []
        self.held: list[dict[str, Any]] = []  # caller's calls that arrived whole, not answered
        self._slots: list[StreamedItem] = []
        self._lifecycle_done: list[dict[str, Any]] = []
        self._next_block = 0
        self._next_tool = 0
        self.saw_item_done = False
        # (item_id, output_index, slot) of the last text delta; see text_slot.
        self.last_text: tuple[Any, Any, StreamedItem] | None = None

    # ---- what the stream holds -----------------------------------------------------------

    @property
    def output_items(self) -> list[dict[str, Any]]:
        """Every finished output item so far, in order, each once (function_call_output too)."""
        found: list[dict[str, Any]] = []
        for entry in self.entries:
            if isinstance(entry, StreamedItem):
                if entry.streamed:
                    found.append(entry.as_item())
            else:
                found.append(entry)
        return found

    @property
    def completed_items(self) -> list[dict[str, Any]]:
        """The output items whose ``done`` event (or whole item) has arrived, in order."""
        return [entry for entry in self.entries if not isinstance(entry, StreamedItem)]

    def open_items_streamed(self) -> bool:
        """Has any item not done yet streamed something?"""
        return any(s.streamed for s in self._slots)

    def unfinished_buffered_calls(self) -> list[dict[str, Any]]:
        """Buffered (not live) calls that streamed arguments but whose ``done`` never came."""
        return [
            entry.as_item()
            for entry in self.entries
            if isinstance(entry, StreamedItem)
            and entry.kind == "function_call"
            and not entry.live
            and entry.streamed
        ]

    # ---- indexes -------------------------------------------------------------------------

    def take_tool_index(self) -> int:
        index, self._next_tool = self._next_tool, self._next_tool + 1
        return index

    def take_block_index(self) -> int:
        index, self._next_block = self._next_block, self._next_block + 1
        return index

    # ---- lifecycles ----------------------------------------------------------------------

    def new_lifecycle(self) -> None:
        """A new response lifecycle restarts ``output_index`` at 0: old open items must not
        match it, and its done items are new."""
        for slot in self._slots:
            slot.retired = True
        self._lifecycle_done = []

    def unseen(self, output: list[Any]) -> list[dict[str, Any]]:
        """The items of a finished response's ``output`` that no done event delivered."""
        seen = [items.item_key(item) for item in self._lifecycle_done]
        found: list[dict[str, Any]] = []
        for item in output:
            if not isinstance(item, dict):
                raise items.malformed("an output item that is not an object", item)
            key = items.item_key(item)
            if key in seen:
                seen.remove(key)
                continue
            found.append(item)
        return found

    # ---- slots ---------------------------------------------------------------------------

    def new_slot(self, kind: str, item_id: str | None, output_index: int | None) -> StreamedItem:
        slot = StreamedItem(kind=kind, ids={item_id}, output_index=output_index)
        self._slots.append(slot)
        self.entries.append(slot)
        return slot

    def slot_for_delta(self, kind: str, event: items.Event) -> StreamedItem:
        """The open item a delta belongs to: by id, by ``output_index``, or a new one."""
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
            found = self.new_slot(kind, event.item_id, event.output_index)
        found.ids.add(event.item_id)
        found.delta_ids.add(event.item_id)
        return found

    def text_slot(self, event: items.Event) -> StreamedItem:
        """``slot_for_delta("message", event)``, not searched again for the next delta of the
        same item as long as the decoder sets ``last_text`` to ``None`` on any other event
        (nothing else touched the ledger in between)."""
        last = self.last_text
        if last is not None and last[0] == event.item_id and last[1] == event.output_index:
            return last[2]
        slot = self.slot_for_delta("message", event)
        self.last_text = (event.item_id, event.output_index, slot)
        return slot

    def _match(
        self, kind: str, item: Mapping[str, Any], output_index: int | None
    ) -> StreamedItem | None:
        candidates = [s for s in self._slots if s.kind == kind]
        item_id = as_str(item.get("id"))
        call_id = as_str(item.get("call_id")) if kind == "function_call" else None
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

    # ---- done items ----------------------------------------------------------------------

    def record_done(
        self, item: dict[str, Any], output_index: int | None
    ) -> tuple[bool, StreamedItem | None]:
        """Record a finished item: ``(new, slot)``; ``new`` is False for a repeated tool
        result, ``slot`` is the open item it finishes (``None``: nothing of it streamed)."""
        self.saw_item_done = True
        if self._repeated_tool_result(item):
            return False, None
        self._lifecycle_done.append(item)
        kind = items.item_kind(item)
        slot = self._match(kind, item, output_index) if kind != "other" else None
        if slot is None:
            self.entries.append(item)
            return True, None
        self._slots.remove(slot)
        self.entries[self.entries.index(slot)] = item
        return True, slot

    def _repeated_tool_result(self, item: dict[str, Any]) -> bool:
        """A tool result already delivered (a bare item event, then its done event)."""
        if item.get("type") != "function_call_output":
            return False
        key = items.item_key(item)
        return any(isinstance(e, dict) and items.item_key(e) == key for e in self.entries)

    def answered(self, call: Mapping[str, Any]) -> bool:
        """Has a ``function_call_output`` of this stream answered the call?"""
        call_id = items.call_id_of(call)
        return call_id is not None and any(
            isinstance(e, dict)
            and e.get("type") == "function_call_output"
            and e.get("call_id") == call_id
            for e in self.entries
        )

    def take_held_answered_by(self, result: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Held calls a ``function_call_output`` answers (they were the agent's own)."""
        call_id = result.get("call_id")
        answered = [
            h for h in self.held if isinstance(call_id, str) and items.call_id_of(h) == call_id
        ]
        self.held = [h for h in self.held if h not in answered]
        return answered

    def take_held(self) -> list[dict[str, Any]]:
        held, self.held = self.held, []
        return held
