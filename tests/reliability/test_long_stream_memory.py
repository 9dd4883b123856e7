"""A long stream holds what it needs for ``partial``, not one object per token.

Every streamed token used to be kept (by the model and by its decoder) until the stream ended,
so that an error could carry everything received: about 1 KiB per token per stream in flight
(2.6 MiB for a 2,000-token answer, 4x the floor in the benchmark's "RSS per concurrent
stream"). What is held is now folded into one chunk as it grows; ``partial`` must still be
everything that arrived, for any length and either protocol.
"""

from __future__ import annotations

import tracemalloc
from typing import Any

import pytest
from langchain_core.messages import AIMessageChunk

from langchain_dbx_serving import ChatDatabricksResponses, ChatDatabricksServing
from langchain_dbx_serving.errors import StreamInterruptedError
from langchain_dbx_serving.protocols import _chat_stream, _responses_stream
from langchain_dbx_serving.protocols._emitted import FOLD_EVERY, Emitted
from langchain_dbx_serving.testing import LocalEndpoint, Reply
from tests.support.serving import queue

TOKENS = 3000


def _chat_event(i: int) -> str:
    return f'{{"id": "c1", "choices": [{{"index": 0, "delta": {{"content": "t{i} "}}}}]}}'


def _responses_event(i: int) -> str:
    return f'{{"type": "response.output_text.delta", "item_id": "m1", "delta": "t{i} "}}'


@pytest.mark.parametrize(
    ("decoder", "event"),
    [
        (_chat_stream.StreamDecoder, _chat_event),
        (_responses_stream.StreamDecoder, _responses_event),
    ],
    ids=["chat", "responses"],
)
def test_a_decoder_does_not_hold_every_token(decoder: Any, event: Any) -> None:
    stream = decoder()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(TOKENS):
            stream.feed(event(i))  # the caller drops each chunk, as a consumer printing does
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()

    # The text itself stays (a responses decoder keeps its output items); a chunk object per
    # token (about 1.2 KiB each) does not.
    assert held < TOKENS * 256, f"{held / TOKENS:.0f} bytes held per token"
    with pytest.raises(StreamInterruptedError) as caught:
        stream.finish()  # no [DONE]: cut off
    assert caught.value.partial.text == "".join(f"t{i} " for i in range(TOKENS))


@pytest.mark.parametrize("protocol", ["chat", "responses"])
@pytest.mark.parametrize("mode", ["stream", "astream"])
async def test_partial_of_a_long_cut_stream_is_everything_that_arrived(
    serving: LocalEndpoint, protocol: str, mode: str
) -> None:
    pieces = [f"w{i} " for i in range(1200)]
    name = "chat" if protocol == "chat" else "responder"
    queue(serving, Reply.text(pieces, cut_after=1000), name=name)
    cls = ChatDatabricksServing if protocol == "chat" else ChatDatabricksResponses
    llm = cls(endpoint=name, host=serving.host, token=serving.token, max_retries=0)
    seen: list[AIMessageChunk] = []

    with pytest.raises(StreamInterruptedError) as caught:
        if mode == "stream":
            for chunk in llm.stream("go"):
                seen.append(chunk)
        else:
            async for chunk in llm.astream("go"):
                seen.append(chunk)

    partial = caught.value.partial
    assert partial is not None
    received = "".join(chunk.text for chunk in seen)
    assert len(received) > 0
    assert partial.text == received
    assert "".join(pieces).startswith(partial.text)


def _shapes(i: int) -> AIMessageChunk:
    """Chunks of every kind a stream emits, mixed: text, a tool call's pieces, reasoning
    blocks, metadata and usage."""
    kind = i % 7
    if kind == 0:
        return AIMessageChunk(
            content="", tool_call_chunks=[{"index": 0, "id": None, "name": None, "args": f"{i}"}]
        )
    if kind == 1:
        return AIMessageChunk(content=[{"type": "reasoning", "reasoning": f"r{i}", "index": 0}])
    if kind == 2:
        return AIMessageChunk(content=f"t{i}", response_metadata={"model_name": "m"})
    if kind == 3:
        usage = {"input_tokens": 1, "output_tokens": 1, "total_tokens": 2}
        return AIMessageChunk(content="", usage_metadata=usage)  # type: ignore[arg-type]
    return AIMessageChunk(content=f"t{i} ", id="c1")


@pytest.mark.parametrize("count", [1, FOLD_EVERY, FOLD_EVERY + 1, 3 * FOLD_EVERY + 5])
@pytest.mark.parametrize("make", [_shapes, lambda i: AIMessageChunk(content=f"t{i} ", id="c1")])
def test_what_is_held_adds_up_to_every_chunk(count: int, make: Any) -> None:
    chunks = [make(i) for i in range(count)]
    emitted = Emitted()
    emitted.extend(chunks)

    expected = chunks[0] + chunks[1:] if count > 1 else chunks[0]
    assert emitted.combined() == expected
    assert len(list(emitted)) <= FOLD_EVERY


def test_chunks_that_cannot_be_added_are_kept_as_they_came() -> None:
    chunks = [
        AIMessageChunk(content=f"t{i}", additional_kwargs={"x": 1 if i % 2 else "s"})
        for i in range(FOLD_EVERY + 10)
    ]
    emitted = Emitted()
    emitted.extend(chunks)  # adding them raises: nothing is lost, nothing raises here

    assert list(emitted) == chunks
