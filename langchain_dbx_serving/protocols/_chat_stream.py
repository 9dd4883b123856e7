"""The streaming half of the chat-completions protocol: SSE ``data`` payloads in, chunks out.

Import :class:`StreamDecoder` from :mod:`langchain_dbx_serving.protocols.chat_completions`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from langchain_core.messages import AIMessageChunk
from langchain_core.messages.tool import ToolCallChunk, tool_call_chunk

from langchain_dbx_serving.errors import MalformedResponseError, StreamInterruptedError
from langchain_dbx_serving.protocols._chat_wire import (
    AGENT_TEXT_SEPARATOR,
    Piece,
    ReplyMetadata,
    WireAgentChunk,
    WireAgentReply,
    WireCompletion,
    WireMessage,
    WireToolCall,
    agent_message_dict,
    agent_role,
    agent_text,
    block_of,
    check_tool_name,
    content_pieces,
    is_index,
    plain_text_choice,
    raise_for_error,
    raw_arguments,
    validate,
)
from langchain_dbx_serving.protocols._common import as_str, parse_event, preview
from langchain_dbx_serving.protocols._fast_chunks import text_chunk


class StreamDecoder:
    """Turns a chat-completions (or ChatAgent) event stream into ``AIMessageChunk``\\ s.

    Feed it each SSE ``data`` payload in order, then call :meth:`finish` once when the HTTP
    stream has ended. Text, reasoning and tool-call fragments come out as they arrive; all
    metadata (``finish_reason``, ``model_name``, ``id``, ``custom_outputs``, traces) and
    ``usage_metadata`` come out exactly once, on the last chunk, so that adding the chunks
    gives the same message as decoding the whole reply.

    Example:
        >>> decoder = StreamDecoder()
        >>> chunks = decoder.feed('{"id": "c1", "choices": [{"index": 0, "delta": {"content": "Hi"}}]}')
        >>> chunks += decoder.feed('{"id": "c1", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}')
        >>> chunks += decoder.feed("[DONE]")
        >>> chunks += decoder.finish()
        >>> message = sum(chunks[1:], chunks[0])
        >>> message.text, message.response_metadata["finish_reason"]
        ('Hi', 'stop')
    """  # noqa: E501

    def __init__(self) -> None:
        self._meta = ReplyMetadata()
        self._blocks = _BlockIndexer()
        self._tools = _ToolCallAssembler()
        self._agent = _AgentMessages()
        self._agent_seen = False
        self._choices_seen = False
        self._refusal = ""
        self._complete = False
        self._finished = False
        self._emitted: list[AIMessageChunk] = []

    def feed(self, data: str) -> list[AIMessageChunk]:
        """Decode one SSE ``data`` payload (JSON text or ``[DONE]``) into zero or more chunks.

        Raises :class:`MalformedResponseError` for a payload that is not JSON or not of a known
        shape, and :class:`AgentError` for an error reported inside the stream.
        """
        if data.strip() == "[DONE]":
            self._complete = True
            return []
        event = parse_event(data)
        if not isinstance(event, dict):
            raise MalformedResponseError(
                f"the endpoint sent a stream event that is not a JSON object: {preview(data)!r}",
                event=preview(data),
            )
        raise_for_error(event)
        self._meta.absorb_event(event)
        if self._meta.finish_reason is not None:
            self._complete = True
        # A ChatAgent event may carry `"choices": null` or `[]` next to its top-level delta
        # (or messages): the shape is decided by what carries content, not by a key's presence.
        if event.get("choices"):
            chunk = self._on_completion_event(event, data)
        elif event.get("delta") is not None:
            chunk = self._on_agent_message(validate(WireAgentChunk, event, data).delta)
        elif event.get("messages") is not None:
            chunk = self._on_agent_reply(validate(WireAgentReply, event, data))
        elif "choices" in event:
            chunk = self._on_completion_event(event, data)  # checks the shape; no content
        else:
            chunk = None  # metadata only (usage, databricks_output, trace_id) or unknown
        if chunk is None:
            return []
        self._emitted.append(chunk)
        return [chunk]

    def finish(self) -> list[AIMessageChunk]:
        """Emit the closing chunk with all metadata and usage (``chunk_position="last"``).

        Raises :class:`StreamInterruptedError` when neither ``[DONE]`` nor a finish reason
        arrived: the reply was cut off, and ``partial`` holds the aggregate received so far.
        """
        if self._finished:
            return []
        self._finished = True
        if self._agent_seen:
            self._meta.agent_messages = self._agent.messages
        elif self._complete and self._choices_seen:
            self._meta.infer_finish_reason(tool_calls=self._tools.has_calls())
        fields: dict[str, Any] = {
            "content": "",
            "response_metadata": self._meta.response_metadata(),
            "usage_metadata": self._meta.usage_metadata(),
            "additional_kwargs": self._additional_kwargs(),
            "id": self._meta.id,
        }
        if not self._complete:
            raise StreamInterruptedError(
                "the stream ended before the reply was complete (no [DONE] and no finish "
                "reason arrived); the partial reply is in `.partial` - retry the request",
                partial=_aggregate([*self._emitted, AIMessageChunk(**fields)]),
                request_id=self._meta.trace.get("databricks_request_id"),
            )
        return [AIMessageChunk(**fields, chunk_position="last")]

    # -- chat completions ------------------------------------------------------------------

    def _on_completion_event(self, event: dict[str, Any], data: str) -> AIMessageChunk | None:
        plain = plain_text_choice(event, "delta")
        if plain is not None:
            return self._on_plain_text(*plain)
        completion = validate(WireCompletion, event, data)
        self._choices_seen = self._choices_seen or bool(completion.choices)
        content: list[Piece] = []
        tool_chunks: list[ToolCallChunk] = []
        for choice in completion.choices or []:
            if is_index(choice.index) and choice.index != 0:
                continue  # n > 1: a stream aggregates into one message, that of choice 0
            message = choice.delta if choice.delta is not None else choice.message
            if choice.delta is None and choice.message is not None:
                self._complete = True  # a whole reply fed as one event
                message = _with_tool_indexes(choice.message)
            self._meta.absorb_finish_reason(choice.finish_reason)
            self._meta.absorb_logprobs(choice.logprobs)
            self._meta.absorb_custom_outputs(choice.custom_outputs)
            if self._meta.finish_reason is not None:
                self._complete = True
            if message is None:
                continue
            self._meta.absorb_custom_outputs(message.custom_outputs)
            content.extend(content_pieces(message))
            tool_chunks.extend(self._tools.add(message.tool_calls or []))
            if isinstance(message.refusal, str):
                self._refusal += message.refusal
        return self._chunk(self._blocks.content(content), tool_chunks)

    def _on_plain_text(self, choice: dict[str, Any], text: str | None) -> AIMessageChunk | None:
        """What the general path does with a choice of ``plain_text_choice``, minus the
        steps that have nothing to do for it (no tool calls, reasoning or refusal)."""
        self._choices_seen = True
        meta = self._meta
        # Each absorb_* does nothing with None (the usual value of all three).
        if (reason := choice.get("finish_reason")) is not None:
            meta.absorb_finish_reason(reason)
        if (logprobs := choice.get("logprobs")) is not None:
            meta.absorb_logprobs(logprobs)
        if (custom := choice.get("custom_outputs")) is not None:
            meta.absorb_custom_outputs(custom)
        if meta.finish_reason is not None:
            self._complete = True
        if not text:  # what _chunk gives for no content and no tool calls
            return None
        content = self._blocks.text(text)
        return text_chunk(content, meta.id) if content else None

    def _chunk(
        self, content: str | list[Any], tool_chunks: list[ToolCallChunk]
    ) -> AIMessageChunk | None:
        if not content and not tool_chunks:
            return None
        if not tool_chunks:
            return text_chunk(content, self._meta.id)
        return AIMessageChunk(content=content, tool_call_chunks=tool_chunks, id=self._meta.id)

    def _additional_kwargs(self) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if self._refusal:
            extra["refusal"] = self._refusal
        if signatures := self._tools.thought_signatures():
            extra["thought_signatures"] = signatures
        return extra

    # -- ChatAgent ---------------------------------------------------------------------------

    def _on_agent_message(self, delta: WireMessage) -> AIMessageChunk | None:
        self._agent_seen = True
        self._meta.absorb_custom_outputs(delta.custom_outputs)
        return self._chunk(self._agent.add(delta), [])

    def _on_agent_reply(self, reply: WireAgentReply) -> AIMessageChunk | None:
        self._complete = True  # a whole ChatAgent reply fed as one event
        self._agent_seen = True
        for message in reply.messages:
            self._meta.absorb_custom_outputs(message.custom_outputs)
        text = "".join(self._agent.add(message) for message in reply.messages)
        return self._chunk(text, [])


def _with_tool_indexes(message: WireMessage) -> WireMessage:
    """Number the tool calls of a whole message, which carry no ``index`` on the wire."""
    if not message.tool_calls:
        return message
    calls = [
        call if is_index(call.index) else call.model_copy(update={"index": i})
        for i, call in enumerate(message.tool_calls)
    ]
    return message.model_copy(update={"tool_calls": calls})


def _aggregate(chunks: list[AIMessageChunk]) -> AIMessageChunk:
    try:
        return chunks[0] + chunks[1:] if len(chunks) > 1 else chunks[0]
    except (TypeError, ValueError):
        # Wire extras of clashing types across events cannot be merged; keep the text.
        return AIMessageChunk(content="".join(c.text for c in chunks))


class _BlockIndexer:
    """Shapes streamed content so that LangChain's chunk addition rebuilds the right blocks.

    Text-only streams stay plain strings. From the first reasoning (or other non-text) part
    on, pieces become v1 blocks carrying an ``index``: consecutive pieces of the same kind
    share one, so they merge into one block, and a change of kind starts the next one. A
    reasoning block that already received its signature is closed: more reasoning after it
    is a new block.
    """

    def __init__(self) -> None:
        self._list_mode = False
        self._index = -1
        self._kind: str | None = None
        self._signed = False

    def text(self, text: str) -> str | list[Any]:
        """``content([Piece("text", text)])``, without the piece while content is a string."""
        if not self._list_mode:
            return text
        return self.content([Piece("text", text)])

    def content(self, pieces: list[Piece]) -> str | list[Any]:
        pieces = [p for p in pieces if not p.empty]
        if not self._list_mode and all(p.plain_text for p in pieces):
            return "".join(p.text for p in pieces)
        self._list_mode = True
        return [block_of(p, self._index_for(p)) for p in pieces]

    def _index_for(self, piece: Piece) -> int:
        continues = piece.kind == self._kind and piece.kind != "other"
        if not continues or (piece.kind == "reasoning" and self._signed):
            self._index += 1
            self._kind = piece.kind
            self._signed = False
        if "signature" in piece.extras:
            self._signed = True
        return self._index


@dataclass
class _Call:
    index: int
    id: str | None = None
    name: str | None = None
    args_length: int = 0
    announced: bool = False
    thought_signature: str | None = None


class _ToolCallAssembler:
    """Tool-call fragments to ``tool_call_chunks`` that add up to whole calls.

    Fragments are matched by their wire ``index`` (which can start at 1 when text came
    first); a fragment carrying a new id at a known index starts a new call. ``id`` and
    ``name`` are emitted once per call, since LangChain concatenates repeated strings.
    """

    def __init__(self) -> None:
        self._calls: list[_Call] = []
        self._by_wire_index: dict[int, _Call] = {}

    def add(self, fragments: list[WireToolCall]) -> list[ToolCallChunk]:
        chunks = []
        for fragment in fragments:
            chunk = self._add_one(fragment)
            if chunk is not None:
                chunks.append(chunk)
        return chunks

    def _add_one(self, fragment: WireToolCall) -> ToolCallChunk | None:
        call = self._call_for(fragment)
        function = fragment.function
        if function is not None:
            check_tool_name(function.name, fragment.index)
        new_id = as_str(fragment.id, empty_is_none=True) if call.id is None else None
        new_name = (
            as_str(function.name, empty_is_none=True) if function and call.name is None else None
        )
        call.id = call.id or new_id
        call.name = call.name or new_name
        args = raw_arguments(function.arguments) if function else ""
        if args == "{}" and call.args_length == 0:
            # Some models send "{}" first and the real arguments after it; "" parses as {}.
            args = ""
        call.args_length += len(args)
        if as_str(fragment.thought_signature, empty_is_none=True):
            call.thought_signature = fragment.thought_signature
        if call.announced and new_id is None and new_name is None and not args:
            return None
        call.announced = True
        return tool_call_chunk(name=new_name, args=args, id=new_id, index=call.index)

    def _call_for(self, fragment: WireToolCall) -> _Call:
        fragment_id = as_str(fragment.id, empty_is_none=True)
        if is_index(fragment.index):
            call = self._by_wire_index.get(fragment.index)
        else:
            call = self._calls[-1] if self._calls else None
        if call is not None and fragment_id and call.id and fragment_id != call.id:
            call = None  # a new call reusing the index of an earlier one
        if call is None:
            call = _Call(index=len(self._calls))
            self._calls.append(call)
            if is_index(fragment.index):
                self._by_wire_index[fragment.index] = call
        return call

    def has_calls(self) -> bool:
        return bool(self._calls)

    def thought_signatures(self) -> dict[str, str]:
        return {c.id: c.thought_signature for c in self._calls if c.id and c.thought_signature}


class _AgentMessages:
    """ChatAgent deltas aggregated by message id; only assistant text streams out.

    The agent's own tool calls and tool results are kept (for ``response_metadata
    ["messages"]``) but never become ``tool_calls`` on the output: a LangChain agent loop
    would try to run them. Texts of successive assistant messages are separated by a blank
    line, as in the decoded whole reply.
    """

    def __init__(self) -> None:
        self._by_key: dict[str, dict[str, Any]] = {}
        self._last_key: str | None = None
        self._last_text_key: str | None = None

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self._by_key.values())

    def add(self, delta: WireMessage) -> str:
        key = as_str(delta.id, empty_is_none=True) or self._last_key or ""
        self._last_key = key
        fields = agent_message_dict(delta)
        record = self._by_key.get(key)
        if record is None:
            record = self._by_key[key] = fields
        else:
            _merge_agent_fields(record, fields)
        if agent_role(record.get("role")) != "assistant":
            return ""
        text = agent_text(delta)
        if not text:
            return ""
        separator = ""
        if self._last_text_key is not None and self._last_text_key != key:
            separator = AGENT_TEXT_SEPARATOR
        self._last_text_key = key
        return separator + text


def _merge_agent_fields(record: dict[str, Any], fields: dict[str, Any]) -> None:
    for key, value in fields.items():
        old = record.get(key)
        if key == "content" and isinstance(old, str) and isinstance(value, str):
            record[key] = old + value
        elif key == "content" and isinstance(old, list) and isinstance(value, list):
            record[key] = [*old, *value]
        elif key not in ("id", "role") or old is None:
            record[key] = value


__all__ = ["StreamDecoder"]
