"""Our objects pickle cleanly (Spark executors, multiprocessing), also after their first call.

A pickled object carries its settings and an explicit token (an executor needs them to call the
endpoint; credentials from the environment, a profile or the SDK are resolved again, see
tests/security/test_pickling.py) but no HTTP client, connection pool, lock or event-loop state:
the copy builds its own clients on first use and answers like the original.
"""

from __future__ import annotations

import asyncio
import pickle
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from langchain_dbx_serving import (
    AgentEndpoint,
    ChatDatabricksResponses,
    ChatDatabricksServing,
    DatabricksServingEmbeddings,
    EndpointRouter,
    Route,
)
from langchain_dbx_serving.testing import (
    BackendRequest,
    FunctionBackend,
    HashEmbeddingBackend,
    LocalEndpoint,
    Reply,
)

TOKEN = "dapi-pickle-secret-0123456789"


def shout(request: BackendRequest) -> Reply:
    """The model: the endpoint name and the last message, upper-cased."""
    return Reply.text(f"{request.endpoint}: {request.messages[-1].text.upper()}")


def pick_route(value: Any) -> str:
    """A module-level route selector, so that the router pickles by reference."""
    return "billing" if "refund" in str(value) else "general"


@pytest.fixture(scope="module")
def endpoint() -> Iterator[LocalEndpoint]:
    backends = {
        "chat": FunctionBackend(shout),
        "billing": FunctionBackend(shout),
        "general": FunctionBackend(shout),
        "agent": FunctionBackend(shout),
        "embed": HashEmbeddingBackend(),
    }
    with LocalEndpoint(backends, token=TOKEN) as ep:
        yield ep


def answer_of(obj: Any, prompt: str) -> str:
    """What a user reads from each kind of object's answer."""
    if isinstance(obj, DatabricksServingEmbeddings):
        return repr(obj.embed_query(prompt))
    output = obj.invoke(prompt)
    if isinstance(obj, EndpointRouter):
        return f"[{output.route}] {output.output.text}"
    return output.text


async def aanswer_of(obj: Any, prompt: str) -> str:
    if isinstance(obj, DatabricksServingEmbeddings):
        return repr(await obj.aembed_query(prompt))
    output = await obj.ainvoke(prompt)
    if isinstance(obj, EndpointRouter):
        return f"[{output.route}] {output.output.text}"
    return output.text


def chat_serving(ep: LocalEndpoint) -> ChatDatabricksServing:
    return ChatDatabricksServing(endpoint="chat", host=ep.host, token=ep.token, max_tokens=50)


def chat_responses(ep: LocalEndpoint) -> ChatDatabricksResponses:
    return ChatDatabricksResponses(endpoint="chat", host=ep.host, token=ep.token)


def embeddings(ep: LocalEndpoint) -> DatabricksServingEmbeddings:
    return DatabricksServingEmbeddings(endpoint="embed", host=ep.host, token=ep.token)


def agent(ep: LocalEndpoint) -> AgentEndpoint:
    return AgentEndpoint("agent", host=ep.host, token=ep.token, return_trace=True)


def router(ep: LocalEndpoint) -> EndpointRouter:
    def route(name: str) -> Route:
        chat = ChatDatabricksServing(endpoint=name, host=ep.host, token=ep.token)
        return Route(name=name, runnable=chat)

    return EndpointRouter(routes=[route("billing"), route("general")], select=pick_route)


FACTORIES: dict[str, Callable[[LocalEndpoint], Any]] = {
    "ChatDatabricksServing": chat_serving,
    "ChatDatabricksResponses": chat_responses,
    "DatabricksServingEmbeddings": embeddings,
    "AgentEndpoint": agent,
    "EndpointRouter": router,
}
EXPECTED_ANSWERS = {
    "ChatDatabricksServing": "chat: A REFUND PLEASE",
    "ChatDatabricksResponses": "chat: A REFUND PLEASE",
    "AgentEndpoint": "agent: A REFUND PLEASE",
    "EndpointRouter": "[billing] billing: A REFUND PLEASE",
}
PROMPT = "a refund please"


