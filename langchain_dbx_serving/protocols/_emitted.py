"""What a stream has emitted so far, kept for the ``partial`` of an error raised later.

Example:
    >>> from langchain_core.messages import AIMessageChunk
    >>> emitted = Emitted()
    >>> for token in ["Hel", "lo"]:
    ...     emitted.append(AIMessageChunk(content=token))
    >>> emitted.combined().text
    'Hello'
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from langchain_core.messages import AIMessageChunk
from langchain_core.messages.ai import add_ai_message_chunks

__all__ = ["FOLD_EVERY", "Emitted"]

FOLD_EVERY = 256
"""Loose chunks held before they are added into one."""


class Emitted:
    """The chunks of a stream so far, held for ``partial``: one per token would cost about
    1 KiB per token per stream in flight, so every :data:`FOLD_EVERY` chunks the held ones are
    added into one with LangChain's chunk addition (what ``partial`` does with them anyway; it
    is associative). Chunks that cannot be added (wire extras of clashing types) stay loose,
    and ``partial`` falls back as it did (see the decoders)."""

    __slots__ = ("_chunks", "_folds")

    def __init__(self) -> None:
        self._chunks: list[AIMessageChunk] = []
        self._folds = True

    def __bool__(self) -> bool:
        return bool(self._chunks)

    def __iter__(self) -> Iterator[AIMessageChunk]:
        return iter(self._chunks)

    def append(self, chunk: AIMessageChunk) -> None:
        chunks = self._chunks
        chunks.append(chunk)
        if self._folds and len(chunks) > FOLD_EVERY:
            try:
                self._chunks = [_plain_text_sum(chunks) or add_ai_message_chunks(*chunks)]
            except (TypeError, ValueError):
                self._folds = False  # keep them as they came

    def extend(self, chunks: Iterable[AIMessageChunk]) -> None:
        for chunk in chunks:
            self.append(chunk)

    def combined(self) -> AIMessageChunk | None:
        """Everything held, added into one chunk (``None`` before the first)."""
        chunks = self._chunks
        if not chunks:
            return None
        return chunks[0] + chunks[1:] if len(chunks) > 1 else chunks[0]


def _plain_text_sum(chunks: list[AIMessageChunk]) -> AIMessageChunk | None:
    """The sum of text deltas that carry nothing but text and one id (what most of a stream
    is), as chunk addition would give it; ``None`` when any carries more."""
    first = chunks[0]
    for chunk in chunks:
        if (
            type(chunk.content) is not str
            or chunk.id != first.id
            or chunk.tool_call_chunks
            or chunk.response_metadata
            or chunk.additional_kwargs
            or chunk.usage_metadata is not None
            or chunk.chunk_position is not None
            or chunk.name is not None
            or type(chunk) is not AIMessageChunk
        ):
            return None
    return AIMessageChunk(content="".join([c.content for c in chunks]), id=first.id)  # type: ignore[misc]
