"""The server side of the responses protocol: LangChain messages as output items and events.

What an agent served with :func:`~langchain_dbx_serving.serving.as_responses_agent` sends.
Items are built by the request encoder (``encode_input``: an assistant turn already goes to the
wire as output items there), with two additions an output needs and a history does not:

- every ``function_call`` item gets an ``id`` (``fc_<call_id>``), so that its
  ``response.function_call_arguments.delta`` events and its ``output_item.done`` name one item;
- a ``reasoning`` block without an id gets one (``rs_<message id>``): MLflow requires it and the
  encoder drops reasoning it cannot name; reasoning in other providers' block shapes (Anthropic's
  ``thinking`` blocks, OpenAI's ``reasoning`` blocks with a ``summary`` list) becomes v1
  ``reasoning`` blocks first, so it is sent as reasoning and not as an unknown item.

The id of a text item is the text block's id, else the message's id, exactly as the encoder
chooses it (:func:`text_item_id`), so deltas streamed before the message is whole name the item
that ``output_item.done`` later completes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.messages.ai import UsageMetadata

from langchain_dbx_serving.protocols._responses_encode import encode_input

__all__ = [
    "arguments_delta_event",
    "reasoning_delta_event",
    "reasoning_item_id",
    "reasoning_texts",
    "call_item_id",
    "completed_event",
    "encode_usage",
    "item_added_event",
    "item_done_event",
    "output_items",
    "text_delta_event",
    "text_item_id",
]


def call_item_id(call_id: str) -> str:
    """The output item id of the ``function_call`` with this call id."""
    return f"fc_{call_id}"


def text_item_id(block: Any, message_id: str) -> str:
    """The id of the ``message`` item a text block (or string) of a message goes to."""
    if isinstance(block, Mapping) and isinstance(block.get("id"), str):
        return block["id"]
    return message_id


def reasoning_item_id(block: Mapping[str, Any], message_id: str) -> str:
    """The id of the ``reasoning`` item a reasoning block of a message goes to."""
    return block["id"] if isinstance(block.get("id"), str) else f"rs_{message_id}"


def reasoning_texts(block: Any) -> list[str] | None:
    """The reasoning text(s) of a block in any provider's shape; ``None``: not reasoning."""
    if not isinstance(block, Mapping):
        return None
    kind = block.get("type")
    if kind == "thinking" and isinstance(block.get("thinking"), str):
        return [block["thinking"]]
    if kind != "reasoning":
        return None
    if isinstance(block.get("reasoning"), str):
        return [block["reasoning"]]
    summary = block.get("summary")
    parts = summary if isinstance(summary, list) else []
    return [p["text"] for p in parts if isinstance(p, Mapping) and isinstance(p.get("text"), str)]


def _named_reasoning(message: AIMessage) -> AIMessage:
    if isinstance(message.content, str):
        return message
    content: list[Any] = []
    for block in message.content:
        texts = reasoning_texts(block)
        if texts is None:
            content.append(block)
            continue
        item_id = reasoning_item_id(block, str(message.id))
        extras = {"extras": block["extras"]} if isinstance(block.get("extras"), Mapping) else {}
        if isinstance(block.get("encrypted_content"), str):
            extras = {"extras": {"encrypted_content": block["encrypted_content"]}}
        content += [{"type": "reasoning", "reasoning": t, "id": item_id, **extras} for t in texts]
        if not texts:
            content.append({"type": "reasoning", "id": item_id, **extras})
    return message.model_copy(update={"content": content})


def output_items(messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
    """The output items of the AI and tool messages an agent produced in one turn.

    Each message must have an id (the text item's id). Other message types are not output.

    Example:
        >>> from langchain_core.messages import AIMessage, ToolMessage
        >>> [i["type"] for i in output_items([
        ...     AIMessage("", id="m1", tool_calls=[{"name": "f", "args": {}, "id": "c1"}]),
        ...     ToolMessage("12", tool_call_id="c1"),
        ...     AIMessage("It is 12.", id="m2"),
        ... ])]
        ['function_call', 'function_call_output', 'message']
    """
    items: list[dict[str, Any]] = []
    for message in messages:
        if isinstance(message, AIMessage):
            found = encode_input([_named_reasoning(message)])
        elif isinstance(message, ToolMessage):
            found = encode_input([message])
        else:
            continue
        for item in found:
            if item.get("type") == "function_call" and "id" not in item:
                item = {**item, "id": call_item_id(item["call_id"])}
            items.append(item)
    return items


def encode_usage(usages: Iterable[UsageMetadata | None]) -> dict[str, Any] | None:
    """The responses ``usage`` object for the sum of LangChain usages (``None`` if none)."""
    found = [u for u in usages if u]
    if not found:
        return None
    total: dict[str, int] = {"input": 0, "output": 0, "total": 0, "cached": 0, "reasoning": 0}
    for usage in found:
        total["input"] += usage.get("input_tokens", 0)
        total["output"] += usage.get("output_tokens", 0)
        total["total"] += usage.get("total_tokens", 0)
        total["cached"] += (usage.get("input_token_details") or {}).get("cache_read", 0) or 0
        total["reasoning"] += (usage.get("output_token_details") or {}).get("reasoning", 0) or 0
    return {
        "input_tokens": total["input"],
        "output_tokens": total["output"],
        "total_tokens": total["total"],
        "input_tokens_details": {"cached_tokens": total["cached"]},
        "output_tokens_details": {"reasoning_tokens": total["reasoning"]},
    }


def text_delta_event(item_id: str, delta: str) -> dict[str, Any]:
    return {"type": "response.output_text.delta", "item_id": item_id, "delta": delta}


def reasoning_delta_event(item_id: str, delta: str) -> dict[str, Any]:
    return {
        "type": "response.reasoning_summary_text.delta",
        "item_id": item_id,
        "summary_index": 0,
        "delta": delta,
    }


def arguments_delta_event(item_id: str, delta: str) -> dict[str, Any]:
    return {"type": "response.function_call_arguments.delta", "item_id": item_id, "delta": delta}


def item_added_event(item: Mapping[str, Any]) -> dict[str, Any]:
    return {"type": "response.output_item.added", "item": dict(item)}


def item_done_event(item: Mapping[str, Any]) -> dict[str, Any]:
    return {"type": "response.output_item.done", "item": dict(item)}


def completed_event(
    response_id: str,
    usage: Mapping[str, Any] | None,
    custom_outputs: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """``response.completed`` closing a stream: usage and ``custom_outputs`` (items were sent)."""
    response: dict[str, Any] = {
        "id": response_id,
        "object": "response",
        "status": "completed",
        "output": [],
    }
    if usage is not None:
        response["usage"] = dict(usage)
    event: dict[str, Any] = {"type": "response.completed", "response": response}
    if custom_outputs is not None:
        event["custom_outputs"] = dict(custom_outputs)
    return event
