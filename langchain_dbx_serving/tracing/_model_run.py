"""The chat-model run of an ``AgentEndpoint`` call, so model-level handlers see agent calls.

``AgentEndpoint`` is a chain (its output is an ``AgentResponse``, not a message), yet each call
is one model call of an agent endpoint. Handlers that account for model calls listen to
``on_chat_model_start`` / ``on_llm_end`` only: ``get_usage_metadata_callback()`` counts
``usage_metadata`` there, LangSmith and mlflow's LangChain autolog make their LLM spans there,
LangGraph's ``stream_mode="messages"`` streams ``on_llm_new_token``. So every call also runs as
a child chat-model run named after the endpoint, under the ``AgentEndpoint``'s chain run:

- start: ``on_chat_model_start`` with the input messages;
- stream: ``on_llm_new_token`` for each text delta;
- end: ``on_llm_end`` with the reply as an ``AIMessage`` (usage, ``model_name``, trace) and
  ``llm_output`` holding ``trace``/``trace_id``/``databricks_request_id`` like the chat classes;
- failure: ``on_llm_error``, then the error goes on.

The ``databricks_trace`` custom event stays on the ``AgentEndpoint``'s own run.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any

from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, convert_to_messages
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, LLMResult

from langchain_dbx_serving.tracing._surface import returned_trace

__all__ = ["AgentModelRun", "agent_model_run", "async_agent_model_run", "messages_of"]

_LLM_TYPE = "databricks-agent-endpoint"


class AgentModelRun:
    """One ``AgentEndpoint`` call as a chat-model run (see the module docstring).

    Example:
        .. code-block:: python

            with agent_model_run(run_manager, "support-agent", value) as run:
                response = call_endpoint(..., run_manager=run.run)
                run.end(response.message)
    """

    def __init__(self, chain_run: Any, endpoint: str, messages: Sequence[BaseMessage]) -> None:
        self.chain_run = chain_run
        self.endpoint = endpoint
        self.messages = list(messages)
        self.run: Any = None

    def _start_args(self) -> tuple[dict[str, Any], list[list[BaseMessage]], dict[str, Any]]:
        serialized = {"name": self.endpoint, "id": ["langchain_dbx_serving", "AgentEndpoint"]}
        params = {"endpoint": self.endpoint, "_type": _LLM_TYPE}
        extra = {"invocation_params": params, "name": self.endpoint}
        return serialized, [self.messages], extra

    def _result(self, message: AIMessage | None) -> LLMResult:
        message = message if message is not None else AIMessage("")
        metadata = dict(message.response_metadata)
        metadata.setdefault("model_name", self.endpoint)
        message = message.model_copy(update={"response_metadata": metadata})
        llm_output: dict[str, Any] = {"model_name": metadata["model_name"]}
        found = returned_trace(metadata) or {}
        llm_output.update({k: v for k, v in found.items() if v is not None})
        return LLMResult(generations=[[ChatGeneration(message=message)]], llm_output=llm_output)

    @staticmethod
    def _token(delta: str) -> tuple[str, ChatGenerationChunk]:
        return delta, ChatGenerationChunk(message=AIMessageChunk(content=delta))

    # -- sync -------------------------------------------------------------------------------------
    def start(self) -> Any:
        """Start the run; returns its run manager (``None`` without a chain run)."""
        get_child = getattr(self.chain_run, "get_child", None)
        if get_child is None:
            return None
        serialized, messages, extra = self._start_args()
        self.run = get_child().on_chat_model_start(serialized, messages, **extra)[0]
        return self.run

    def token(self, delta: str) -> None:
        if self.run is not None and delta:
            text, chunk = self._token(delta)
            self.run.on_llm_new_token(text, chunk=chunk)

    def end(self, message: AIMessage | None) -> None:
        if self.run is not None:
            self.run.on_llm_end(self._result(message))

    def error(self, exc: BaseException) -> None:
        if self.run is not None:
            self.run.on_llm_error(exc)

    # -- async ------------------------------------------------------------------------------------
    async def astart(self) -> Any:
        get_child = getattr(self.chain_run, "get_child", None)
        if get_child is None:
            return None
        serialized, messages, extra = self._start_args()
        self.run = (await get_child().on_chat_model_start(serialized, messages, **extra))[0]
        return self.run

    async def atoken(self, delta: str) -> None:
        if self.run is not None and delta:
            text, chunk = self._token(delta)
            await self.run.on_llm_new_token(text, chunk=chunk)

    async def aend(self, message: AIMessage | None) -> None:
        if self.run is not None:
            await self.run.on_llm_end(self._result(message))

    async def aerror(self, exc: BaseException) -> None:
        if self.run is not None:
            await self.run.on_llm_error(exc)


def messages_of(value: Any) -> list[BaseMessage]:
    """The messages an ``AgentEndpoint`` input holds, for ``on_chat_model_start``."""
    try:
        if isinstance(value, str):
            return convert_to_messages([value])
        if isinstance(value, Mapping):
            raw = value.get("messages", value.get("input"))
            if isinstance(raw, str):
                return convert_to_messages([raw])
            value = raw
        if isinstance(value, Sequence):
            return convert_to_messages(list(value))
    except (ValueError, TypeError, NotImplementedError):
        pass  # raw responses items (function_call_output, ...): not LangChain messages
    return []


@contextlib.contextmanager
def agent_model_run(chain_run: Any, endpoint: str, value: Any) -> Iterator[AgentModelRun]:
    """Start the model run of one call; a failure inside ends it with ``on_llm_error``."""
    run = AgentModelRun(chain_run, endpoint, messages_of(value))
    run.start()
    try:
        yield run
    except BaseException as exc:
        run.error(exc)
        raise


@contextlib.asynccontextmanager
async def async_agent_model_run(
    chain_run: Any, endpoint: str, value: Any
) -> AsyncIterator[AgentModelRun]:
    """The async twin of :func:`agent_model_run`."""
    run = AgentModelRun(chain_run, endpoint, messages_of(value))
    await run.astart()
    try:
        yield run
    except BaseException as exc:
        await run.aerror(exc)
        raise
