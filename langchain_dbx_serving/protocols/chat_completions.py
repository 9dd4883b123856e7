"""The chat-completions protocol (FMAPI, external models, custom chat models, ChatAgent agents).

Pure functions and one stream decoder object, called by the LangChain glue:

- :func:`encode_request` turns LangChain messages and already-merged parameters into the
  request body (PROTOCOLS.md section 2);
- :func:`decode_reply` turns a whole reply (chat completion or ChatAgent, section 4) into a
  ``ChatResult``;
- :class:`StreamDecoder` turns the SSE ``data`` payloads of a streamed reply into
  ``AIMessageChunk``\\ s whose sum equals what :func:`decode_reply` gives for the same reply.

Example:
    >>> from langchain_core.messages import HumanMessage
    >>> encode_request([HumanMessage("Hi")], {"max_tokens": 5}, stream=False)
    {'messages': [{'role': 'user', 'content': 'Hi'}], 'max_tokens': 5}
    >>> reply = {"id": "c1", "model": "m", "choices": [
    ...     {"index": 0, "message": {"role": "assistant", "content": "Hello"},
    ...      "finish_reason": "stop"}]}
    >>> decode_reply(reply).generations[0].message.text
    'Hello'
"""

from __future__ import annotations

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
from langchain_core.outputs import ChatGeneration, ChatResult

from langchain_dbx_serving.errors import MalformedResponseError
from langchain_dbx_serving.protocols._chat_stream import StreamDecoder
from langchain_dbx_serving.protocols._chat_wire import (
    AGENT_TEXT_SEPARATOR,
    ReplyMetadata,
    WireAgentReply,
    WireCompletion,
    WireMessage,
    agent_message_dict,
    agent_role,
    agent_text,
    content_from_pieces,
    content_pieces,
    map_tool_calls,
    plain_text_choice,
    raise_for_error,
    validate,
)
from langchain_dbx_serving.protocols._common import encode_arguments, parse_event, preview
from langchain_dbx_serving.protocols._families import drop_stale_empty_reasoning
from langchain_dbx_serving.protocols._seam import WireProtocol

__all__ = ["PROTOCOL", "StreamDecoder", "decode_reply", "encode_request"]

# Claude models behind Databricks reject an assistant turn whose text is empty ("text content
# blocks must be non-empty"), null included; databricks-openai sends a single space for an
# assistant message that only carries tool calls, and so do we.
_TOOL_CALL_ONLY_CONTENT = " "

# Block types that describe model output, not input: never sent back as content parts.
_OUTPUT_ONLY_BLOCKS = frozenset(
    {
        "reasoning",
        "thinking",
        "tool_call",
        "tool_call_chunk",
        "invalid_tool_call",
        "server_tool_call",
        "server_tool_call_chunk",
        "server_tool_result",
    }
)


# ---------------------------------------------------------------------------------------------
# Requests


def encode_request(
    messages: Sequence[BaseMessage], params: Mapping[str, Any], *, stream: bool
) -> dict[str, Any]:
    """The chat-completions request body for ``messages`` and merged call parameters.

    ``params`` go to the top level unchanged (extra body keys included); ``"stream": true``
    is added only when streaming, and nothing else the caller did not ask for.
    """
    body: dict[str, Any] = {
        "messages": drop_stale_empty_reasoning([_map_message(m) for m in messages])
    }
    body.update((k, v) for k, v in params.items() if k not in ("messages", "stream"))
    if stream:
        body["stream"] = True
    return body


def _map_message(message: BaseMessage) -> dict[str, Any]:
    if isinstance(message, AIMessage):
        return _map_ai_message(message)
    if isinstance(message, HumanMessage):
        return _with_name({"role": "user", "content": _map_content(message.content)}, message)
    if isinstance(message, SystemMessage):
        return {"role": "system", "content": _map_content(message.content)}
    if isinstance(message, ToolMessage):
        return {
            "role": "tool",
            "tool_call_id": message.tool_call_id,
            "content": _map_content(message.content),
        }
    if isinstance(message, ChatMessage):
        if message.role == "assistant":
            return {"role": "assistant", "content": _assistant_text(message.content)}
        mapped = {"role": message.role, "content": _map_content(message.content)}
        return _with_name(mapped, message) if message.role == "user" else mapped
    raise ValueError(
        f"a {type(message).__name__} cannot be sent to a chat-completions endpoint; use "
        "SystemMessage, HumanMessage, AIMessage, ToolMessage or ChatMessage"
    )


def _with_name(mapped: dict[str, Any], message: BaseMessage) -> dict[str, Any]:
    # Only user messages carry `name`: Databricks Model Serving accepts it there (since early
    # 2025) but rejects it on other roles, where LangChain agents set it to the agent's name.
    if message.name:
        mapped["name"] = message.name
    return mapped


