"""The embeddings wire format: texts to a request body, and a reply back to vectors.

Requests are ``{"input": [...texts], **params}`` on both routes
(``/serving-endpoints/{name}/invocations`` and ``/serving-endpoints/embeddings`` with
``"model"``). Replies come in two shapes:

- OpenAI style (Foundation Model APIs, external models):
  ``{"data": [{"index": 0, "embedding": [...]}, ...]}``, put back in ``index`` order;
- pyfunc style (custom models): ``{"predictions": [[...], ...]}``.

Anything else, a count that differs from the texts sent, or a vector that is not a non-empty
list of numbers raises :class:`~langchain_dbx_serving.errors.MalformedResponseError`.

Example:
    >>> encode_request(["a", "b"], {"model": "bge"})
    {'input': ['a', 'b'], 'model': 'bge'}
    >>> decode_reply({"data": [{"index": 1, "embedding": [2]}, {"index": 0, "embedding": [1]}]}, 2)
    [[1.0], [2.0]]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from langchain_dbx_serving.errors import MalformedResponseError
from langchain_dbx_serving.protocols._common import preview

__all__ = ["decode_reply", "encode_request"]


def encode_request(texts: Sequence[str], params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The request body embedding ``texts``; ``params`` are extra top-level keys."""
    return {"input": list(texts), **(params or {})}


def _malformed(message: str, body: Any) -> MalformedResponseError:
    return MalformedResponseError(
        f"the embeddings reply {message}: {preview(body)!r}", event=preview(body)
    )


def _vector(value: Any, body: Any) -> list[float]:
    if not isinstance(value, list) or not value:
        raise _malformed("has an embedding that is not a non-empty list of numbers", body)
    vector = []
    for number in value:
        if isinstance(number, bool) or not isinstance(number, (int, float)):
            raise _malformed("has an embedding with a value that is not a number", body)
        vector.append(float(number))
    return vector


def _from_data(data: Any, body: Any) -> list[Any]:
    if not isinstance(data, list):
        raise _malformed("has a 'data' that is not a list", body)
    indexed: dict[int, Any] = {}
    for position, item in enumerate(data):
        if not isinstance(item, Mapping) or "embedding" not in item:
            raise _malformed("has a 'data' item without an 'embedding'", body)
        index = item.get("index", position)
        if isinstance(index, bool) or not isinstance(index, int) or index in indexed:
            raise _malformed("has a missing, duplicated or non-integer 'index'", body)
        indexed[index] = item["embedding"]
    if sorted(indexed) != list(range(len(indexed))):
        raise _malformed("has 'index' values that are not 0..n-1", body)
    return [indexed[i] for i in range(len(indexed))]


def decode_reply(body: Any, expected: int) -> list[list[float]]:
    """The vectors of a reply, in the order of the texts sent (``expected`` of them)."""
    if isinstance(body, Mapping) and "data" in body:
        raw = _from_data(body["data"], body)
    elif isinstance(body, Mapping) and "predictions" in body:
        raw = body["predictions"]
        if not isinstance(raw, list):
            raise _malformed("has 'predictions' that are not a list", body)
    else:
        raise _malformed("has neither 'data' (OpenAI style) nor 'predictions' (pyfunc)", body)
    if len(raw) != expected:
        raise _malformed(f"has {len(raw)} embeddings for {expected} texts", body)
    return [_vector(value, body) for value in raw]
