"""Stream chunks built from a learnt validated state are the objects validation would give.

``protocols/_fast_chunks`` skips pydantic's validation per token; these tests hold it to what
``AIMessageChunk(...)`` / ``ChatGenerationChunk(...)`` give, field by field, and to never
sharing a container between two chunks.
"""

from __future__ import annotations

from functools import reduce
from operator import add
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from langchain_core.messages import AIMessageChunk
from langchain_core.outputs import ChatGenerationChunk

from langchain_dbx_serving.protocols import _fast_chunks
from langchain_dbx_serving.protocols._fast_chunks import generation_chunk, text_chunk

IDS = st.one_of(st.none(), st.text(max_size=20))


def state(obj: Any) -> tuple[Any, ...]:
    return (
        type(obj),
        list(obj.__dict__.items()),
        obj.__pydantic_fields_set__,
        obj.__pydantic_extra__,
        obj.__pydantic_private__,
    )


def test_the_fast_builders_are_in_use_with_the_installed_langchain_core() -> None:
    # Otherwise every chunk is validated (correct, but the speed-up is gone unnoticed).
    assert _fast_chunks._with_id is not None
    assert _fast_chunks._without_id is not None
    assert _fast_chunks._generation is not None


@given(text=st.text(max_size=50), id_=IDS)
def test_a_text_chunk_is_what_validation_gives(text: str, id_: str | None) -> None:
    assert state(text_chunk(text, id_)) == state(AIMessageChunk(content=text, id=id_))
    assert state(text_chunk(text)) == state(AIMessageChunk(content=text))


@given(text=st.text(max_size=50), id_=IDS)
def test_a_generation_chunk_is_what_validation_gives(text: str, id_: str | None) -> None:
    message = text_chunk(text, id_)
    fast, validated = generation_chunk(message), ChatGenerationChunk(message=message)
    assert state(fast) == state(validated)
    assert fast.message is message
    assert fast.text == text


def test_other_content_and_messages_are_validated() -> None:
    blocks = [{"type": "text", "text": "hi"}]
    assert state(text_chunk(blocks, "i")) == state(AIMessageChunk(content=blocks, id="i"))
    legacy = AIMessageChunk(content=[{"text": "a"}, "b"])  # legacy blocks: text is derived
    assert generation_chunk(legacy).text == ChatGenerationChunk(message=legacy).text == "ab"
    # An id that is not a string is left to validation (which coerces it).
    assert state(text_chunk("x", 7)) == state(AIMessageChunk(content="x", id=7))  # type: ignore[arg-type]


def test_no_two_chunks_share_a_container() -> None:
    first, second = text_chunk("a", "i"), text_chunk("b", "i")
    first.tool_calls.append({"name": "f", "args": {}, "id": "1", "type": "tool_call"})
    first.additional_kwargs["k"] = 1
    first.response_metadata["finish_reason"] = "stop"
    first.tool_call_chunks.append({"name": "f", "args": "", "id": "1", "index": 0})
    first.invalid_tool_calls.append({"name": "f", "args": "", "id": "1", "error": None})
    assert state(second) == state(AIMessageChunk(content="b", id="i"))
    assert state(text_chunk("c")) == state(AIMessageChunk(content="c"))
    first.model_extra["x"] = 1  # type: ignore[index]
    assert text_chunk("d").model_extra == {}
    generation = generation_chunk(second)
    generation.generation_info = {"finish_reason": "stop"}
    assert generation_chunk(second).generation_info is None


def test_chunks_add_up_like_validated_ones() -> None:
    texts = ["Hel", "lo", "", " wörld 🦊"]
    fast = reduce(add, [generation_chunk(text_chunk(t, "c1")) for t in texts])
    slow = reduce(
        add, [ChatGenerationChunk(message=AIMessageChunk(content=t, id="c1")) for t in texts]
    )
    assert state(fast.message) == state(slow.message)
    assert fast.text == slow.text == "Hello wörld 🦊"


def test_a_release_that_derives_more_falls_back_to_validation() -> None:
    # A validator that derives a field from the input cannot be copied: no builder is learnt.
    derived = _fast_chunks._learn(
        AIMessageChunk,
        lambda text: AIMessageChunk(content=text, name=text.upper()),
        lambda text: {"content": text},
        [("a",), ("b",)],
    )
    assert derived is None
    copied = _fast_chunks._learn(
        AIMessageChunk,
        lambda text: AIMessageChunk(content=text),
        lambda text: {"content": text},
        [("a",), ("b",)],
    )
    assert copied is not None
    assert state(copied({"content": "z"})) == state(AIMessageChunk(content="z"))