def _map_ai_message(message: AIMessage) -> dict[str, Any]:
    text = _assistant_text(message.content)
    reasoning = _signed_reasoning_parts(message.content)
    signatures = message.additional_kwargs.get("thought_signatures") or {}
    tool_calls = [_map_tool_call(call, signatures) for call in message.tool_calls]
    tool_calls += [_map_invalid_tool_call(call) for call in message.invalid_tool_calls]
    mapped: dict[str, Any] = {"role": "assistant"}
    if reasoning:
        mapped["content"] = [*reasoning, *([{"type": "text", "text": text}] if text else [])]
    elif text or not tool_calls:
        mapped["content"] = text
    else:
        mapped["content"] = _TOOL_CALL_ONLY_CONTENT
    if tool_calls:
        mapped["tool_calls"] = tool_calls
    return mapped


def _assistant_text(content: str | list[Any]) -> str:
    """The answer text of an assistant turn; reasoning never leaks into it."""
    if isinstance(content, str):
        return content
    texts = []
    for part in content:
        if isinstance(part, str):
            texts.append(part)
        elif isinstance(part, Mapping) and part.get("type") == "text":
            texts.append(str(part.get("text") or ""))
    return "".join(texts)


def _signed_reasoning_parts(content: str | list[Any]) -> list[dict[str, Any]]:
    """Signed reasoning blocks, replayed in Databricks' wire form.

    Claude with extended thinking requires its signed reasoning back on the assistant turn
    that made tool calls; Databricks accepts it as a ``reasoning`` content part. Unsigned
    reasoning (e.g. from a ``reasoning_content`` field) is not sent back.
    """
    if isinstance(content, str):
        return []
    parts = []
    for block in content:
        if not isinstance(block, Mapping) or block.get("type") != "reasoning":
            continue
        extras = dict(block.get("extras") or {}) if isinstance(block.get("extras"), Mapping) else {}
        signature = extras.pop("signature", None)
        verbatim = extras.pop("summary", None)
        if not (isinstance(signature, str) and signature) and not isinstance(verbatim, list):
            continue
        if isinstance(verbatim, list):  # a form we do not model: echoed as received
            summary = verbatim
        else:
            item = {"type": "summary_text", "text": str(block.get("reasoning") or "")}
            summary = [{**item, "signature": signature}]
        parts.append({"type": "reasoning", "summary": summary, **extras})
    return parts


def _map_tool_call(call: Mapping[str, Any], signatures: Mapping[str, Any]) -> dict[str, Any]:
    arguments = encode_arguments(call.get("args"))
    mapped: dict[str, Any] = {
        "id": call.get("id"),
        "type": "function",
        "function": {"name": call.get("name") or "", "arguments": arguments},
    }
    if isinstance(signatures, Mapping) and call.get("id") in signatures:
        mapped["thought_signature"] = signatures[call["id"]]
    return mapped


def _map_invalid_tool_call(call: Mapping[str, Any]) -> dict[str, Any]:
    # Sent back as received, so the ToolMessage answering it still has its call.
    return {
        "id": call.get("id"),
        "type": "function",
        "function": {"name": call.get("name") or "", "arguments": call.get("args") or ""},
    }


def _map_content(content: str | list[Any]) -> str | list[dict[str, Any]]:
    """User/system/tool content: a string when it is only text, else content parts."""
    if isinstance(content, str):
        return content
    parts = [p for p in (_map_input_part(part) for part in content) if p is not None]
    if all(p.get("type") == "text" and set(p) == {"type", "text"} for p in parts):
        return "\n".join(p["text"] for p in parts)
    return parts


def _map_input_part(part: Any) -> dict[str, Any] | None:
    if isinstance(part, str):
        return {"type": "text", "text": part}
    if not isinstance(part, Mapping):
        raise ValueError(f"unsupported message content part: {preview(part)}")
    kind = part.get("type")
    if kind == "text":
        mapped = {"type": "text", "text": str(part.get("text") or "")}
        if "cache_control" in part:  # Claude prompt caching, honoured by Databricks
            mapped["cache_control"] = part["cache_control"]
        return mapped
    if kind in ("image", "image_url"):
        return _map_image(part)
    if kind == "non_standard" and isinstance(part.get("value"), Mapping):
        return dict(part["value"])
    if kind in _OUTPUT_ONLY_BLOCKS:
        return None
    return dict(part)  # e.g. input_audio: sent as given, the endpoint decides


def _map_image(part: Mapping[str, Any]) -> dict[str, Any]:
    """OpenAI ``image_url`` parts from OpenAI-style or LangChain (v0 and v1) image blocks."""
    if part.get("type") == "image_url":
        image = part.get("image_url")
        return {
            "type": "image_url",
            "image_url": image if isinstance(image, Mapping) else {"url": image},
        }
    if isinstance(part.get("url"), str):
        url = part["url"]
    elif isinstance(part.get("base64"), str) or part.get("source_type") == "base64":
        data = part.get("base64") or part.get("data")
        mime_type = part.get("mime_type")
        if not mime_type:
            raise ValueError("a base64 image block needs a `mime_type` (e.g. 'image/png')")
        url = f"data:{mime_type};base64,{data}"
    else:
        raise ValueError(
            "image blocks must carry a `url` or `base64` data; file ids are not supported by "
            "chat-completions endpoints"
        )
    return {"type": "image_url", "image_url": {"url": url}}


# ---------------------------------------------------------------------------------------------
# Whole replies


