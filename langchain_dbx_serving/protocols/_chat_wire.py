"""Wire shapes of the chat-completions protocol and the mapping steps shared by replies and streams.

The pydantic models below check only the structure the decoders rely on (``choices`` is a list
of objects, ``content`` is a string or a list, ...); every leaf is ``Any`` and unknown fields
are kept, so a new field never breaks decoding while an impossible shape becomes a
:class:`MalformedResponseError` naming the event.

Two reply families travel over the same routes (PROTOCOLS.md sections 2 and 4):

- chat completions: ``{"choices": [{"message" | "delta": {...}, "finish_reason"}], ...}``;
- ChatAgent (legacy MLflow agents): ``{"messages": [...]}`` whole, ``{"delta": {...}}`` streamed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from langchain_core.messages import InvalidToolCall, ToolCall
from langchain_core.messages.ai import UsageMetadata
from langchain_core.messages.tool import invalid_tool_call, tool_call
from pydantic import BaseModel, ConfigDict, ValidationError

from langchain_dbx_serving._error_body import error_fields, error_text
from langchain_dbx_serving.errors import AgentError, MalformedResponseError
from langchain_dbx_serving.protocols._common import (
    as_str,
    databricks_output_metadata,
    map_usage,
    parse_arguments,
    preview,
    raw_arguments,
)

# ---------------------------------------------------------------------------------------------
# Wire models


class _Wire(BaseModel):
    model_config = ConfigDict(extra="allow")


class WireFunction(_Wire):
    name: Any = None
    arguments: Any = None


class WireToolCall(_Wire):
    index: Any = None
    id: Any = None
    type: Any = None
    function: WireFunction | None = None
    # Gemini models return one with each call; it must be echoed back on the next turn.
    thought_signature: Any = None


class WireMessage(_Wire):
    """A chat-completions ``message`` or ``delta``, or a ChatAgent message."""

    role: Any = None
    content: str | list[Any] | None = None
    tool_calls: list[WireToolCall] | None = None
    reasoning_content: Any = None
    reasoning: Any = None
    refusal: Any = None
    id: Any = None
    custom_outputs: Any = None


class WireChoice(_Wire):
    index: Any = 0
    message: WireMessage | None = None
    delta: WireMessage | None = None
    finish_reason: Any = None
    logprobs: Any = None
    custom_outputs: Any = None


class WireCompletion(_Wire):
    choices: list[WireChoice] | None = None


class WireAgentReply(_Wire):
    messages: list[WireMessage]


class WireAgentChunk(_Wire):
    delta: WireMessage


_M = TypeVar("_M", bound=_Wire)


def validate(model: type[_M], obj: Any, raw: Any) -> _M:
    """Validate ``obj`` as ``model``; a shape error becomes a MalformedResponseError on ``raw``."""
    try:
        return model.model_validate(obj)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}"
            for err in exc.errors()[:3]
        )
        raise MalformedResponseError(
            f"the endpoint sent a chat-completions reply of an unexpected shape ({problems}): "
            f"{preview(raw)!r}",
            event=preview(raw),
        ) from None


def check_tool_name(name: Any, index: Any) -> None:
    """A tool call's ``function.name`` is a string (or absent, in a stream fragment)."""
    if name is not None and not isinstance(name, str):
        raise MalformedResponseError(
            f"the endpoint sent a tool call whose field tool_calls[{index}].function.name is "
            f"a {type(name).__name__} ({preview(name)}), not a string",
            event=preview(name),
        )


