"""Server side of the local endpoint's requests: validation and decoding into LangChain messages.

Bodies are rejected the way Databricks rejects them (400 ``INVALID_PARAMETER_VALUE`` /
``BAD_REQUEST`` with a message), e.g. a responses input whose user message uses ``text`` parts
instead of ``input_text`` (MLflow's ``ResponsesAgentRequest`` validation refuses those).
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

from langchain_dbx_serving.protocols._common import parse_arguments
from langchain_dbx_serving.protocols._responses_input import decode_input
from langchain_dbx_serving.testing.local_endpoint.replies import ErrorReply

CHAT_COMPLETIONS = "chat_completions"
RESPONSES = "responses"
CHAT_AGENT = "chat_agent"
EMBEDDINGS = "embeddings"

_CHAT_ROLES = {"system", "developer", "user", "assistant", "tool", "function"}
_INPUT_PARTS = {"input_text", "input_image", "input_file"}
_ASSISTANT_PARTS = {"output_text", "input_text", "refusal"}


class RequestRejected(Exception):
    """A request the endpoint refuses; ``reply`` is the error answer to send."""

    def __init__(self, reply: ErrorReply) -> None:
        super().__init__(reply.message)
        self.reply = reply


def bad_request(message: str, code: str = "INVALID_PARAMETER_VALUE") -> RequestRejected:
    """A 400 rejection with a Databricks error code."""
    return RequestRejected(ErrorReply(400, code, message))


def parse_body(raw: bytes) -> Any:
    """The request body as JSON, or a 400 ``BAD_REQUEST`` naming the problem."""
    if not raw.strip():
        raise bad_request("The request body is empty: send a JSON object.", "BAD_REQUEST")
    # Strict JSON on purpose, not the package's lenient decoder (``_json.loads``): that one is
    # for replies, where real servers put raw control characters inside strings (PROTOCOLS.md
    # s.7). A request body is held to valid JSON, as clients (``dumps_request``) write it.
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise bad_request(f"Malformed JSON in the request body: {exc}", "BAD_REQUEST") from None
    except RecursionError:
        raise bad_request(
            "Malformed JSON in the request body: it is nested too deeply to parse.", "BAD_REQUEST"
        ) from None


def detect_shape(body: Mapping[str, Any], *, route_shape: str | None, chat_agent: bool) -> str:
    """The wire shape a request speaks: fixed by the route, or chosen from the body."""
    if chat_agent and route_shape != RESPONSES:
        return CHAT_AGENT
    if route_shape:
        return route_shape
    if "input" in body:
        return RESPONSES
    if "messages" in body:
        return CHAT_AGENT if chat_agent else CHAT_COMPLETIONS
    raise bad_request(
        "The request body has neither 'messages' (chat) nor 'input' (responses). "
        f"Top-level keys received: {sorted(body)}"
    )


def embedding_texts(body: Mapping[str, Any], *, route_shape: str | None, can_embed: bool) -> Any:
    """The texts of an embedding request, or ``None`` when the body is not one.

    On the embeddings route every body is one; on invocations a body whose ``input`` is a list
    of strings is, and so is a string ``input`` sent to an endpoint that embeds (a string sent
    to a chat endpoint stays a responses request).
    """
    if route_shape not in (None, EMBEDDINGS) or "messages" in body:
        return None
    texts = body.get("input")
    if route_shape is None:
        is_texts = (
            isinstance(texts, list) and bool(texts) and all(isinstance(t, str) for t in texts)
        )
        if not (is_texts or (can_embed and isinstance(texts, str))):
            return None
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise bad_request("'input' must be a string or a non-empty list of strings.")
    if not can_embed:
        raise bad_request(
            "This endpoint does not serve embeddings: send 'messages' or 'input' items."
        )
    return texts


def validate(shape: str, body: Mapping[str, Any]) -> None:
    """Raise :class:`RequestRejected` for a body a real endpoint answers with 400."""
    if "stream" in body and not isinstance(body["stream"], bool):
        raise bad_request(f"'stream' must be a boolean, got {body['stream']!r}.")
    for key in ("custom_inputs", "context", "databricks_options"):
        if body.get(key) is not None and not isinstance(body[key], Mapping):
            raise bad_request(f"'{key}' must be a JSON object, got {body[key]!r}.")
    if shape == RESPONSES:
        _validate_responses_input(body)
    else:
        _validate_messages(body)


def _validate_messages(body: Mapping[str, Any]) -> None:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad_request("'messages' is required and must be a non-empty list of messages.")
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise bad_request(f"messages[{i}] must be an object, got {message!r}.")
        role = message.get("role")
        if role not in _CHAT_ROLES:
            raise bad_request(
                f"messages[{i}].role must be one of {sorted(_CHAT_ROLES)}, got {role!r}."
            )
        content = message.get("content")
        if content is not None and not isinstance(content, (str, list)):
            raise bad_request(f"messages[{i}].content must be a string or a list of parts.")


def _validate_responses_input(body: Mapping[str, Any]) -> None:
    items = body.get("input")
    if isinstance(items, str):
        return
    if not isinstance(items, list) or not items:
        raise bad_request("'input' is required and must be a non-empty list of input items.")
    for i, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise bad_request(f"input[{i}] must be an object, got {item!r}.")
        kind = item.get("type", "message")
        if kind == "message" and "role" not in item:
            raise bad_request(f"input[{i}] is a message without a 'role'.")
        if kind == "message" and not isinstance(item.get("content"), (str, list)):
            raise bad_request(f"input[{i}].content must be a string or a list of parts.")
        if kind == "message" and isinstance(item.get("content"), list):
            _validate_parts(i, item["role"], item["content"])
        if kind == "function_call_output" and "call_id" not in item:
            raise bad_request(f"input[{i}] (function_call_output) has no 'call_id'.")


def _validate_parts(i: int, role: str, parts: Sequence[Any]) -> None:
    allowed = _ASSISTANT_PARTS if role == "assistant" else _INPUT_PARTS
    for j, part in enumerate(parts):
        kind = part.get("type") if isinstance(part, Mapping) else None
        if kind not in allowed:
            raise bad_request(
                f"Invalid input[{i}].content[{j}]: Invalid type: {kind}. Parts of a "
                f"'{role}' message must be one of {sorted(allowed)}."
            )


# ---------------------------------------------------------------------------------------------
# Decoding into LangChain messages (what backends built on LangChain models receive)


def _parts_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    texts = []
    for part in content or []:
        if not (isinstance(part, Mapping) and isinstance(part.get("text"), str)):
            continue
        if part.get("type") in {"text", "input_text", "output_text"}:
            texts.append(part["text"])
    return "".join(texts)


def _human_content(content: Any) -> str | list[Any]:
    """User content: a string, or LangChain content blocks when there are non-text parts."""
    if isinstance(content, str):
        return content
    parts = content or []
    if all(isinstance(p, Mapping) and "text" in p for p in parts):
        return _parts_text(parts)
    blocks: list[Any] = []
    for part in parts:
        if isinstance(part, Mapping) and "text" in part:
            blocks.append({"type": "text", "text": part["text"]})
        else:
            blocks.append(part)
    return blocks


def _arguments(arguments: Any) -> dict[str, Any]:
    """A history tool call's arguments for the backend: the package's one parser
    (``parse_arguments``), with arguments it cannot read given as ``{}``. A real endpoint
    passes a prior call's arguments through to the model unchecked, so unreadable ones are no
    reason to reject the request here."""
    args, _problem = parse_arguments(arguments)
    return args if args is not None else {}


def _reasoning_blocks(content: Any) -> list[dict[str, Any]]:
    blocks = []
    for part in content if isinstance(content, list) else []:
        if isinstance(part, Mapping) and part.get("type") == "reasoning":
            text = "".join(s.get("text", "") for s in part.get("summary") or [])
            blocks.append({"type": "reasoning", "reasoning": text})
    return blocks


def _assistant_message(message: Mapping[str, Any]) -> AIMessage:
    content = message.get("content")
    reasoning = _reasoning_blocks(content)
    text = _parts_text(content)
    calls = [
        {
            "name": c.get("function", {}).get("name", ""),
            "args": _arguments(c.get("function", {}).get("arguments")),
            "id": c.get("id"),
            "type": "tool_call",
        }
        for c in message.get("tool_calls") or []
    ]
    body: str | list[Any] = [*reasoning, {"type": "text", "text": text}] if reasoning else text
    return AIMessage(content=body, tool_calls=calls, id=message.get("id"))


def chat_messages(messages: Sequence[Mapping[str, Any]]) -> list[BaseMessage]:
    """Chat-completions (or ChatAgent) messages as LangChain messages."""
    out: list[BaseMessage] = []
    for message in messages:
        role = message.get("role")
        if role in {"system", "developer"}:
            out.append(SystemMessage(content=_parts_text(message.get("content"))))
        elif role == "user":
            out.append(HumanMessage(content=_human_content(message.get("content"))))
        elif role == "assistant":
            out.append(_assistant_message(message))
        else:
            out.append(
                ToolMessage(
                    content=_parts_text(message.get("content")),
                    tool_call_id=message.get("tool_call_id") or "",
                    name=message.get("name"),
                )
            )
    return out


def responses_messages(items: str | Sequence[Mapping[str, Any]]) -> list[BaseMessage]:
    """Responses input items as LangChain messages (tool turns folded into AI messages).

    The responses protocol owns this mapping (``decode_input``): the local endpoint's backends
    see a request exactly as a graph served with ``as_responses_agent`` does.
    """
    return decode_input(items)


def chat_tools(tools: Any) -> list[dict[str, Any]]:
    """Request tools in chat-completions format, whichever format the request used."""
    out = []
    for tool in tools if isinstance(tools, list) else []:
        if not isinstance(tool, Mapping):
            continue
        if isinstance(tool.get("function"), Mapping):
            out.append(dict(tool))
        elif tool.get("type") == "function" and "name" in tool:
            keys = ("name", "description", "parameters", "strict")
            out.append({"type": "function", "function": {k: tool[k] for k in keys if k in tool}})
    return out