def expected_answer(name: str) -> str:
    if name == "DatabricksServingEmbeddings":
        return repr(HashEmbeddingBackend().embed([PROMPT])[0])
    return EXPECTED_ANSWERS[name]


def assert_clean(data: bytes) -> None:
    """No HTTP client, pool, lock or event loop travels in the pickle (classes are pickled
    by module name, so any such object would name its module in the bytes)."""
    for module in (b"httpx", b"httpcore", b"_thread", b"asyncio", b"threading", b"socket"):
        assert module not in data, module


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_pickles_before_any_call(endpoint: LocalEndpoint, name: str) -> None:
    obj = FACTORIES[name](endpoint)
    data = pickle.dumps(obj)
    assert_clean(data)
    assert answer_of(pickle.loads(data), PROMPT) == expected_answer(name)


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_pickles_after_sync_and_async_calls(endpoint: LocalEndpoint, name: str) -> None:
    obj = FACTORIES[name](endpoint)
    # Both calls build HTTP clients (a sync pool, an async pool bound to the loop).
    assert answer_of(obj, PROMPT) == expected_answer(name)
    assert asyncio.run(aanswer_of(obj, PROMPT)) == expected_answer(name)

    data = pickle.dumps(obj)
    assert_clean(data)
    copy = pickle.loads(data)

    assert answer_of(copy, PROMPT) == expected_answer(name)
    assert asyncio.run(aanswer_of(copy, PROMPT)) == expected_answer(name)
    # Pickling left the original's clients alone: it still answers.
    assert answer_of(obj, PROMPT) == expected_answer(name)


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_copy_masks_the_token_it_carries(endpoint: LocalEndpoint, name: str) -> None:
    obj = FACTORIES[name](endpoint)
    answer_of(obj, PROMPT)
    data = pickle.dumps(obj)
    # An executor needs the token to call the endpoint, so the pickle must carry it ...
    assert TOKEN.encode() in data
    copy = pickle.loads(data)
    # ... but the copy shows it no more than the original does.
    assert TOKEN not in repr(copy)
    assert TOKEN not in str(copy)
    if not isinstance(copy, EndpointRouter):
        assert "**********" in repr(copy)


def test_copy_keeps_settings_and_bound_arguments(endpoint: LocalEndpoint) -> None:
    llm = chat_serving(endpoint)
    bound = llm.bind(custom_inputs={"user": "ana"}, temperature=0.2)
    bound.invoke("hi")

    copy = pickle.loads(pickle.dumps(bound))
    assert copy.invoke("hi").text == "chat: HI"

    body = endpoint.last_request.body
    assert body["custom_inputs"] == {"user": "ana"}
    assert body["temperature"] == 0.2
    assert body["max_tokens"] == 50


def test_copies_in_a_batch_share_nothing_with_the_original(endpoint: LocalEndpoint) -> None:
    llm = chat_serving(endpoint)
    prompts = [f"row {i}" for i in range(8)]
    expected = [f"chat: ROW {i}" for i in range(8)]
    assert [m.text for m in llm.batch(prompts, config={"max_concurrency": 4})] == expected

    copy = pickle.loads(pickle.dumps(llm))
    assert [m.text for m in copy.batch(prompts, config={"max_concurrency": 4})] == expected
    answers = asyncio.run(copy.abatch(prompts, config={"max_concurrency": 4}))
    assert [m.text for m in answers] == expected


def test_injected_http_clients_are_not_pickled(endpoint: LocalEndpoint) -> None:
    import httpx

    with httpx.Client() as client:
        model = chat_serving(endpoint).model_copy(update={"http_client": client})
        assert model.invoke("injected").text == "chat: INJECTED"
        copy = pickle.loads(pickle.dumps(model))
    assert copy.http_client is None
    assert copy.invoke("still works").text == "chat: STILL WORKS"
