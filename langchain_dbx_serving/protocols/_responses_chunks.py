"""The chunks the responses stream decoder emits for a piece of an output item.

Pure functions of an open item (``StreamedItem``) and the finished wire item: what a ``done``
item adds beyond what its deltas already streamed, and the shape of tool-call and reasoning
chunks. The decoder (``_responses_stream``) decides when; these say what.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from langchain_core.messages import AIMessageChunk
from langchain_core.messages.tool import tool_call_chunk

from langchain_dbx_serving.protocols import _responses_items as items
from langchain_dbx_serving.protocols._common import as_str
from langchain_dbx_serving.protocols._fast_chunks import text_chunk
from langchain_dbx_serving.protocols._responses_ledger import StreamedItem


def chunk(content: str | list[Any] = "", **kwargs: Any) -> AIMessageChunk:
    return AIMessageChunk(content=content, **kwargs) if kwargs else text_chunk(content)


def tool_chunk(
    index: int | None, call_id: str | None, name: str | None, args: str
) -> AIMessageChunk:
    """A chunk holding one ``tool_call_chunk``."""
    piece = tool_call_chunk(name=name, args=args, id=call_id, index=index)
    return chunk(tool_call_chunks=[piece])


def reasoning_piece(
    slot: StreamedItem, key: tuple[str, int], text: str, next_index: Callable[[], int]
) -> dict[str, Any]:
    """An indexed ``reasoning`` block for more text of one part (a new part takes an index)."""
    block: dict[str, Any] = {"type": "reasoning", "reasoning": text}
    if key not in slot.parts:
        slot.parts[key] = [next_index(), ""]
        if slot.first_id() is not None:
            block["id"] = slot.first_id()
    part = slot.parts[key]
    part[1] += text
    block["index"] = part[0]
    return block


def rest_of_message(slot: StreamedItem, item: dict[str, Any]) -> list[AIMessageChunk]:
    """What a done ``message`` holds beyond its streamed text and annotations."""
    chunks: list[AIMessageChunk] = []
    full = items.message_text(item)
    if full.startswith(slot.text) and len(full) > len(slot.text):
        chunks.append(chunk(full[len(slot.text) :]))
    missing = list(items.message_annotations(item))
    for annotation in slot.annotations:
        if annotation in missing:
            missing.remove(annotation)
    others = [b for b in items.message_blocks(item) if b["type"] != "text"]
    if missing:
        others.insert(0, {"type": "text", "text": "", "annotations": missing})
    if others:
        chunks.append(chunk(others))
    return chunks


def rest_of_live_call(slot: StreamedItem, item: dict[str, Any]) -> list[AIMessageChunk]:
    """What a done caller's call adds to the ``tool_call_chunks`` that streamed live."""
    call_id = items.call_id_of(item) if slot.call_id is None else None
    name = as_str(item.get("name")) if slot.name is None else None
    full = items.arguments_of(item)
    rest = full[len(slot.args) :] if full.startswith(slot.args) else ""
    if call_id is None and name is None and not rest:
        return []
    return [tool_chunk(slot.tool_index, call_id, name, rest)]


def rest_of_reasoning(
    slot: StreamedItem, item: dict[str, Any], next_index: Callable[[], int]
) -> list[AIMessageChunk]:
    """What a done ``reasoning`` item holds beyond its streamed parts (and its extras)."""
    blocks: list[dict[str, Any]] = []
    for key, text in items.reasoning_parts(item):
        streamed = slot.parts.get(key, [None, ""])[1]
        if key in slot.parts and not text.startswith(streamed):
            continue
        if key not in slot.parts or len(text) > len(streamed):
            blocks.append(reasoning_piece(slot, key, text[len(streamed) :], next_index))
    extras = items.reasoning_extras(item)
    if extras:
        first = min(part[0] for part in slot.parts.values())
        blocks.append({"type": "reasoning", "index": first, "extras": extras})
    return [chunk(blocks)] if blocks else []
