"""Responses-protocol output items as LangChain content blocks, tool calls and metadata.

Shared by the whole-reply decoder (``responses.decode_reply``) and the stream decoder
(``_responses_stream.StreamDecoder``) so that both turn the same item into the same blocks;
the pydantic shapes of the stream events and replies they read are here too.

Item kinds (PROTOCOLS.md section 3):

- ``message``: its ``output_text`` parts become ``text`` blocks (``annotations`` kept); other
  parts (``refusal``, ...) become ``non_standard`` blocks.
- ``reasoning``: one ``reasoning`` block per summary (or ``reasoning_text``) part, kept out of
  ``message.text``; ``encrypted_content`` goes under ``extras``.
- ``function_call``: either a call *for the caller* or one the agent already ran itself.
  It is the caller's (a LangChain tool call, id = the item's ``call_id``) only when its
  ``name`` is one of the tools the caller bound in this request and, in a whole reply, no
  ``function_call_output`` of the same reply answers it. Every other call is the agent's own
  (its UC-function or retriever tools): a v1 ``server_tool_call`` block, so that a LangGraph
  ``ToolNode`` never tries to run it locally.
- ``function_call_output``: the agent's own tool result, a v1 ``server_tool_result`` block.
- anything else (``mcp_approval_request``, ``web_search_call``, unknown types): a
  ``non_standard`` block holding the item unchanged, never dropped.

Server blocks keep the item id under ``extras["item_id"]`` (and the wire ``status``, and the
raw ``arguments`` when they are not a JSON object) so that ``encode_request`` sends the
agent's tool turns back as they came.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from langchain_core.messages import AIMessage, InvalidToolCall, ToolCall
from langchain_core.messages.tool import invalid_tool_call, tool_call
from pydantic import BaseModel, ConfigDict, ValidationError

from langchain_dbx_serving._error_body import error_fields, error_text
from langchain_dbx_serving.errors import AgentError, MalformedResponseError
from langchain_dbx_serving.protocols._common import (
    as_str,
    parse_arguments,
    preview,
    raw_arguments,
)

_TEXT_PART_TYPES = frozenset({"output_text", "text", "input_text"})

# Item types that may arrive as a bare stream event (outside ``response.output_item.done``);
# Model Serving sends ``{"type": "function_call_output", ...}`` between two agent turns.
ITEM_TYPES = frozenset(
    {
        "message",
        "function_call",
        "function_call_output",
        "reasoning",
        "mcp_approval_request",
        "mcp_approval_response",
        "mcp_call",
        "mcp_list_tools",
        "web_search_call",
        "file_search_call",
        "computer_call",
        "computer_call_output",
        "code_interpreter_call",
        "image_generation_call",
        "local_shell_call",
        "local_shell_call_output",
        "custom_tool_call",
        "custom_tool_call_output",
    }
)


def malformed(what: str, payload: Any) -> MalformedResponseError:
    """A :class:`MalformedResponseError` whose message names (a preview of) the payload."""
    try:
        shown = json.dumps(payload, default=str)
    except (TypeError, ValueError):  # pragma: no cover - default=str makes this unreachable
        shown = repr(payload)
    return MalformedResponseError(
        f"the endpoint sent {what}: {preview(shown)!r} — is this a responses (ResponsesAgent) "
        "endpoint? Chat-completions endpoints need the chat-completions protocol.",
        event=preview(shown),
    )


def item_kind(item: Mapping[str, Any]) -> str:
    """``message``, ``function_call``, ``reasoning`` or ``other``."""
    kind = item.get("type")
    if kind == "message" or (kind is None and "content" in item and "role" in item):
        return "message"
    if kind in ("function_call", "reasoning"):
        return kind
    return "other"


def non_standard(value: Any) -> dict[str, Any]:
    """A LangChain v1 ``non_standard`` block holding a wire object unchanged."""
    return {"type": "non_standard", "value": value}


# ---- message items -----------------------------------------------------------------------


def _message_parts(item: Mapping[str, Any]) -> list[Any]:
    content = item.get("content")
    if isinstance(content, str):
        content = [content]
    if not isinstance(content, list):
        return []
    return [{"type": "output_text", "text": p} if isinstance(p, str) else p for p in content]


def _name_of(item: Mapping[str, Any]) -> str | None:
    """A ``function_call`` item's ``name``: a string, or absent; anything else is malformed."""
    name = item.get("name")
    if name is not None and not isinstance(name, str):
        raise malformed("a function_call item whose field `name` is not a string", item)
    return name


