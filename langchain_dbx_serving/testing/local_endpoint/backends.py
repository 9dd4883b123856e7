"""Backends of the local endpoint: what answers a request once it has been decoded.

A backend is any object with ``respond(request: BackendRequest) -> BackendResult``. It gets
the request already decoded (LangChain messages, tools in chat-completions format, the raw
body) and answers with a neutral reply that the endpoint encodes into the wire shape of the
request:

- a :class:`~langchain_dbx_serving.testing.replies.Reply` (streamed by splitting it into
  pieces when the request asked for a stream),
- an :class:`~langchain_dbx_serving.testing.replies.ErrorReply` (an HTTP error),
- a :class:`~langchain_dbx_serving.testing.replies.RawReply` (a wire body or events relayed
  verbatim), or
- a live stream: an iterable of :class:`~langchain_dbx_serving.testing.replies.Delta` pieces,
  in which a ``Reply`` adds its pieces and its metadata (usage, finish reason, custom outputs).

Backends here: :class:`ScriptedBackend` (a queue of replies), :class:`EchoBackend`,
:class:`ChatModelBackend` (any LangChain ``BaseChatModel``), :class:`ResponsesAgentBackend`
(an MLflow ``ResponsesAgent``) and :class:`FunctionBackend` (a plain function).

Embedding backends also have ``embed(texts) -> list[vector]``, used for embedding requests
(``/serving-endpoints/embeddings``, or ``{"input": [...texts]}`` on invocations):
:class:`HashEmbeddingBackend` (deterministic) and :class:`EmbeddingsBackend` (any LangChain
``Embeddings``).

Example::

    backend = ScriptedBackend([Reply.text("hi", usage=(3, 1)), Reply.tool_call("get_time")])
    with LocalEndpoint({"chat": backend, "agent": EchoBackend()}) as ep:
        ...
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from langchain_dbx_serving.testing.local_endpoint.replies import (
    Delta,
    ErrorReply,
    RawReply,
    Reply,
    ToolCall,
    ToolCallDelta,
    Usage,
    reply_from_dict,
)

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings
    from langchain_core.language_models import BaseChatModel
    from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage

__all__ = [
    "Backend",
    "BackendRequest",
    "BackendResult",
    "ChatModelBackend",
    "EchoBackend",
    "EmbeddingBackend",
    "EmbeddingsBackend",
    "FunctionBackend",
    "HashEmbeddingBackend",
    "ResponsesAgentBackend",
    "ScriptedBackend",
    "as_backend",
]

BackendResult = Reply | ErrorReply | RawReply | Iterable[Delta | Reply]


@dataclass(frozen=True)
class BackendRequest:
    """A request as a backend sees it.

    ``shape`` is ``"chat_completions"``, ``"responses"`` or ``"chat_agent"``; ``messages`` are
    the body's messages (or responses input items) decoded into LangChain messages; ``tools``
    are in chat-completions format whatever format the body used; ``headers`` have the
    authorization redacted.

    Example::

        def respond(request: BackendRequest) -> Reply:
            return Reply.text(request.messages[-1].text.upper())
    """

    endpoint: str
    shape: str
    messages: list[BaseMessage]
    body: Mapping[str, Any]
    stream: bool = False
    custom_inputs: Mapping[str, Any] | None = None
    context: Mapping[str, Any] | None = None
    tools: list[dict[str, Any]] = field(default_factory=list)
    headers: Mapping[str, str] = field(default_factory=dict)
    path: str = ""


@runtime_checkable
class Backend(Protocol):
    """Anything with ``respond(request) -> BackendResult`` can answer requests.

    Example::

        class Upper:
            def respond(self, request: BackendRequest) -> Reply:
                return Reply.text(request.messages[-1].text.upper())
    """

    def respond(self, request: BackendRequest) -> BackendResult: ...


ReplyLike = Reply | ErrorReply | RawReply | str | Callable[[BackendRequest], Any]


class ScriptedBackend:
    """Answers each request with the next reply of a queue.

    Entries are :class:`Reply`/:class:`ErrorReply`/:class:`RawReply` objects, strings (text
    replies) or functions of the :class:`BackendRequest`. When the queue is empty the request
    gets a 500 whose message says so.

    Example::

        backend = ScriptedBackend([Reply.text("first"), Reply.error(429, "REQUEST_LIMIT_EXCEEDED",
                                                                    "slow down", retry_after=1)])
        backend.add(Reply.text("third"))
        assert backend.remaining == 3
    """

    def __init__(self, replies: Iterable[ReplyLike] = ()) -> None:
        self._queue: deque[ReplyLike] = deque(replies)
        self._lock = threading.Lock()
        self.consumed = 0

    def add(self, *replies: ReplyLike) -> ScriptedBackend:
        """Append replies to the queue; returns the backend."""
        with self._lock:
            self._queue.extend(replies)
        return self

    def clear(self) -> None:
        """Drop the replies left in the queue."""
        with self._lock:
            self._queue.clear()

    @property
    def remaining(self) -> int:
        """How many scripted replies are left."""
        return len(self._queue)

    @classmethod
    def from_file(cls, path: str | Path) -> ScriptedBackend:
        """Load a JSON list of replies (see ``replies.reply_from_dict``)."""
        specs = json.loads(Path(path).read_text())
        if not isinstance(specs, list):
            raise ValueError(f"{path}: expected a JSON list of replies, got {type(specs).__name__}")
        return cls(reply_from_dict(spec) for spec in specs)

    def respond(self, request: BackendRequest) -> BackendResult:
        with self._lock:
            if not self._queue:
                return ErrorReply(
                    500,
                    "INTERNAL_ERROR",
                    f"LocalEndpoint: no scripted reply left for endpoint '{request.endpoint}' "
                    f"({self.consumed} scripted replies were used). Add one per request with "
                    "ScriptedBackend.add(Reply.text(...)).",
                )
            item = self._queue.popleft()
            self.consumed += 1
        if callable(item):
            item = item(request)
        return Reply.text(item) if isinstance(item, str) else item


class FunctionBackend:
    """Wraps a function ``request -> BackendResult`` (or a string) as a backend.

    Example::

        FunctionBackend(lambda request: Reply.text(f"{len(request.messages)} messages"))
    """

    def __init__(self, function: Callable[[BackendRequest], Any]) -> None:
        self.function = function

    def respond(self, request: BackendRequest) -> BackendResult:
        result = self.function(request)
        return Reply.text(result) if isinstance(result, str) else result


def _last_user_text(messages: Sequence[BaseMessage]) -> str:
    for message in reversed(messages):
        if message.type == "human":
            return message.text
    return ""


class EchoBackend:
    """Answers with the last user message's text; echoes ``custom_inputs`` as ``custom_outputs``.

    Usage counts words: input = words in all messages, output = words in the answer.

    Example::

        with LocalEndpoint(EchoBackend()) as ep:  # the default backend
            ...
    """

    def respond(self, request: BackendRequest) -> BackendResult:
        text = _last_user_text(request.messages)
        words_in = sum(len(m.text.split()) for m in request.messages)
        return Reply.text(
            text,
            usage=(words_in, len(text.split())),
            custom_outputs=dict(request.custom_inputs) if request.custom_inputs else None,
        )


def reply_from_message(message: AIMessage) -> Reply:
    """A LangChain ``AIMessage`` (text, reasoning, tool calls, usage) as a :class:`Reply`."""
    texts, reasoning = [], []
    for block in message.content_blocks:
        if block["type"] == "text":
            texts.append(block["text"])
        elif block["type"] == "reasoning":
            reasoning.append(block.get("reasoning", ""))
    usage = message.usage_metadata
    return Reply.text(
        "".join(texts),
        reasoning="".join(reasoning) or None,
        tool_calls=[ToolCall(c["name"], c["args"], c.get("id")) for c in message.tool_calls],
        usage=Usage(usage["input_tokens"], usage["output_tokens"], usage["total_tokens"])
        if usage
        else None,
        finish_reason=message.response_metadata.get("finish_reason"),
    )


def chunk_deltas(chunk: AIMessageChunk) -> Iterator[Delta]:
    """A LangChain stream chunk as stream pieces (text, reasoning, tool-call fragments)."""
    for block in chunk.content_blocks:
        if block["type"] == "text" and block["text"]:
            yield Delta(text=block["text"])
        elif block["type"] == "reasoning" and block.get("reasoning"):
            yield Delta(reasoning=block["reasoning"])
    for position, piece in enumerate(chunk.tool_call_chunks):
        index = piece.get("index")
        yield Delta(
            tool_call=ToolCallDelta(
                position if index is None else index,
                piece.get("id"),
                piece.get("name"),
                piece.get("args") or "",
            )
        )


class ChatModelBackend:
    """Answers with a LangChain chat model (e.g. ``GenericFakeChatModel``).

    The request's messages are invoked (or streamed, with the model's own chunks mapped to
    stream pieces); the request's tools are bound with ``bind_tools`` when the model supports
    it (fake models do not: they are invoked as they are).

    Example::

        from langchain_core.language_models import GenericFakeChatModel
        model = GenericFakeChatModel(messages=iter(["Hello there"]))
        with LocalEndpoint(ChatModelBackend(model)) as ep:
            ...
    """

    def __init__(self, model: BaseChatModel, *, bind_tools: bool = True) -> None:
        self.model = model
        self.bind_tools = bind_tools

    def _runnable(self, tools: list[dict[str, Any]]) -> Any:
        if not (tools and self.bind_tools):
            return self.model
        try:
            return self.model.bind_tools(tools)
        except NotImplementedError:
            return self.model

    def respond(self, request: BackendRequest) -> BackendResult:
        runnable = self._runnable(request.tools)
        if request.stream:
            return self._stream(runnable, request.messages)
        return reply_from_message(runnable.invoke(request.messages))

    @staticmethod
    def _stream(runnable: Any, messages: list[BaseMessage]) -> Iterator[Delta | Reply]:
        usage: Usage | None = None
        finish: str | None = None
        for chunk in runnable.stream(messages):
            yield from chunk_deltas(chunk)
            if chunk.usage_metadata:
                part = Usage(
                    chunk.usage_metadata["input_tokens"], chunk.usage_metadata["output_tokens"]
                )
                usage = part if usage is None else usage + part
            finish = chunk.response_metadata.get("finish_reason") or finish
        yield Reply(usage=usage, finish_reason=finish)


def _dump(obj: Any) -> dict[str, Any]:
    if hasattr(obj, "model_dump"):
        return obj.model_dump(exclude_none=True)
    return dict(obj)


class ResponsesAgentBackend:
    """Answers with an MLflow ``ResponsesAgent`` object, relaying its output verbatim.

    ``predict`` (or ``predict_stream`` for stream requests) gets a ``ResponsesAgentRequest``
    built from the body; mlflow is imported only when a request arrives.

    Example::

        class Hello(ResponsesAgent):
            def predict(self, request):
                return ResponsesAgentResponse(output=[self.create_text_output_item("hi", "m1")])

        with LocalEndpoint(ResponsesAgentBackend(Hello())) as ep:
            ...
    """

    def __init__(self, agent: Any) -> None:
        self.agent = agent

    def respond(self, request: BackendRequest) -> BackendResult:
        if request.shape != "responses":
            return ErrorReply(
                400,
                "INVALID_PARAMETER_VALUE",
                f"Endpoint '{request.endpoint}' serves a ResponsesAgent: send 'input' items "
                "(responses format), not 'messages'.",
            )
        from mlflow.types.responses import ResponsesAgentRequest
        from pydantic import ValidationError

        skip = {"stream", "databricks_options", "model"}
        payload = {k: v for k, v in request.body.items() if k not in skip}
        if isinstance(payload.get("input"), str):
            payload["input"] = [{"role": "user", "content": payload["input"]}]
        try:
            agent_request = ResponsesAgentRequest(**payload)
        except ValidationError as exc:
            return ErrorReply(
                400, "INVALID_PARAMETER_VALUE", f"Invalid ResponsesAgent input: {exc}"
            )
        if request.stream:
            events = self.agent.predict_stream(agent_request)
            return RawReply(events=(_dump(event) for event in events))
        return RawReply(body=_dump(self.agent.predict(agent_request)))


@runtime_checkable
class EmbeddingBackend(Protocol):
    """A backend that can answer embedding requests: ``embed(texts) -> one vector per text``."""

    def embed(self, texts: list[str]) -> list[list[float]]: ...


def _not_a_chat_model(request: BackendRequest) -> ErrorReply:
    return ErrorReply(
        400,
        "INVALID_PARAMETER_VALUE",
        f"Endpoint '{request.endpoint}' serves embeddings: send {{\"input\": [texts]}}, "
        "not chat messages.",
    )


_WORD = re.compile(r"\w+")
_STOPWORD_LIST = (
    "a an and are as at be by do does for from how i in is it of on or the this to was what "
    "when where which who why with you"
)
_STOPWORDS = frozenset(_STOPWORD_LIST.split())


class HashEmbeddingBackend:
    """Deterministic embeddings: a hashed bag of words, L2-normalized.

    Each lowercase word (common stop words aside) adds +1 or -1 to one of ``dimensions``
    buckets chosen by its BLAKE2 hash, so texts sharing words get similar vectors, and the
    same text gets the same vector in every run and process.

    Example::

        backend = HashEmbeddingBackend(dimensions=16)
        [a, b] = backend.embed(["delta lake tables", "tables in delta lake"])
        assert a == b
    """

    def __init__(self, dimensions: int = 16) -> None:
        if dimensions < 1:
            raise ValueError("dimensions must be at least 1")
        self.dimensions = dimensions

    def _vector(self, text: str) -> list[float]:
        words = [w for w in _WORD.findall(text.lower()) if w not in _STOPWORDS] or [""]
        vector = [0.0] * self.dimensions
        for word in words:
            digest = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "big")
            vector[(digest >> 1) % self.dimensions] += 1.0 if digest & 1 else -1.0
        norm = math.sqrt(sum(x * x for x in vector)) or 1.0
        return [x / norm for x in vector]

    def embed(self, texts: list[str]) -> list[list[float]]:
        return [self._vector(text) for text in texts]

    def respond(self, request: BackendRequest) -> BackendResult:
        return _not_a_chat_model(request)


class EmbeddingsBackend:
    """Answers embedding requests with a LangChain ``Embeddings`` (``embed_documents``).

    Example::

        from langchain_core.embeddings import DeterministicFakeEmbedding
        with LocalEndpoint({"embed": DeterministicFakeEmbedding(size=8)}) as ep:
            ...
    """

    def __init__(self, embeddings: Embeddings) -> None:
        self.embeddings = embeddings

    def embed(self, texts: list[str]) -> list[list[float]]:
        return [list(v) for v in self.embeddings.embed_documents(texts)]

    def respond(self, request: BackendRequest) -> BackendResult:
        return _not_a_chat_model(request)


def _is_embeddings(obj: Any) -> bool:
    from langchain_core.embeddings import Embeddings

    return isinstance(obj, Embeddings)


def _is_chat_model(obj: Any) -> bool:
    from langchain_core.language_models import BaseChatModel

    return isinstance(obj, BaseChatModel)


def _is_runnable(obj: Any) -> bool:
    from langchain_core.runnables import Runnable

    return isinstance(obj, Runnable)


def _is_responses_agent(obj: Any) -> bool:
    # mlflow is imported by whoever built the agent: never import it here.
    module = sys.modules.get("mlflow.pyfunc.model")
    return module is not None and isinstance(obj, module.ResponsesAgent)


def as_backend(obj: Any) -> Backend:
    """Turn what a user passes to ``LocalEndpoint`` into a backend.

    Accepts a backend, ``"echo"``, a path to a ``.json`` script, a LangChain chat model or
    ``Embeddings``, an MLflow ``ResponsesAgent``, any other runnable or compiled LangGraph graph
    (served through :func:`~langchain_dbx_serving.serving.as_responses_agent`, which needs the
    ``agents`` extra), a reply or list of replies (scripted), or a function.

    Example::

        as_backend([Reply.text("hi")])  # ScriptedBackend
    """
    if obj is None or obj == "echo":
        return EchoBackend()
    if isinstance(obj, (str, Path)):
        return ScriptedBackend.from_file(obj)
    if isinstance(obj, (Reply, ErrorReply, RawReply)):
        return ScriptedBackend([obj])
    if isinstance(obj, (list, tuple)):
        return ScriptedBackend(obj)
    if _is_responses_agent(obj):
        return ResponsesAgentBackend(obj)
    if isinstance(obj, Backend):
        return obj
    if _is_chat_model(obj):
        return ChatModelBackend(obj)
    if _is_embeddings(obj):
        return EmbeddingsBackend(obj)
    if _is_runnable(obj):
        # A LangGraph graph or chain: served as Databricks serves it, as a ResponsesAgent.
        from langchain_dbx_serving.serving import as_responses_agent

        return ResponsesAgentBackend(as_responses_agent(obj))
    if callable(obj):
        return FunctionBackend(obj)
    raise TypeError(f"cannot serve {type(obj).__name__!r}: pass a Backend, a chat model or replies")
