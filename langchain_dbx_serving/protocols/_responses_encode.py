"""LangChain messages and chat-completions-named parameters as a ``ResponsesAgentRequest`` body.

See PROTOCOLS.md section 3. The facts that shape this module:

- user/system/developer parts must be ``input_text`` / ``input_image`` / ``input_file``; a
  ``text`` part is answered with a 400;
- MLflow validates assistant history either as a plain-string message or as an output
  ``message`` item, which *requires* an ``id`` (``ResponseOutputMessage.id: str``), so
  assistant text is sent as ``{"type": "message", "role": "assistant", "id", "content":
  [{"type": "output_text", ...}]}`` with an id taken from the block, the message or its position;
- a ``function_call_output`` must follow the ``function_call`` it answers;
- the agent's own tool turns (``server_tool_call`` / ``server_tool_result`` blocks, as the
  decoders produce them) go back as the ``function_call`` / ``function_call_output`` items they
  came from, so the agent sees its whole previous turn.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    ChatMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)

from langchain_dbx_serving.protocols._common import encode_arguments

_INPUT_PART_TYPES = frozenset({"input_text", "input_image", "input_file"})
_ROLES = {"user": "user", "human": "user", "system": "system", "developer": "developer"}
_ASSISTANT_ROLES = frozenset({"assistant", "ai"})
# Blocks of an AIMessage that restate its tool_calls / invalid_tool_calls: those are sent from
# the message's tool-call lists, once.
_TOOL_CALL_BLOCKS = frozenset({"tool_call_chunk", "invalid_tool_call"})
# Chat-completions parameters this module translates; every other key goes to the top level of
# the body unchanged.
_MAPPED = frozenset(
    {"max_tokens", "response_format", "tools", "tool_choice", "reasoning_effort", "input", "stream"}
)


def encode_request(
    messages: Sequence[BaseMessage], params: Mapping[str, Any], *, stream: bool
) -> dict[str, Any]:
    """Build a responses request body from LangChain messages and chat-completions params.

    Example:
        >>> from langchain_core.messages import HumanMessage
        >>> encode_request([HumanMessage("hi")], {"max_tokens": 5}, stream=True)
        {'input': [{'role': 'user', 'content': 'hi'}], 'max_output_tokens': 5, 'stream': True}
    """
    body: dict[str, Any] = {"input": encode_input(messages)}
    body.update(map_params(params))
    if stream:
        body["stream"] = True
    return body


def map_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Translate chat-completions parameter names to responses ones.

    ``stop`` and ``n`` have no responses equivalent. They are passed through unchanged rather
    than dropped: MLflow's ``ResponsesAgentRequest`` ignores unknown fields (pydantic's default
    ``extra="ignore"``), so they cost nothing there, and an endpoint that cannot honour them
    (an OpenAI-style responses route) says so with a 400 instead of silently ignoring a stop
    sequence the caller relied on.
    """
    out = {k: v for k, v in params.items() if k not in _MAPPED}
    if "max_tokens" in params:
        # An explicit max_output_tokens (responses naming) wins over the chat-completions name.
        out.setdefault("max_output_tokens", params["max_tokens"])
    if "tools" in params:
        out["tools"] = [map_tool(tool) for tool in params["tools"]]
    if "tool_choice" in params:
        out["tool_choice"] = map_tool_choice(params["tool_choice"])
    if "response_format" in params:
        text = _dict_of(params.get("text"))
        text.setdefault("format", map_response_format(params["response_format"]))
        out["text"] = text
    if "reasoning_effort" in params:
        reasoning = _dict_of(params.get("reasoning"))
        reasoning.setdefault("effort", params["reasoning_effort"])
        out["reasoning"] = reasoning
    return out


