"""The seam between a chat class and its wire protocol: :class:`WireProtocol`.

A chat class (``chat_models``) holds one ``WireProtocol`` and reaches its wire format only
through it: ``encode_request`` (messages and params to a body), ``decode_reply`` (a whole reply
to a ``ChatResult``) and ``stream_decoder`` (a fresh decoder of one stream's SSE payloads).
Each protocol module names its own: ``chat_completions.PROTOCOL``, ``responses.PROTOCOL``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from langchain_core.messages import AIMessageChunk
from langchain_core.outputs import ChatResult


class StreamDecoding(Protocol):
    """What a protocol's stream decoder offers: ``feed`` one SSE payload, then ``finish``."""

    def feed(self, data: str) -> list[AIMessageChunk]: ...

    def finish(self) -> list[AIMessageChunk]: ...


@dataclass(frozen=True)
class WireProtocol:
    """One wire protocol's three entry points, as a chat class uses them.

    Example:
        >>> from langchain_dbx_serving.protocols import chat_completions
        >>> chat_completions.PROTOCOL.kind
        'chat'
        >>> decoder = chat_completions.PROTOCOL.stream_decoder()
        >>> decoder.feed("[DONE]")
        []
    """

    kind: Literal["chat", "responses"]
    encode_request: Callable[..., dict[str, Any]]
    """``encode_request(messages, params, *, stream)``: the request body."""
    decode_reply: Callable[..., ChatResult]
    """``decode_reply(body, **decode_options)``: a whole reply as a ``ChatResult``."""
    stream_decoder: Callable[..., StreamDecoding]
    """``stream_decoder(**decode_options)``: a new decoder for one stream."""