def is_index(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# Message fields that need the wire models when set (each of them maps to more than text).
_NOT_PLAIN = ("tool_calls", "reasoning_content", "reasoning", "refusal", "custom_outputs")
_OTHER = {"delta": "message", "message": "delta"}


def plain_text_choice(
    body: Mapping[str, Any], key: Literal["delta", "message"]
) -> tuple[dict[str, Any], str | None] | None:
    """``(choice, text)`` when ``body`` is the common reply (``key="message"``) or stream event
    (``key="delta"``): a single choice 0 whose message carries at most string ``content``
    (and a role), no other message; else ``None``. Such a body has the shape
    ``WireCompletion`` checks, so it can be decoded without building the wire models; every
    other body goes through them (and their shape errors)."""
    choices = body.get("choices")
    if type(choices) is not list or len(choices) != 1:
        return None
    choice = choices[0]
    if type(choice) is not dict or choice.get(_OTHER[key]) is not None:
        return None
    index = choice.get("index")
    message = choice.get(key)
    if (type(index) is int and index != 0) or type(message) is not dict:
        return None
    text = message.get("content")
    if text is not None and type(text) is not str:
        return None
    for field_name in _NOT_PLAIN:
        if message.get(field_name) is not None:
            return None
    return choice, text


# ---------------------------------------------------------------------------------------------
# Errors reported inside a reply or a stream


def raise_for_error(event: Mapping[str, Any]) -> None:
    """Raise :class:`AgentError` when a reply or event reports an error instead of output.

    The shapes are those of :func:`langchain_dbx_serving._error_body.error_fields`.
    """
    found = error_fields(event)
    if found is None:
        return
    error_code, message = found
    text = error_text(message)
    prefix = f"{error_code}: " if error_code else ""
    request_id = databricks_output_metadata(event).get("databricks_request_id")
    raise AgentError(
        f"the endpoint reported an error in its reply: {prefix}{text}",
        error_code=error_code,
        request_id=request_id,
    )


# ---------------------------------------------------------------------------------------------
# Content: strings, text parts and reasoning parts


@dataclass
class Piece:
    """One unit of message content: answer text, reasoning, or a part we do not interpret."""

    kind: Literal["text", "reasoning", "other"]
    text: str = ""
    extras: dict[str, Any] = field(default_factory=dict)
    value: Any = None

    @property
    def plain_text(self) -> bool:
        return self.kind == "text" and not self.extras

    @property
    def empty(self) -> bool:
        return self.kind != "other" and not self.text and not self.extras


def content_pieces(message: WireMessage) -> list[Piece]:
    """The content of a message or delta, reasoning fields first (PROTOCOLS.md section 7)."""
    pieces: list[Piece] = []
    for key in ("reasoning_content", "reasoning"):
        text = getattr(message, key)
        if isinstance(text, str) and text:
            pieces.append(Piece("reasoning", text))
    content = message.content
    if isinstance(content, str):
        pieces.append(Piece("text", content))
    elif isinstance(content, list):
        pieces.extend(p for p in (_map_part(part) for part in content) if p is not None)
    return pieces


def _map_part(part: Any) -> Piece | None:
    if isinstance(part, str):
        return Piece("text", part)
    if not isinstance(part, Mapping):
        return None
    kind = part.get("type")
    if kind == "text" and isinstance(part.get("text"), str):
        extras = {k: v for k, v in part.items() if k not in ("type", "text")}
        return Piece("text", part["text"], extras)
    if kind == "reasoning":
        return _map_reasoning_part(part)
    return Piece("other", value=dict(part))


def _map_reasoning_part(part: Mapping[str, Any]) -> Piece:
    """``{"type": "reasoning", "summary": [{"type": "summary_text", "text", "signature"?}]}``."""
    texts: list[str] = []
    extras = {k: v for k, v in part.items() if k not in ("type", "summary", "text", "reasoning")}
    for key in ("text", "reasoning"):
        if isinstance(part.get(key), str):
            texts.append(part[key])
    summary = part.get("summary")
    for item in summary if isinstance(summary, list) else []:
        if not isinstance(item, Mapping):
            continue
        if isinstance(item.get("text"), str):
            texts.append(item["text"])
        if as_str(item.get("signature"), empty_is_none=True):
            extras["signature"] = item["signature"]
        if set(item) - {"type", "text", "signature"} or item.get("type") != "summary_text":
            # A form we do not model (e.g. redacted reasoning): kept to be echoed back verbatim.
            extras["summary"] = list(summary)
    return Piece("reasoning", "".join(texts), extras)


def content_from_pieces(pieces: list[Piece]) -> str | list[str | dict[Any, Any]]:
    """A plain string for text-only content; LangChain v1 blocks otherwise."""
    if all(p.plain_text for p in pieces):
        return "".join(p.text for p in pieces)
    return [block_of(p) for p in pieces if not p.empty]


def block_of(piece: Piece, index: int | None = None) -> dict[str, Any]:
    """The v1 standard content block of a piece (``index`` is set only when streaming)."""
    block: dict[str, Any]
    if piece.kind == "text":
        block = {"type": "text", "text": piece.text}
    elif piece.kind == "reasoning":
        block = {"type": "reasoning", "reasoning": piece.text}
    else:
        block = {"type": "non_standard", "value": piece.value}
    if index is not None:
        block["index"] = index
    if piece.extras:
        block["extras"] = dict(piece.extras)
    return block


# ---------------------------------------------------------------------------------------------
# Tool calls


def map_tool_calls(
    calls: list[WireToolCall] | None,
) -> tuple[list[ToolCall], list[InvalidToolCall], dict[str, str]]:
    """Whole-message ``tool_calls``: valid calls, invalid calls, and thought signatures by id."""
    valid: list[ToolCall] = []
    invalid: list[InvalidToolCall] = []
    signatures: dict[str, str] = {}
    for index, call in enumerate(calls or []):
        function = call.function or WireFunction()
        check_tool_name(function.name, index)
        name = as_str(function.name, empty_is_none=True)
        call_id = as_str(call.id, empty_is_none=True)
        args, error = parse_arguments(function.arguments)
        if args is None:
            invalid.append(
                invalid_tool_call(
                    name=name, args=raw_arguments(function.arguments), id=call_id, error=error
                )
            )
        else:
            valid.append(tool_call(name=name or "", args=args, id=call_id))
        if call_id and as_str(call.thought_signature, empty_is_none=True):
            signatures[call_id] = call.thought_signature
    return valid, invalid, signatures


# ---------------------------------------------------------------------------------------------
# ChatAgent messages


def agent_message_dict(message: WireMessage) -> dict[str, Any]:
    """A ChatAgent message as kept in ``response_metadata["messages"]``, ``None`` fields dropped."""
    return message.model_dump(exclude_none=True)


def agent_role(role: Any) -> str:
    """A ChatAgent message's role; MLflow requires one, ``assistant`` is assumed when absent."""
    return role if isinstance(role, str) and role else "assistant"


def agent_text(message: WireMessage) -> str:
    """The answer text of a ChatAgent message (its text parts when content is a list)."""
    return "".join(p.text for p in content_pieces(_content_only(message)) if p.kind == "text")


def _content_only(message: WireMessage) -> WireMessage:
    return WireMessage(content=message.content)


AGENT_TEXT_SEPARATOR = "\n\n"
"""Between the texts of successive assistant messages of a ChatAgent reply."""


# ---------------------------------------------------------------------------------------------
# Reply-level metadata, gathered from one body or from many stream events


@dataclass
class ReplyMetadata:
    """What a reply says about itself, accumulated event by event.

    A stream repeats some of this on every chunk (Databricks Claude sends ``usage`` each time,
    with completion counts null until the last); keeping one accumulated copy and emitting it
    once is what keeps LangChain's chunk addition from summing or concatenating it.
    """

    id: str | None = None
    model: str | None = None
    finish_reason: str | None = None
    custom_outputs: Any = None
    usage: dict[str, Any] = field(default_factory=dict)
    trace: dict[str, Any] = field(default_factory=dict)
    logprobs: list[Any] | None = None
    agent_messages: list[dict[str, Any]] | None = None

    def absorb_event(self, event: Mapping[str, Any]) -> None:
        """Top-level fields of a reply body or of one stream event."""
        # Once per stream event: the checks that find nothing are kept cheap.
        if self.id is None:
            self.id = as_str(event.get("id"), empty_is_none=True)
        if self.model is None:
            self.model = as_str(event.get("model"), empty_is_none=True)
        if "finish_reason" in event:
            self.absorb_finish_reason(event["finish_reason"])
        if "custom_outputs" in event:
            self.absorb_custom_outputs(event["custom_outputs"])
        usage = event.get("usage")
        if isinstance(usage, Mapping):
            self.usage.update((k, v) for k, v in usage.items() if v is not None)
        if "databricks_output" in event:
            self.trace.update(databricks_output_metadata(event))
        if "trace_id" in event and as_str(event["trace_id"], empty_is_none=True):
            # MLflow AgentServer sends a bare {"trace_id": ...} event before [DONE].
            self.trace.setdefault("trace_id", event["trace_id"])

    def absorb_custom_outputs(self, value: Any) -> None:
        """``custom_outputs`` of any event, choice, message or delta, in arrival order.

        Dicts accumulate key by key (a later event's key wins), so outputs an agent spreads
        over a stream all survive; a value that is not a dict replaces what came before.
        """
        if value is None:
            return
        if isinstance(value, Mapping) and isinstance(self.custom_outputs, Mapping):
            self.custom_outputs = {**self.custom_outputs, **value}
        elif isinstance(value, Mapping):
            self.custom_outputs = dict(value)
        else:
            self.custom_outputs = value

    def absorb_finish_reason(self, value: Any) -> None:
        reason = map_finish_reason(value)
        if reason is not None:
            self.finish_reason = reason

    def infer_finish_reason(self, *, tool_calls: bool) -> None:
        """Fill a finish reason a complete chat reply left out: AI Gateway omits it on a
        natural stop for reasoning models (PROTOCOLS.md section 11)."""
        if self.finish_reason is None:
            self.finish_reason = "tool_calls" if tool_calls else "stop"

    def absorb_logprobs(self, value: Any) -> None:
        if isinstance(value, Mapping) and isinstance(value.get("content"), list):
            self.logprobs = [*(self.logprobs or []), *value["content"]]

    def response_metadata(self) -> dict[str, Any]:
        meta: dict[str, Any] = {}
        if self.finish_reason is not None:
            meta["finish_reason"] = self.finish_reason
        if self.model is not None:
            meta["model_name"] = self.model
        if self.id is not None:
            meta["id"] = self.id
        if self.custom_outputs is not None:
            meta["custom_outputs"] = self.custom_outputs
        if self.logprobs is not None:
            meta["logprobs"] = {"content": self.logprobs}
        meta.update(self.trace)
        if self.agent_messages is not None:
            meta["messages"] = self.agent_messages
        return meta

    def usage_metadata(self) -> UsageMetadata | None:
        return map_usage(self.usage)

    def llm_output(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.model is not None:
            out["model_name"] = self.model
        if self.id is not None:
            out["id"] = self.id
        if self.usage:
            out["token_usage"] = dict(self.usage)
        out.update(self.trace)
        return out


def map_finish_reason(value: Any) -> str | None:
    """The wire ``finish_reason``, kept verbatim (``stop``, ``length``, ``tool_calls``, ...)."""
    return value if isinstance(value, str) and value else None
