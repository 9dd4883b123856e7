"""``DatabricksServingEmbeddings`` against the local endpoint, over loopback HTTP."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding

from langchain_dbx_serving import (
    AuthenticationError,
    BadRequestError,
    DatabricksServingEmbeddings,
    EndpointNotFoundError,
    MalformedResponseError,
    RateLimitError,
)
from langchain_dbx_serving.testing import HashEmbeddingBackend, LocalEndpoint, Reply
from langchain_dbx_serving.transport.client import Transport

TEXTS = [f"document number {i} about topic {i % 3}" for i in range(7)]


class _Miscounting:
    """An embedding model that drops the last vector."""

    def embed(self, texts: list[str]) -> list[list[float]]:
        return [[1.0] for _ in texts[:-1]]

    def respond(self, request):  # pragma: no cover - never asked to chat
        raise AssertionError


@pytest.fixture(scope="module")
def _endpoint() -> Iterator[LocalEndpoint]:
    backends = {
        "hash": HashEmbeddingBackend(dimensions=16),
        "fake": DeterministicFakeEmbedding(size=8),
        "miscounting": _Miscounting(),
        "chat": "echo",
    }
    with LocalEndpoint(backends) as ep:
        yield ep


@pytest.fixture
def ep(_endpoint: LocalEndpoint) -> Iterator[LocalEndpoint]:
    _endpoint.requests.clear()
    _endpoint.faults.clear()
    yield _endpoint
    _endpoint.faults.clear()


def make(ep: LocalEndpoint, **fields) -> DatabricksServingEmbeddings:
    fields.setdefault("endpoint", "hash")
    return DatabricksServingEmbeddings(host=ep.host, token=ep.token, **fields)


def expected(texts: list[str]) -> list[list[float]]:
    return HashEmbeddingBackend(dimensions=16).embed(texts)


def test_embed_documents_batches_in_order(ep: LocalEndpoint) -> None:
    vectors = make(ep, batch_size=3).embed_documents(TEXTS)
    assert vectors == expected(TEXTS)
    assert [r.path for r in ep.requests] == ["/serving-endpoints/hash/invocations"] * 3
    assert [r.body["input"] for r in ep.requests] == [TEXTS[0:3], TEXTS[3:6], TEXTS[6:7]]


async def test_aembed_documents_batches_concurrently_in_order(ep: LocalEndpoint) -> None:
    vectors = await make(ep, batch_size=2, max_concurrency=2).aembed_documents(TEXTS)
    assert vectors == expected(TEXTS)
    sizes = sorted(len(r.body["input"]) for r in ep.requests)
    assert sizes == [1, 2, 2, 2]


def test_embed_query_and_similar_texts_are_close(ep: LocalEndpoint) -> None:
    embeddings = make(ep)
    a = embeddings.embed_query("Delta Lake stores tables")
    b = embeddings.embed_query("tables stored in Delta Lake")
    c = embeddings.embed_query("the weather in Paris today")
    assert len(a) == 16 and math.isclose(sum(x * x for x in a), 1.0)
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    assert dot > sum(x * y for x, y in zip(a, c, strict=True))
    assert ep.requests[0].body == {"input": ["Delta Lake stores tables"]}


async def test_aembed_query(ep: LocalEndpoint) -> None:
    vector = await make(ep).aembed_query("hello world")
    assert vector == expected(["hello world"])[0]


def test_embeddings_route_sends_the_model_and_extra_body(ep: LocalEndpoint) -> None:
    embeddings = make(ep, endpoint="fake", route="embeddings", extra_body={"user": "ana"})
    vectors = embeddings.embed_documents(["x", "y"])
    assert vectors == DeterministicFakeEmbedding(size=8).embed_documents(["x", "y"])
    request = ep.last_request
    assert request.path == "/serving-endpoints/embeddings"
    assert request.body == {"input": ["x", "y"], "user": "ana", "model": "fake"}


def test_model_alias_and_base_url(ep: LocalEndpoint) -> None:
    embeddings = DatabricksServingEmbeddings(model="hash", base_url=ep.base_url, api_key=ep.token)
    assert embeddings.endpoint == "hash"
    assert len(embeddings.embed_query("hi")) == 16


def test_bad_token_is_an_authentication_error(ep: LocalEndpoint) -> None:
    embeddings = DatabricksServingEmbeddings(endpoint="hash", host=ep.host, token="wrong")
    with pytest.raises(AuthenticationError) as info:
        embeddings.embed_query("hi")
    assert "wrong" not in str(info.value)


async def test_unknown_endpoint_is_endpoint_not_found(ep: LocalEndpoint) -> None:
    with pytest.raises(EndpointNotFoundError) as info:
        await make(ep, endpoint="nope").aembed_documents(["a"])
    assert info.value.endpoint == "nope"


def test_chat_endpoint_refuses_embedding_requests(ep: LocalEndpoint) -> None:
    with pytest.raises(BadRequestError, match="does not serve embeddings"):
        make(ep, endpoint="chat").embed_documents(["a", "b"])


def test_rate_limit_is_retried_on_the_shared_transport(ep: LocalEndpoint) -> None:
    ep.faults.add(Reply.error(429, "REQUEST_LIMIT_EXCEEDED", "slow down", retry_after=0))
    embeddings = make(ep)
    assert embeddings.embed_query("retry me") == expected(["retry me"])[0]
    assert len(ep.requests) == 2
    transport = embeddings.transport
    assert isinstance(transport, Transport) and transport is embeddings.transport
    assert transport.max_retries == 3


def test_rate_limit_without_retries_is_a_typed_error(ep: LocalEndpoint) -> None:
    ep.faults.add(Reply.error(429, "REQUEST_LIMIT_EXCEEDED", "slow down", retry_after=0))
    with pytest.raises(RateLimitError):
        make(ep, max_retries=0).embed_query("no retry")


def test_a_miscounted_reply_is_malformed(ep: LocalEndpoint) -> None:
    with pytest.raises(MalformedResponseError, match="1 embeddings for 2 texts"):
        make(ep, endpoint="miscounting").embed_documents(["a", "b"])


def test_string_input_on_invocations_is_an_embedding_request(ep: LocalEndpoint) -> None:
    import httpx

    headers = {"Authorization": f"Bearer {ep.token}"}
    reply = httpx.post(ep.invocations_url("hash"), json={"input": "one"}, headers=headers)
    assert reply.status_code == 200
    assert [item["index"] for item in reply.json()["data"]] == [0]
