"""The clients under test, each behind the same three calls: ``invoke``, ``stream``, ``abatch``.

Every client is built lazily inside its own benchmark process (see ``_measure.py``), so only its
own imports count. ``floor`` is the smallest honest LangChain chat model over httpx: what any
LangChain client must at least cost; ``httpx`` is no LangChain at all.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, Protocol

ENDPOINT = "databricks-bench-model"
PROMPT = [("system", "You are a terse assistant."), ("human", "Say something about foxes.")]
WIRE_MESSAGES = [
    {"role": "system", "content": "You are a terse assistant."},
    {"role": "user", "content": "Say something about foxes."},
]


def _host() -> str:
    return os.environ["DATABRICKS_HOST"].rstrip("/")


def _token() -> str:
    return os.environ["DATABRICKS_TOKEN"]


class Bench(Protocol):
    """What the harness drives: one reply, one whole stream, one batch."""

    def invoke(self) -> str: ...

    def stream(self) -> int:
        """Stream one reply; the number of chunks that carried text."""
        ...

    async def abatch(self, n: int, concurrency: int) -> list[str]: ...

    async def astream_batch(self, n: int, concurrency: int) -> list[int]:
        """``n`` concurrent streams, at most ``concurrency`` at once; text chunks of each."""
        ...


class LangChainBench:
    """A LangChain chat model driven through the public Runnable API."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def invoke(self) -> str:
        return self.model.invoke(PROMPT).text

    def stream(self) -> int:
        return sum(1 for chunk in self.model.stream(PROMPT) if chunk.text)

    async def abatch(self, n: int, concurrency: int) -> list[str]:
        replies = await self.model.abatch([PROMPT] * n, config={"max_concurrency": concurrency})
        return [reply.text for reply in replies]

    async def aclose(self) -> None:
        """Close the model's async connections, where it has a way (ours, the floor)."""
        closer = getattr(self.model, "aclose", None)
        if closer is not None:
            await closer()

    async def astream_batch(self, n: int, concurrency: int) -> list[int]:
        # LangChain has no "abatch of streams": what a user does is gather astream() calls
        # behind a semaphore, as here.
        gate = asyncio.Semaphore(concurrency)

        async def one() -> int:
            async with gate:
                return sum([1 async for chunk in self.model.astream(PROMPT) if chunk.text])

        return await asyncio.gather(*(one() for _ in range(n)))


def _limits() -> Any:
    import httpx

    # One pool keeping 64 alive (our transport until 2026-12-02; it now splits its 64 over 8
    # clients, see docs/benchmarks.md "Transport decision"), so concurrency 64 reuses them.
    return httpx.Limits(max_connections=100, max_keepalive_connections=64)


class HttpxBench:
    """Raw httpx: the request body by hand, the reply's text by index. No LangChain."""

    def __init__(self) -> None:
        import httpx

        self.url = f"{_host()}/serving-endpoints/{ENDPOINT}/invocations"
        self.headers = {"Authorization": f"Bearer {_token()}", "Content-Type": "application/json"}
        self.client = httpx.Client(limits=_limits(), timeout=120)
        self.async_client_factory = lambda: httpx.AsyncClient(limits=_limits(), timeout=120)
        self.async_client: Any = None

    def _body(self, stream: bool = False) -> bytes:
        body: dict[str, Any] = {"messages": WIRE_MESSAGES}
        if stream:
            body["stream"] = True
        return json.dumps(body).encode()

    def invoke(self) -> str:
        reply = self.client.post(self.url, content=self._body(), headers=self.headers)
        return reply.json()["choices"][0]["message"]["content"]

    def stream(self) -> int:
        count = 0
        body = self._body(stream=True)
        with self.client.stream("POST", self.url, content=body, headers=self.headers) as reply:
            for line in reply.iter_lines():
                if line.startswith("data: ") and line != "data: [DONE]":
                    delta = json.loads(line[6:])["choices"][0]["delta"]
                    count += bool(delta.get("content"))
        return count

    async def abatch(self, n: int, concurrency: int) -> list[str]:
        # One client per event loop, kept across calls like the chat models keep theirs.
        if self.async_client is None:
            self.async_client = self.async_client_factory()
        client, gate = self.async_client, asyncio.Semaphore(concurrency)

        async def one() -> str:
            async with gate:
                reply = await client.post(self.url, content=self._body(), headers=self.headers)
                return reply.json()["choices"][0]["message"]["content"]

        return await asyncio.gather(*(one() for _ in range(n)))

    async def aclose(self) -> None:
        if self.async_client is not None:
            await self.async_client.aclose()
            self.async_client = None

    async def astream_batch(self, n: int, concurrency: int) -> list[int]:
        if self.async_client is None:
            self.async_client = self.async_client_factory()
        client, gate = self.async_client, asyncio.Semaphore(concurrency)
        body = self._body(stream=True)

        async def one() -> int:
            count = 0
            async with (
                gate,
                client.stream("POST", self.url, content=body, headers=self.headers) as reply,
            ):
                async for line in reply.aiter_lines():
                    if line.startswith("data: ") and line != "data: [DONE]":
                        delta = json.loads(line[6:])["choices"][0]["delta"]
                        count += bool(delta.get("content"))
            return count

        return await asyncio.gather(*(one() for _ in range(n)))