def _is_text_part(part: Any) -> bool:
    if isinstance(part, Mapping) and not isinstance(part.get("type", ""), str):
        raise malformed("a content part whose field `type` is not a string", part)
    return (
        isinstance(part, Mapping)
        and part.get("type") in _TEXT_PART_TYPES
        and isinstance(part.get("text"), str)
    )


def message_text(item: Mapping[str, Any]) -> str:
    """The answer text of a ``message`` item: its text parts, concatenated."""
    return "".join(p["text"] for p in _message_parts(item) if _is_text_part(p))


def message_annotations(item: Mapping[str, Any]) -> list[Any]:
    """Every annotation of every text part of a ``message`` item, in order."""
    found: list[Any] = []
    for part in _message_parts(item):
        if _is_text_part(part) and isinstance(part.get("annotations"), list):
            found.extend(part["annotations"])
    return found


def message_blocks(item: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Content blocks of a ``message`` item (text blocks carry the item id)."""
    item_id = as_str(item.get("id"))
    blocks: list[dict[str, Any]] = []
    for part in _message_parts(item):
        if not _is_text_part(part):
            blocks.append(non_standard(part))
            continue
        block: dict[str, Any] = {"type": "text", "text": part["text"]}
        if item_id:
            block["id"] = item_id
        annotations = part.get("annotations")
        if isinstance(annotations, list) and annotations:
            block["annotations"] = list(annotations)
        blocks.append(block)
    return blocks


# ---- reasoning items ---------------------------------------------------------------------


def reasoning_parts(item: Mapping[str, Any]) -> list[tuple[tuple[str, int], str]]:
    """``((kind, index), text)`` for each summary part and each ``reasoning_text`` part."""
    found: list[tuple[tuple[str, int], str]] = []
    for where in ("summary", "content"):
        parts = item.get(where)
        if not isinstance(parts, list):
            continue
        for index, part in enumerate(parts):
            text = part.get("text") if isinstance(part, Mapping) else part
            if isinstance(text, str):
                found.append(((where, index), text))
    return found


def reasoning_extras(item: Mapping[str, Any]) -> dict[str, Any]:
    """Provider data of a reasoning item worth keeping (``encrypted_content``)."""
    encrypted = item.get("encrypted_content")
    return {"encrypted_content": encrypted} if encrypted is not None else {}


def reasoning_blocks(item: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One ``reasoning`` block per reasoning part; at least one block per item."""
    item_id = as_str(item.get("id"))
    blocks: list[dict[str, Any]] = []
    for _key, text in reasoning_parts(item):
        block: dict[str, Any] = {"type": "reasoning", "reasoning": text}
        if item_id:
            block["id"] = item_id
        blocks.append(block)
    if not blocks:
        # An item with no readable summary (only encrypted content) is kept so that it can be
        # sent back in the next turn.
        blocks.append({"type": "reasoning", **({"id": item_id} if item_id else {})})
    extras = reasoning_extras(item)
    if extras:
        blocks[0]["extras"] = extras
    return blocks


# ---- function_call items -----------------------------------------------------------------


def call_id_of(item: Mapping[str, Any]) -> str | None:
    """The tool-call id of a ``function_call`` item: ``call_id``, else the item ``id``."""
    return as_str(item.get("call_id")) or as_str(item.get("id"))


def arguments_of(item: Mapping[str, Any]) -> str:
    """The JSON argument string of a ``function_call`` item (``""`` when absent)."""
    return raw_arguments(item.get("arguments"))


def function_call_to_tool_call(item: Mapping[str, Any]) -> ToolCall | InvalidToolCall:
    """A ``function_call`` item as a LangChain tool call (invalid when args are not JSON)."""
    call_id = call_id_of(item)
    name = _name_of(item)
    arguments = arguments_of(item)
    args, error = parse_arguments(arguments)
    if name is None:
        error = "the function_call item has no name"
    if args is None or error:
        return invalid_tool_call(name=name, args=arguments, id=call_id, error=error)
    return tool_call(name=name, args=args, id=call_id)


# ---- the agent's own tool turns -----------------------------------------------------------


def as_tool_names(client_tools: Collection[str]) -> frozenset[str]:
    """The caller's tool names as a set (a lone string is one name, not its letters)."""
    if isinstance(client_tools, str):
        return frozenset({client_tools})
    return frozenset(name for name in client_tools if isinstance(name, str))


def names_callers_tool(item: Mapping[str, Any], client_tools: frozenset[str]) -> bool:
    """Does this ``function_call`` item name one of the tools the caller bound?"""
    name = item.get("name")
    return isinstance(name, str) and name in client_tools


def answered_call_ids(items: Sequence[Any]) -> set[str]:
    """Call ids that a ``function_call_output`` item of the list answers."""
    return {
        item["call_id"]
        for item in items
        if isinstance(item, Mapping)
        and item.get("type") == "function_call_output"
        and isinstance(item.get("call_id"), str)
    }


def _wire_extras(item: Mapping[str, Any]) -> dict[str, Any]:
    extras: dict[str, Any] = {}
    if isinstance(item.get("id"), str):
        extras["item_id"] = item["id"]
    if isinstance(item.get("status"), str):
        extras["status"] = item["status"]
    return extras


def server_tool_call_block(item: Mapping[str, Any]) -> dict[str, Any]:
    """A ``function_call`` the agent ran itself, as a v1 ``server_tool_call`` block."""
    arguments = arguments_of(item)
    args, _error = parse_arguments(arguments)
    block: dict[str, Any] = {
        "type": "server_tool_call",
        "id": call_id_of(item) or "",
        "name": _name_of(item) or "",
        "args": args if args is not None else {},
    }
    extras = _wire_extras(item)
    if args is None:
        extras["arguments"] = arguments  # not a JSON object: kept as sent, for the history
    if extras:
        block["extras"] = extras
    return block


def server_tool_result_block(item: Mapping[str, Any]) -> dict[str, Any]:
    """A ``function_call_output`` item as a v1 ``server_tool_result`` block."""
    block: dict[str, Any] = {
        "type": "server_tool_result",
        "tool_call_id": as_str(item.get("call_id")) or "",
        "status": "success",
    }
    if "output" in item:
        block["output"] = item["output"]
    extras = _wire_extras(item)
    if extras:
        block["extras"] = extras
    return block


# ---- whole output lists ------------------------------------------------------------------


def item_blocks(item: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Content blocks of an item (a ``function_call`` here is the agent's own)."""
    kind = item_kind(item)
    if kind == "message":
        return message_blocks(item)
    if kind == "reasoning":
        return reasoning_blocks(item)
    if kind == "function_call":
        return [server_tool_call_block(item)]
    if item.get("type") == "function_call_output":
        return [server_tool_result_block(item)]
    return [non_standard(dict(item))]


def is_plain_text(blocks: Sequence[Any]) -> bool:
    """True when the blocks are text only, with no annotations: then content is a ``str``."""
    return all(
        isinstance(b, Mapping) and b.get("type") == "text" and not b.get("annotations")
        for b in blocks
    )


def decode_output_items(items: Sequence[Any], *, client_tools: Collection[str] = ()) -> AIMessage:
    """Turn a responses ``output`` list into an :class:`AIMessage` (content and tool calls).

    Content is a plain ``str`` when the items hold only text; otherwise a list of LangChain v1
    blocks in item order. A ``function_call`` naming one of ``client_tools`` that no
    ``function_call_output`` of the list answers becomes a tool call (an invalid one when its
    arguments are not a JSON object); every other ``function_call`` is the agent's own and
    becomes a ``server_tool_call`` block, its output a ``server_tool_result`` block.

    Example:
        >>> msg = decode_output_items(
        ...     [
        ...         {"type": "function_call", "call_id": "c1", "name": "search",
        ...          "arguments": '{"q": "x"}'},
        ...         {"type": "function_call_output", "call_id": "c1", "output": "found"},
        ...         {"type": "message", "id": "m1", "content": [{"type": "output_text",
        ...          "text": "hi"}]},
        ...         {"type": "function_call", "call_id": "c2", "name": "ask_user",
        ...          "arguments": "{}"},
        ...     ],
        ...     client_tools={"ask_user", "search"},
        ... )
        >>> msg.text, [c["name"] for c in msg.tool_calls]
        ('hi', ['ask_user'])
        >>> [b["type"] for b in msg.content]
        ['server_tool_call', 'server_tool_result', 'text']
    """
    content, calls, invalid = output_parts(items, client_tools=client_tools)
    return AIMessage(content=content, tool_calls=calls, invalid_tool_calls=invalid)


def output_parts(
    items: Sequence[Any], *, client_tools: Collection[str] = ()
) -> tuple[str | list[Any], list[ToolCall], list[InvalidToolCall]]:
    """What :func:`decode_output_items` puts in its message: ``(content, tool_calls,
    invalid_tool_calls)``, for a caller that builds the message itself (``decode_reply``)."""
    tools = as_tool_names(client_tools)
    answered = answered_call_ids(items)
    blocks: list[dict[str, Any]] = []
    calls: list[ToolCall] = []
    invalid: list[InvalidToolCall] = []
    for item in items:
        if not isinstance(item, Mapping):
            raise malformed("an output item that is not an object", item)
        is_call = item_kind(item) == "function_call"
        if is_call and names_callers_tool(item, tools) and call_id_of(item) not in answered:
            call = function_call_to_tool_call(item)
            if call.get("type") == "invalid_tool_call":
                invalid.append(call)  # type: ignore[arg-type]
            else:
                calls.append(call)  # type: ignore[arg-type]
            continue
        blocks.extend(item_blocks(item))
    content: str | list[Any] = (
        "".join(b["text"] for b in blocks) if is_plain_text(blocks) else list(blocks)
    )
    return content, calls, invalid


# ---- errors and metadata -----------------------------------------------------------------


class ResponseFields(BaseModel):
    """The fields of a response object (a whole reply or ``response.completed``) we read."""

    model_config = ConfigDict(extra="ignore")
    id: str | None = None
    status: str | None = None
    model: str | None = None
    output: list[Any] | None = None
    usage: Any = None
    incomplete_details: Any = None


def error_in(obj: Mapping[str, Any]) -> AgentError | None:
    """The :class:`AgentError` a reply or event reports, or ``None``.

    The error shapes are those of :func:`langchain_dbx_serving._error_body.error_fields`;
    a responses object with ``status: "failed"`` is an error too.
    """
    found = error_fields(obj)
    if found is None and obj.get("status") == "failed":
        found = None, "the response failed and the endpoint gave no reason"
    if found is None:
        return None
    code, message = found
    text = message if isinstance(message, str) else preview(error_text(message))
    prefix = f"{code}: " if code else ""
    return AgentError(f"the agent reported an error: {prefix}{text}", error_code=code)


# ---- stream event shapes (only the fields we read; everything else is ignored) -----------


class Event(BaseModel):
    """A stream event: the item it belongs to (both optional: MLflow does not require them)."""

    model_config = ConfigDict(extra="ignore")
    item_id: str | None = None
    output_index: int | None = None


class Delta(Event):
    delta: str
    content_index: int | None = None
    summary_index: int | None = None


class AnnotationEvent(Event):
    annotation: Any


class ItemEvent(Event):
    item: dict[str, Any]


def parse_shape(model: type[BaseModel], data: Any, event: Mapping[str, Any]) -> Any:
    """Validate ``data`` (``event`` or a part of it); a bad shape names the whole event."""
    try:
        return model.model_validate(data)
    except ValidationError:
        kind = event.get("type")
        raise malformed(f"a {kind!r} event of an unexpected shape", event) from None


def item_key(item: Mapping[str, Any]) -> str:
    """Identity of an item, to match ``response.completed`` output against done items."""
    kind = item_kind(item)
    if kind == "message":
        key: Any = ["message", message_text(item)]
    elif kind == "function_call":
        key = ["function_call", call_id_of(item), arguments_of(item)]
    elif kind == "reasoning":
        key = ["reasoning", reasoning_parts(item)]
    else:
        key = {k: v for k, v in item.items() if k != "status"}
    return json.dumps(key, sort_keys=True, default=str)