def _dict_of(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


def map_tool(tool: Any) -> Any:
    """An OpenAI chat tool as a responses function tool; other tools pass unchanged."""
    if not (
        isinstance(tool, Mapping)
        and tool.get("type") == "function"
        and isinstance(tool.get("function"), Mapping)
    ):
        return dict(tool) if isinstance(tool, Mapping) else tool
    function = tool["function"]
    mapped: dict[str, Any] = {"type": "function", "name": function.get("name")}
    if function.get("description") is not None:
        mapped["description"] = function["description"]
    # MLflow's FunctionTool requires ``parameters``: a zero-argument tool gets an empty schema.
    mapped["parameters"] = function.get("parameters") or {"type": "object", "properties": {}}
    if function.get("strict") is not None:
        mapped["strict"] = function["strict"]
    return mapped


def map_tool_choice(choice: Any) -> Any:
    """``{"type": "function", "function": {"name": n}}`` -> ``{"type": "function", "name": n}``."""
    if (
        isinstance(choice, Mapping)
        and choice.get("type") == "function"
        and isinstance(choice.get("function"), Mapping)
    ):
        return {"type": "function", "name": choice["function"].get("name")}
    return choice


def map_response_format(response_format: Any) -> Any:
    """A chat ``response_format`` as a responses ``text.format``."""
    if not isinstance(response_format, Mapping):
        return response_format
    schema = response_format.get("json_schema")
    if response_format.get("type") == "json_schema" and isinstance(schema, Mapping):
        fmt: dict[str, Any] = {"type": "json_schema"}
        for key in ("name", "schema", "strict", "description"):
            if schema.get(key) is not None:
                fmt[key] = schema[key]
        return fmt
    # {"type": "json_object"}, {"type": "text"}, or already in responses form.
    return dict(response_format)


# ---- input items -------------------------------------------------------------------------


def encode_input(messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
    """The ``input`` item list for a conversation."""
    items: list[dict[str, Any]] = []
    for position, message in enumerate(messages):
        items.extend(_encode_message(message, position))
    return items


def _encode_message(message: BaseMessage, position: int) -> list[dict[str, Any]]:
    if isinstance(message, AIMessage):
        return _assistant_items(message, position)
    if isinstance(message, ToolMessage):
        return [_tool_output(message)]
    if isinstance(message, ChatMessage) and message.role in _ASSISTANT_ROLES:
        return _assistant_items(AIMessage(content=message.content, id=message.id), position)
    if items := _whole_items(message):
        return items  # e.g. mcp_approval_response items: turns that are not messages
    return [{"role": _role_of(message), "content": _input_content(message.content)}]


# Input items a caller sends on their own, not inside a message's content.
_CALLER_ITEMS = frozenset({"mcp_approval_response", "function_call_output"})


def _whole_items(message: BaseMessage) -> list[dict[str, Any]]:
    """A human message made only of ``non_standard`` blocks holding whole input items."""
    content = message.content
    if not isinstance(message, HumanMessage) or not isinstance(content, list) or not content:
        return []
    values = [b.get("value") if isinstance(b, Mapping) else None for b in content]
    if all(isinstance(b, Mapping) and b.get("type") == "non_standard" for b in content) and all(
        isinstance(v, Mapping) and v.get("type") in _CALLER_ITEMS for v in values
    ):
        return [dict(v) for v in values if isinstance(v, Mapping)]
    return []


def _role_of(message: BaseMessage) -> str:
    if isinstance(message, HumanMessage):
        return "user"
    if isinstance(message, SystemMessage):
        # langchain-openai's convention for developer messages.
        developer = message.additional_kwargs.get("__openai_role__") == "developer"
        return "developer" if developer else "system"
    if isinstance(message, ChatMessage) and message.role in _ROLES:
        return _ROLES[message.role]
    role = message.role if isinstance(message, ChatMessage) else message.type
    raise ValueError(
        f"the responses protocol has no place for a {type(message).__name__} with role "
        f"{role!r}: use HumanMessage, SystemMessage, AIMessage or ToolMessage"
    )


def _input_content(content: str | list[Any]) -> str | list[Any]:
    if isinstance(content, str):
        return content
    return [input_part(block) for block in content]


def input_part(block: Any) -> Any:
    """A LangChain (v1 or OpenAI-style) content block as a responses input part.

    Text becomes ``input_text`` (never ``text``), images ``input_image``, files
    ``input_file``. Blocks with no responses equivalent pass unchanged so that the endpoint,
    not this client, decides whether it accepts them.
    """
    if isinstance(block, str):
        return {"type": "input_text", "text": block}
    if not isinstance(block, Mapping):
        return block
    kind = block.get("type")
    if kind in ("text", "text-plain") and isinstance(block.get("text"), str):
        return {"type": "input_text", "text": block["text"]}
    if kind in _INPUT_PART_TYPES:
        return dict(block)
    if kind == "image_url":
        return _image_url_part(block)
    if kind == "image":
        return _image_part(block)
    if kind == "file":
        return _file_part(block)
    if kind == "non_standard" and "value" in block:
        return block["value"]
    return dict(block)


def _data_uri(block: Mapping[str, Any], data: str) -> str:
    return f"data:{block.get('mime_type') or 'application/octet-stream'};base64,{data}"


def _image_url_part(block: Mapping[str, Any]) -> dict[str, Any]:
    image = block.get("image_url")
    part: dict[str, Any] = {"type": "input_image"}
    if isinstance(image, Mapping):
        part["image_url"] = image.get("url")
        if image.get("detail") is not None:
            part["detail"] = image["detail"]
    else:
        part["image_url"] = image
    return part


def _source(block: Mapping[str, Any]) -> tuple[str | None, str | None, str | None]:
    """``(url, base64, file_id)`` of a v1 block or a v0 ``source_type`` block."""
    source_type = block.get("source_type")
    data = block.get("data")
    url = block.get("url") or (data if source_type == "url" else None)
    b64 = block.get("base64") or (data if source_type == "base64" else None)
    file_id = block.get("file_id") or (block.get("id") if source_type == "id" else None)
    return url, b64, file_id


def _image_part(block: Mapping[str, Any]) -> dict[str, Any]:
    url, b64, file_id = _source(block)
    part: dict[str, Any] = {"type": "input_image"}
    if url:
        part["image_url"] = url
    elif b64:
        part["image_url"] = _data_uri(block, b64)
    elif file_id:
        part["file_id"] = file_id
    extras = block.get("extras") if isinstance(block.get("extras"), Mapping) else {}
    detail = block.get("detail", extras.get("detail"))
    if detail is not None:
        part["detail"] = detail
    return part


def _file_part(block: Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(block.get("file"), Mapping):  # OpenAI chat-completions file part
        return {"type": "input_file", **block["file"]}
    url, b64, file_id = _source(block)
    part: dict[str, Any] = {"type": "input_file"}
    if b64:
        part["file_data"] = _data_uri(block, b64)
    elif url:
        part["file_url"] = url
    elif file_id:
        part["file_id"] = file_id
    for holder in (block, block.get("extras"), block.get("metadata")):
        if isinstance(holder, Mapping) and isinstance(holder.get("filename"), str):
            part["filename"] = holder["filename"]
            break
    return part


def _tool_output(message: ToolMessage) -> dict[str, Any]:
    content = message.content
    output: Any = content
    if isinstance(content, list):
        parts = [input_part(block) for block in content]
        if all(isinstance(p, Mapping) and p.get("type") == "input_text" for p in parts):
            output = "".join(p["text"] for p in parts)
        else:
            output = parts
    return {"type": "function_call_output", "call_id": message.tool_call_id, "output": output}


def _function_call(call: Mapping[str, Any], *, raw_args: bool = False) -> dict[str, Any]:
    args = call.get("args")
    arguments = (args or "") if raw_args else encode_arguments(args)
    return {
        "type": "function_call",
        "call_id": call.get("id") or "",
        "name": call.get("name") or "",
        "arguments": arguments,
    }


def _wire_fields(block: Mapping[str, Any]) -> dict[str, Any]:
    """The item id and status a server block keeps under ``extras`` (see the decoders)."""
    extras = block.get("extras")
    if not isinstance(extras, Mapping):
        return {}
    found: dict[str, Any] = {}
    if isinstance(extras.get("item_id"), str):
        found["id"] = extras["item_id"]
    if isinstance(extras.get("status"), str):
        found["status"] = extras["status"]
    return found


def server_call_item(block: Mapping[str, Any]) -> dict[str, Any]:
    """A ``server_tool_call`` block (a call the agent ran itself) as a ``function_call`` item."""
    extras = block.get("extras") if isinstance(block.get("extras"), Mapping) else {}
    args = block.get("args")
    raw = extras.get("arguments")
    if isinstance(raw, str):
        arguments = raw  # arguments that were not a JSON object go back as they came
    elif isinstance(args, str):
        arguments = args
    else:
        arguments = encode_arguments(args)
    item = {
        "type": "function_call",
        "call_id": block.get("id") or "",
        "name": block.get("name") or "",
        "arguments": arguments,
    }
    return {**item, **_wire_fields(block)}


def server_result_item(block: Mapping[str, Any]) -> dict[str, Any]:
    """A ``server_tool_result`` block as a ``function_call_output`` item."""
    output = block.get("output")
    if output is None:
        output = ""
    elif not isinstance(output, (str, list)):
        output = json.dumps(output, default=str)
    item = {
        "type": "function_call_output",
        "call_id": block.get("tool_call_id") or "",
        "output": output,
    }
    return {**item, **_wire_fields(block)}


def _assistant_items(message: AIMessage, position: int) -> list[dict[str, Any]]:
    return _AssistantEncoder(message, position).items()


class _AssistantEncoder:
    """Walks an AIMessage's blocks in order, emitting input items.

    Consecutive text blocks of one item id form one ``message`` item; reasoning blocks with an
    id form ``reasoning`` items; kept wire items (``non_standard`` blocks) are sent back as they
    came, a ``function_call_output`` right after its ``function_call``; the agent's own tool
    turns (server blocks) go back as items; the remaining tool calls close the turn.
    """

    def __init__(self, message: AIMessage, position: int) -> None:
        self._message = message
        self._default_id = message.id or f"msg_{position}"
        self._out: list[dict[str, Any]] = []
        self._parts: list[dict[str, Any]] = []
        self._text_id: str | None = None
        self._pending: list[dict[str, Any]] = [_function_call(c) for c in message.tool_calls]
        self._pending += [_function_call(c, raw_args=True) for c in message.invalid_tool_calls]

    def items(self) -> list[dict[str, Any]]:
        content = self._message.content
        for block in [content] if isinstance(content, str) else content:
            self._block(block)
        self._flush_text()
        # An assistant turn with no text, reasoning or calls carries nothing: it is not sent.
        self._out.extend(self._pending)
        return self._out

    def _take_call(self, call_id: Any) -> dict[str, Any] | None:
        """Remove and return the pending function_call item with this call id."""
        for index, call in enumerate(self._pending):
            if call_id and call["call_id"] == call_id:
                return self._pending.pop(index)
        return None

    def _answer(self, call_id: Any) -> None:
        """Send a pending tool call right before the output that answers it."""
        answered = self._take_call(call_id)
        if answered is not None:
            self._out.append(answered)

    def _block(self, block: Any) -> None:
        if isinstance(block, str):
            self._text(block, None, None)
            return
        if not isinstance(block, Mapping):
            return
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            self._text(block["text"], block.get("id"), block.get("annotations"))
        elif kind == "reasoning":
            self._reasoning(block)
        elif kind == "tool_call":
            self._flush_text()
            self._out.append(self._take_call(block.get("id")) or _function_call(block))
        elif kind in _TOOL_CALL_BLOCKS:
            return
        elif kind == "server_tool_call":
            self._flush_text()
            self._out.append(server_call_item(block))
        elif kind == "server_tool_result":
            self._flush_text()
            self._answer(block.get("tool_call_id"))
            self._out.append(server_result_item(block))
        elif kind == "non_standard" and "value" in block:
            self._wire_object(block["value"])
        elif kind == "refusal":
            # A refusal is a part of the assistant message, next to its output_text parts.
            self._parts.append({"type": "refusal", "refusal": str(block.get("refusal") or "")})
        else:
            self._flush_text()
            self._out.append(dict(block))

    def _text(self, text: str, block_id: Any, annotations: Any) -> None:
        annotations = list(annotations) if isinstance(annotations, list) else []
        if not text and annotations and self._parts:
            # Annotations streamed on their own (empty-text blocks) belong to the text before.
            self._parts[-1].setdefault("annotations", []).extend(annotations)
            return
        if not text and not annotations:
            return
        if isinstance(block_id, str) and self._text_id and block_id != self._text_id:
            self._flush_text()
        if isinstance(block_id, str) and self._text_id is None:
            self._text_id = block_id
        self._parts.append({"type": "output_text", "text": text, "annotations": annotations})

    def _flush_text(self) -> None:
        if self._parts:
            item_id = self._text_id or self._default_id
            self._out.append(
                {"type": "message", "role": "assistant", "id": item_id, "content": self._parts}
            )
        self._parts, self._text_id = [], None

    def _reasoning(self, block: Mapping[str, Any]) -> None:
        item_id = block.get("id")
        if not isinstance(item_id, str):
            # MLflow's ResponseReasoningItem requires an id and reasoning from another source
            # is not something an agent can use: reasoning without an id is not sent.
            return
        self._flush_text()
        last = self._out[-1] if self._out else None
        if not (last and last.get("type") == "reasoning" and last.get("id") == item_id):
            last = {"type": "reasoning", "id": item_id, "summary": []}
            self._out.append(last)
        if isinstance(block.get("reasoning"), str):
            last["summary"].append({"type": "summary_text", "text": block["reasoning"]})
        extras = block.get("extras")
        if isinstance(extras, Mapping) and extras.get("encrypted_content") is not None:
            last["encrypted_content"] = extras["encrypted_content"]

    def _wire_object(self, value: Any) -> None:
        if isinstance(value, Mapping) and value.get("type") == "refusal":
            self._parts.append(dict(value))
            return
        self._flush_text()
        if not isinstance(value, Mapping):
            return  # a non_standard payload that is not an object has no item form
        if value.get("type") == "function_call_output":
            self._answer(value.get("call_id"))
        # Items the agent produced (its own tool results, MCP approval requests, ...) go back
        # exactly as they came, so the agent sees its whole previous turn.
        self._out.append(dict(value))
