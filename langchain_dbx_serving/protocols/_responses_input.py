"""A ``ResponsesAgentRequest``'s ``input`` items as LangChain messages: the server side.

The inverse of :func:`~langchain_dbx_serving.protocols._responses_encode.encode_input`, for code
that *serves* a responses agent (``langchain_dbx_serving.serving``): ``encode_input`` of the
messages returned here gives back the same items (up to the item ids a plain string has none
of). Output items are read with the same functions the reply decoders use
(``_responses_items``), so an item means the same thing in both directions.

- ``user`` / ``system`` / ``developer`` messages become ``HumanMessage`` / ``SystemMessage``
  (a developer message is a ``SystemMessage`` marked the way langchain-openai marks it);
  ``input_text`` parts become ``text`` blocks, ``input_image`` parts with a URL become
  ``image_url`` blocks, other parts are kept as they came.
- Assistant items of one turn (``message`` with role ``assistant``, ``reasoning``,
  ``function_call`` and unknown item types) fold into one ``AIMessage``: text and reasoning
  blocks keep their item ids, ``function_call`` items become ``tool_calls`` (in a history every
  call is one the agent made, answered by the ``function_call_output`` that follows).
- ``function_call_output`` becomes a ``ToolMessage`` and ends the assistant turn.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)

from langchain_dbx_serving.protocols._responses_items import (
    function_call_to_tool_call,
    is_plain_text,
    item_kind,
    message_blocks,
    non_standard,
    reasoning_blocks,
)

__all__ = ["decode_input"]

_INPUT_ROLES = frozenset({"user", "system", "developer"})


def decode_input(items: str | Sequence[Any]) -> list[BaseMessage]:
    """Turn a request's ``input`` (a string or a list of items) into LangChain messages.

    Example:
        >>> [m.type for m in decode_input([
        ...     {"role": "user", "content": "weather in Paris?"},
        ...     {"type": "function_call", "call_id": "c1", "name": "weather",
        ...      "arguments": '{"city": "Paris"}'},
        ...     {"type": "function_call_output", "call_id": "c1", "output": "18 C"},
        ...     {"type": "message", "role": "assistant", "id": "m1",
        ...      "content": [{"type": "output_text", "text": "It is 18 C."}]},
        ... ])]
        ['human', 'ai', 'tool', 'ai']
    """
    if isinstance(items, str):
        return [HumanMessage(items)]
    if not isinstance(items, Sequence):
        raise ValueError(f"'input' must be a string or a list of items, got {items!r}")
    return _Folder().fold(items)


class _Folder:
    """Walks the items, gathering each assistant turn's items into one ``AIMessage``."""

    def __init__(self) -> None:
        self.out: list[BaseMessage] = []
        self.blocks: list[dict[str, Any]] = []
        self.calls: list[Any] = []
        self.invalid: list[Any] = []
        self.message_id: str | None = None

    def fold(self, items: Sequence[Any]) -> list[BaseMessage]:
        for index, item in enumerate(items):
            if not isinstance(item, Mapping):
                raise ValueError(f"input[{index}] must be an object, got {item!r}")
            self._item(item)
        self._close_turn()
        return self.out

    def _item(self, item: Mapping[str, Any]) -> None:
        kind = item_kind(item)
        role = item.get("role")
        if kind == "message" and role in _INPUT_ROLES:
            self._close_turn()
            self.out.append(_input_message(role, item.get("content")))
        elif kind == "message":
            if self.message_id is None and isinstance(item.get("id"), str):
                self.message_id = item["id"]
            self.blocks += message_blocks(item)
        elif kind == "reasoning":
            self.blocks += reasoning_blocks(item)
        elif kind == "function_call":
            call = function_call_to_tool_call(item)
            (self.invalid if call.get("type") == "invalid_tool_call" else self.calls).append(call)
        elif item.get("type") == "function_call_output":
            self._close_turn()
            self.out.append(_tool_message(item))
        else:
            self.blocks.append(non_standard(dict(item)))

    def _close_turn(self) -> None:
        if not (self.blocks or self.calls or self.invalid):
            return
        blocks = self.blocks
        content: str | list[Any] = (
            "".join(b["text"] for b in blocks) if is_plain_text(blocks) else list(blocks)
        )
        self.out.append(
            AIMessage(
                content=content,
                tool_calls=self.calls,
                invalid_tool_calls=self.invalid,
                id=self.message_id,
            )
        )
        self.blocks, self.calls, self.invalid, self.message_id = [], [], [], None


def _input_message(role: str, content: Any) -> BaseMessage:
    value = _input_content(content)
    if role == "user":
        return HumanMessage(value)
    if role == "developer":
        return SystemMessage(value, additional_kwargs={"__openai_role__": "developer"})
    return SystemMessage(value)


def _input_content(content: Any) -> str | list[Any]:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise ValueError(
            f"a message's content must be a string or a list of parts, got {content!r}"
        )
    return [_content_block(part) for part in content]


def _content_block(part: Any) -> Any:
    """An input part as a LangChain content block (the inverse of ``input_part``)."""
    if not isinstance(part, Mapping):
        return part
    kind = part.get("type")
    if kind == "input_text" and isinstance(part.get("text"), str):
        return {"type": "text", "text": part["text"]}
    if kind == "input_image" and isinstance(part.get("image_url"), str):
        image: dict[str, Any] = {"url": part["image_url"]}
        if part.get("detail") is not None:
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    return dict(part)


def _tool_message(item: Mapping[str, Any]) -> ToolMessage:
    output = item.get("output")
    if isinstance(output, list):
        content: str | list[Any] = [_content_block(part) for part in output]
    elif isinstance(output, str):
        content = output
    else:
        content = json.dumps(output)
    call_id = item.get("call_id")
    return ToolMessage(content=content, tool_call_id=call_id if isinstance(call_id, str) else "")
