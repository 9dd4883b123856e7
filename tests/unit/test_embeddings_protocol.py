"""The embeddings wire format: request bodies, both reply shapes, and typed errors."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from langchain_dbx_serving.errors import MalformedResponseError
from langchain_dbx_serving.protocols.embeddings import decode_reply, encode_request


def test_request_carries_the_texts_and_params() -> None:
    body = encode_request(["a", "b"], {"model": "bge", "dimensions": 8})
    assert body == {"input": ["a", "b"], "model": "bge", "dimensions": 8}
    assert encode_request(("x",)) == {"input": ["x"]}


def test_openai_reply_is_put_back_in_index_order() -> None:
    body = {
        "object": "list",
        "data": [
            {"object": "embedding", "index": 2, "embedding": [3, 3]},
            {"object": "embedding", "index": 0, "embedding": [1.5, 1]},
            {"object": "embedding", "index": 1, "embedding": [2, 2]},
        ],
        "usage": {"prompt_tokens": 3},
    }
    assert decode_reply(body, 3) == [[1.5, 1.0], [2.0, 2.0], [3.0, 3.0]]


def test_openai_reply_without_index_keeps_list_order() -> None:
    body = {"data": [{"embedding": [1]}, {"embedding": [2]}]}
    assert decode_reply(body, 2) == [[1.0], [2.0]]


def test_pyfunc_predictions_reply() -> None:
    assert decode_reply({"predictions": [[0.1, 0.2], [0.3, 0.4]]}, 2) == [[0.1, 0.2], [0.3, 0.4]]


@pytest.mark.parametrize(
    ("body", "expected", "fragment"),
    [
        ({"choices": []}, 1, "neither 'data'"),
        ([[1.0]], 1, "neither 'data'"),
        ({"data": [{"index": 0, "embedding": [1]}]}, 2, "1 embeddings for 2 texts"),
        ({"predictions": [[1], [2]]}, 1, "2 embeddings for 1 texts"),
        ({"data": [{"index": 0, "embedding": ["x"]}]}, 1, "not a number"),
        ({"data": [{"index": 0, "embedding": [True]}]}, 1, "not a number"),
        ({"data": [{"index": 0, "embedding": []}]}, 1, "non-empty list"),
        ({"data": [{"index": 0}]}, 1, "without an 'embedding'"),
        ({"data": [{"index": 0, "embedding": [1]}, {"index": 0, "embedding": [2]}]}, 2, "index"),
        ({"data": [{"index": 5, "embedding": [1]}]}, 1, "0..n-1"),
        ({"data": {"embedding": [1]}}, 1, "not a list"),
        ({"predictions": {"a": 1}}, 1, "not a list"),
    ],
)
def test_unexpected_replies_raise_a_typed_error(body: Any, expected: int, fragment: str) -> None:
    with pytest.raises(MalformedResponseError) as info:
        decode_reply(body, expected)
    assert fragment in str(info.value)
    assert info.value.event


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)
_shaped = st.one_of(
    _json,
    st.fixed_dictionaries({"predictions": _json}),
    st.fixed_dictionaries({"predictions": st.lists(st.lists(st.floats(allow_nan=False)))}),
    st.fixed_dictionaries(
        {
            "data": st.lists(
                st.fixed_dictionaries(
                    {"index": st.integers(-1, 4), "embedding": _json | st.lists(st.integers())}
                ),
                max_size=4,
            )
        }
    ),
)


@given(body=_shaped, expected=st.integers(0, 4))
def test_any_json_gives_vectors_or_our_typed_error(body: Any, expected: int) -> None:
    try:
        vectors = decode_reply(body, expected)
    except MalformedResponseError:
        return
    assert len(vectors) == expected
    assert all(v and all(isinstance(x, float) for x in v) for v in vectors)