def decode_reply(body: Any) -> ChatResult:
    """Decode a whole chat-completions or ChatAgent reply.

    Raises :class:`AgentError` when the body reports an error and
    :class:`MalformedResponseError` when it is not a reply of either shape.
    """
    if isinstance(body, (bytes, bytearray)):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str):
        body = parse_event(body)
    if not isinstance(body, Mapping):
        raise MalformedResponseError(
            f"the endpoint's reply is not a JSON object: {preview(body)!r}", event=preview(body)
        )
    raise_for_error(body)
    if body.get("choices") or ("choices" in body and body.get("messages") is None):
        return _decode_completion(body)
    if body.get("messages") is not None:
        return _decode_agent_reply(body)
    raise MalformedResponseError(
        "the endpoint's reply has neither `choices` (chat completions) nor `messages` "
        f"(ChatAgent) - is it a chat endpoint? {preview(body)!r}",
        event=preview(body),
    )


def _decode_completion(body: Mapping[str, Any]) -> ChatResult:
    plain = plain_text_choice(body, "message")
    if plain is not None:
        return _decode_plain_text(body, *plain)
    completion = validate(WireCompletion, body, body)
    if not completion.choices:
        raise MalformedResponseError(
            f"the endpoint's reply has no choices: {preview(body)!r}", event=preview(body)
        )
    generations = []
    for choice in completion.choices:
        meta = ReplyMetadata()
        meta.absorb_event(body)
        meta.absorb_finish_reason(choice.finish_reason)
        meta.absorb_logprobs(choice.logprobs)
        meta.absorb_custom_outputs(choice.custom_outputs)
        message = choice.message or choice.delta or WireMessage()
        meta.absorb_custom_outputs(message.custom_outputs)
        meta.infer_finish_reason(tool_calls=bool(message.tool_calls))
        generations.append(ChatGeneration(message=_map_reply_message(message, meta)))
    return ChatResult(generations=generations, llm_output=_reply_metadata(body).llm_output())


def _decode_plain_text(
    body: Mapping[str, Any], choice: Mapping[str, Any], text: str | None
) -> ChatResult:
    """What the general path gives for a reply of ``plain_text_choice``: the same metadata,
    a text message with no tool calls."""
    meta = ReplyMetadata()
    meta.absorb_event(body)
    meta.absorb_finish_reason(choice.get("finish_reason"))
    meta.absorb_logprobs(choice.get("logprobs"))
    meta.absorb_custom_outputs(choice.get("custom_outputs"))
    meta.infer_finish_reason(tool_calls=False)
    message = AIMessage(
        content=text or "",
        response_metadata=meta.response_metadata(),
        usage_metadata=meta.usage_metadata(),
        id=meta.id,
    )
    # llm_output reads only what absorb_event set: the same as a fresh _reply_metadata(body).
    return ChatResult(generations=[ChatGeneration(message=message)], llm_output=meta.llm_output())


def _map_reply_message(message: WireMessage, meta: ReplyMetadata) -> AIMessage:
    tool_calls, invalid_tool_calls, signatures = map_tool_calls(message.tool_calls)
    additional_kwargs: dict[str, Any] = {}
    if isinstance(message.refusal, str) and message.refusal:
        additional_kwargs["refusal"] = message.refusal
    if signatures:
        additional_kwargs["thought_signatures"] = signatures
    return AIMessage(
        content=content_from_pieces(content_pieces(message)),
        tool_calls=tool_calls,
        invalid_tool_calls=invalid_tool_calls,
        additional_kwargs=additional_kwargs,
        response_metadata=meta.response_metadata(),
        usage_metadata=meta.usage_metadata(),
        id=meta.id,
    )


def _decode_agent_reply(body: Mapping[str, Any]) -> ChatResult:
    """A ChatAgent reply: the answer is the assistant text; the agent's steps stay metadata.

    The agent's own tool calls are not turned into ``tool_calls``: they have already run,
    and a LangChain agent loop would try to run them again.
    """
    reply = validate(WireAgentReply, body, body)
    meta = _reply_metadata(body)
    for wire_message in reply.messages:  # outer before inner, as in a stream
        meta.absorb_custom_outputs(wire_message.custom_outputs)
    meta.agent_messages = [agent_message_dict(m) for m in reply.messages]
    texts = [agent_text(m) for m in reply.messages if agent_role(m.role) == "assistant"]
    message = AIMessage(
        content=AGENT_TEXT_SEPARATOR.join(t for t in texts if t),
        response_metadata=meta.response_metadata(),
        usage_metadata=meta.usage_metadata(),
        id=meta.id,
    )
    return ChatResult(generations=[ChatGeneration(message=message)], llm_output=meta.llm_output())


def _reply_metadata(body: Mapping[str, Any]) -> ReplyMetadata:
    meta = ReplyMetadata()
    meta.absorb_event(body)
    return meta


PROTOCOL = WireProtocol(
    kind="chat",
    encode_request=encode_request,
    decode_reply=decode_reply,
    stream_decoder=StreamDecoder,
)
"""The chat_completions protocol as a chat class uses it (see :class:`WireProtocol`)."""