def floor_model_class() -> type:
    """The floor: a minimal LangChain chat model over httpx (sync, async and streaming).

    Defined on call, so that the processes of the other clients never import langchain-core
    on its account.
    """
    import httpx
    from langchain_core.language_models import BaseChatModel
    from langchain_core.messages import AIMessage, AIMessageChunk
    from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
    from pydantic import PrivateAttr

    roles = {"system": "system", "human": "user", "ai": "assistant"}

    class FloorChat(BaseChatModel):
        url: str
        token: str
        _sync: Any = PrivateAttr(default=None)
        _async: Any = PrivateAttr(default=None)

        @property
        def _llm_type(self) -> str:
            return "floor"

        def _request(self, messages: list, stream: bool = False) -> dict[str, Any]:
            body: dict[str, Any] = {
                "messages": [{"role": roles[m.type], "content": m.content} for m in messages]
            }
            if stream:
                body["stream"] = True
            return {"json": body, "headers": {"Authorization": f"Bearer {self.token}"}}

        @staticmethod
        def _result(data: dict[str, Any]) -> ChatResult:
            choice, usage = data["choices"][0], data.get("usage") or {}
            message = AIMessage(
                content=choice["message"]["content"],
                id=data.get("id"),
                response_metadata={"finish_reason": choice.get("finish_reason")},
                usage_metadata={
                    "input_tokens": usage.get("prompt_tokens", 0),
                    "output_tokens": usage.get("completion_tokens", 0),
                    "total_tokens": usage.get("total_tokens", 0),
                },
            )
            return ChatResult(generations=[ChatGeneration(message=message)])

        def _generate(
            self, messages: list, stop: Any = None, run_manager: Any = None, **kw: Any
        ) -> ChatResult:
            self._sync = self._sync or httpx.Client(limits=_limits(), timeout=120)
            reply = self._sync.post(self.url, **self._request(messages))
            reply.raise_for_status()
            return self._result(reply.json())

        async def _agenerate(
            self, messages: list, stop: Any = None, run_manager: Any = None, **kw: Any
        ) -> ChatResult:
            self._async = self._async or httpx.AsyncClient(limits=_limits(), timeout=120)
            reply = await self._async.post(self.url, **self._request(messages))
            reply.raise_for_status()
            return self._result(reply.json())

        def _stream(
            self, messages: list, stop: Any = None, run_manager: Any = None, **kw: Any
        ) -> Iterator[ChatGenerationChunk]:
            self._sync = self._sync or httpx.Client(limits=_limits(), timeout=120)
            with self._sync.stream("POST", self.url, **self._request(messages, True)) as reply:
                reply.raise_for_status()
                for line in reply.iter_lines():
                    if not line.startswith("data: ") or line == "data: [DONE]":
                        continue
                    data = json.loads(line[6:])
                    choice = data["choices"][0]
                    meta = (
                        {"finish_reason": choice["finish_reason"]}
                        if choice["finish_reason"]
                        else {}
                    )
                    chunk = AIMessageChunk(
                        content=choice["delta"].get("content") or "",
                        id=data.get("id"),
                        response_metadata=meta,
                    )
                    yield ChatGenerationChunk(message=chunk)

        async def aclose(self) -> None:
            if self._async is not None:
                await self._async.aclose()
                self._async = None

        async def _astream(
            self, messages: list, stop: Any = None, run_manager: Any = None, **kw: Any
        ) -> AsyncIterator[ChatGenerationChunk]:
            self._async = self._async or httpx.AsyncClient(limits=_limits(), timeout=120)
            request = self._request(messages, True)
            async with self._async.stream("POST", self.url, **request) as reply:
                reply.raise_for_status()
                async for line in reply.aiter_lines():
                    if not line.startswith("data: ") or line == "data: [DONE]":
                        continue
                    yield ChatGenerationChunk(message=_floor_chunk(json.loads(line[6:])))

    def _floor_chunk(data: dict[str, Any]) -> AIMessageChunk:
        choice = data["choices"][0]
        meta = {"finish_reason": choice["finish_reason"]} if choice["finish_reason"] else {}
        return AIMessageChunk(
            content=choice["delta"].get("content") or "", id=data.get("id"), response_metadata=meta
        )

    return FloorChat


def _serving() -> LangChainBench:
    from langchain_dbx_serving import ChatDatabricksServing

    return LangChainBench(ChatDatabricksServing(endpoint=ENDPOINT))


def _responses() -> LangChainBench:
    from langchain_dbx_serving import ChatDatabricksResponses

    return LangChainBench(ChatDatabricksResponses(endpoint=ENDPOINT))


def _databricks() -> LangChainBench:
    from databricks_langchain import ChatDatabricks

    # It reads DATABRICKS_HOST/DATABRICKS_TOKEN through databricks-sdk and talks to
    # {host}/serving-endpoints/chat/completions through an OpenAI client.
    return LangChainBench(ChatDatabricks(model=ENDPOINT))


def _openai() -> LangChainBench:
    from langchain_openai import ChatOpenAI

    return LangChainBench(
        ChatOpenAI(base_url=f"{_host()}/serving-endpoints", api_key=_token(), model=ENDPOINT)
    )


def _floor() -> LangChainBench:
    model = floor_model_class()(
        url=f"{_host()}/serving-endpoints/{ENDPOINT}/invocations", token=_token()
    )
    return LangChainBench(model)


FACTORIES: dict[str, Callable[[], Bench]] = {
    "serving": _serving,
    "responses": _responses,
    "databricks": _databricks,
    "openai": _openai,
    "floor": _floor,
    "httpx": HttpxBench,
}
