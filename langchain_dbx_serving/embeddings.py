"""``DatabricksServingEmbeddings``: LangChain embeddings from Databricks embedding endpoints."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal

from langchain_core.embeddings import Embeddings
from pydantic import Field

from langchain_dbx_serving._connection import DatabricksConnection
from langchain_dbx_serving._frames import clears_frames
from langchain_dbx_serving._paths import endpoint_segment
from langchain_dbx_serving.protocols import embeddings as protocol
from langchain_dbx_serving.tracing._propagation import with_trace_context

__all__ = ["DatabricksServingEmbeddings"]


class DatabricksServingEmbeddings(DatabricksConnection, Embeddings):
    """Embeddings from a Databricks Model Serving endpoint (e.g. ``databricks-gte-large-en``).

    Texts are sent in batches of ``batch_size`` (``{"input": [...]}``); async calls send the
    batches concurrently, at most ``max_concurrency`` at a time. Vectors come back in the order
    of the texts. Authentication, retries (429, 503, failed connections) and errors are the
    same as the chat classes': ``host``/``token`` (or ``DATABRICKS_HOST``/``DATABRICKS_TOKEN``,
    or databricks-sdk's unified auth), typed errors such as ``RateLimitError`` and
    ``MalformedResponseError``.

    Example:
        .. code-block:: python

            from langchain_core.vectorstores import InMemoryVectorStore
            from langchain_dbx_serving import DatabricksServingEmbeddings

            embeddings = DatabricksServingEmbeddings(endpoint="databricks-gte-large-en")
            vector = embeddings.embed_query("What is Delta Lake?")
            store = InMemoryVectorStore.from_texts(["Delta Lake is ..."], embeddings)
            store.similarity_search("delta", k=1)

            # The OpenAI-compatible route, with extra body keys:
            DatabricksServingEmbeddings(
                endpoint="databricks-bge-large-en", route="embeddings", extra_body={"user": "ana"}
            )
    """

    endpoint: str = Field(alias="model")
    """Name of the serving endpoint (``model`` is accepted as an alias)."""
    route: Literal["invocations", "embeddings"] = "invocations"
    """``invocations`` POSTs ``/serving-endpoints/{endpoint}/invocations``; ``embeddings`` uses
    the OpenAI-compatible ``/serving-endpoints/embeddings`` with ``"model": endpoint``."""
    batch_size: int = Field(default=150, gt=0)
    """Most texts sent in one request."""
    max_concurrency: int = Field(default=8, gt=0)
    """Most requests in flight at once in ``aembed_documents``."""
    extra_body: dict[str, Any] | None = None
    """Other keys to send at the top level of every request body (``extra_params`` and
    ``model_kwargs`` are accepted as aliases)."""
    query_params: dict[str, Any] | None = None
    """Keys sent only with ``embed_query`` (over ``extra_body``), as in databricks-langchain,
    e.g. an ``instruction`` for models that embed queries and documents differently."""
    documents_params: dict[str, Any] | None = None
    """Keys sent only with ``embed_documents`` (over ``extra_body``)."""

    def _url(self) -> str:
        if self.route == "embeddings":
            return f"{self._root_url()}/embeddings"
        return f"{self._root_url()}/{endpoint_segment(self.endpoint)}/invocations"

    def _body(self, texts: Sequence[str], extra: Mapping[str, Any] | None) -> dict[str, Any]:
        params = {**(self.extra_body or {}), **(extra or {})}
        if self.route == "embeddings":
            params["model"] = self.endpoint
        return protocol.encode_request(texts, params)

    def _trace_headers(self) -> dict[str, str] | None:
        return with_trace_context(None, enabled=self.propagate_trace_context)

    def _batches(self, texts: Sequence[str]) -> Iterator[list[str]]:
        for start in range(0, len(texts), self.batch_size):
            yield list(texts[start : start + self.batch_size])

    def _embed(self, texts: list[str], extra: Mapping[str, Any] | None) -> list[list[float]]:
        reply = self.transport.post_json(
            self._url(),
            self._body(texts, extra),
            endpoint=self.endpoint,
            headers=self._trace_headers(),
        )
        return protocol.decode_reply(reply, len(texts))

    async def _aembed(
        self, texts: list[str], slots: asyncio.Semaphore, extra: Mapping[str, Any] | None
    ) -> list[list[float]]:
        async with slots:
            reply = await self.transport.apost_json(
                self._url(),
                self._body(texts, extra),
                endpoint=self.endpoint,
                headers=self._trace_headers(),
            )
        return protocol.decode_reply(reply, len(texts))

    @clears_frames
    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed ``texts`` (in batches of ``batch_size``), one vector per text, in order."""
        extra = self.documents_params
        return [vector for batch in self._batches(texts) for vector in self._embed(batch, extra)]

    def embed_query(self, text: str) -> list[float]:
        """Embed one text (with ``query_params``)."""
        return self._embed([text], self.query_params)[0]

    @clears_frames
    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """Async :meth:`embed_documents`; batches are sent concurrently (``max_concurrency``)."""
        slots = asyncio.Semaphore(self.max_concurrency)
        batches = list(self._batches(texts))
        extra = self.documents_params
        results = await asyncio.gather(*(self._aembed(b, slots, extra) for b in batches))
        return [vector for result in results for vector in result]

    async def aembed_query(self, text: str) -> list[float]:
        """Async :meth:`embed_query`."""
        return (await self._aembed([text], asyncio.Semaphore(1), self.query_params))[0]
