"""Surfacing a returned trace to LangChain: ``llm_output``, ``generation_info``, a custom event
and the caller's MLflow trace. The one place the chat models and ``AgentEndpoint`` call.

The protocol decoders already put ``trace``/``trace_id``/``databricks_request_id`` in
``response_metadata``; this module only reads those keys, so it holds no wire-format logic.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManager,
    AsyncCallbackManagerForChainRun,
    AsyncCallbackManagerForLLMRun,
    AsyncRunManager,
    BaseCallbackManager,
    CallbackManager,
    CallbackManagerForChainRun,
    CallbackManagerForLLMRun,
    adispatch_custom_event,
    dispatch_custom_event,
)
from langchain_core.messages import AIMessageChunk
from langchain_core.outputs import ChatGenerationChunk, ChatResult

from langchain_dbx_serving.protocols._common import trace_id_of
from langchain_dbx_serving.protocols._fast_chunks import generation_chunk
from langchain_dbx_serving.tracing._mlflow import merge_into_active_span

__all__ = ["TRACE_EVENT", "TraceSurfacer", "returned_trace"]

TRACE_EVENT = "databricks_trace"
"""Name of the custom callback event fired when a reply brings a trace (or a trace id)."""

_KEYS = ("trace", "trace_id", "databricks_request_id")

RunManager = (
    CallbackManagerForLLMRun
    | CallbackManagerForChainRun
    | AsyncCallbackManagerForLLMRun
    | AsyncCallbackManagerForChainRun
    | BaseCallbackManager
)
"""A call's run manager, or a callback manager whose ``parent_run_id`` is the call's run."""


def returned_trace(metadata: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """``{"trace_id", "trace"[, "databricks_request_id"]}`` from reply metadata, or ``None``
    when the reply carried neither a trace nor a trace id."""
    if not metadata:
        return None
    trace = metadata.get("trace")
    trace_id = metadata.get("trace_id") or trace_id_of(trace)
    if trace is None and not trace_id:
        return None
    found: dict[str, Any] = {"trace_id": trace_id, "trace": trace}
    if metadata.get("databricks_request_id"):
        found["databricks_request_id"] = metadata["databricks_request_id"]
    return found


class TraceSurfacer:
    """Surfaces the trace of one call, once, whichever of its chunks or results carries it.

    ``result``/``chunk``/``metadata`` (sync) and their ``a``-prefixed twins (async) merge the
    trace into the caller's active MLflow span (when ``merge``), then fire the
    ``databricks_trace`` custom event on the run, then hand back the result or chunk with the
    trace in ``llm_output`` / ``generation_info`` so ``on_llm_end`` handlers receive it.

    Example:
        .. code-block:: python

            surfacer = TraceSurfacer("my-agent", run_manager, merge=True)
            return surfacer.result(decode_reply(body))
    """

    def __init__(
        self,
        endpoint: str,
        run_manager: RunManager | None,
        *,
        merge: bool,
        span_run: RunManager | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.run_manager = run_manager
        self.merge = merge
        # The run whose autolog span represents the call (AgentEndpoint: its model run).
        self.span_run = span_run if span_run is not None else run_manager
        self.found: dict[str, Any] | None = None

    # -- shared -----------------------------------------------------------------------------
    def _take(self, metadata: Mapping[str, Any] | None) -> dict[str, Any] | None:
        """The event data, the first time a trace shows up; ``None`` otherwise."""
        if self.found is not None:
            return None
        found = returned_trace(metadata)
        if found is None:
            return None
        self.found = found
        if self.merge and found["trace"] is not None:
            merge_into_active_span(found["trace"], self.span_run)
        return {**found, "endpoint": self.endpoint}

    def _config(self) -> dict[str, Any] | None:
        """A config whose callback manager has this run as parent: ``dispatch_custom_event``
        reports the event on the parent run, i.e. on this call's run."""
        run = self.run_manager
        if run is None:
            return None
        if isinstance(run, BaseCallbackManager):  # already reports on the run (see _runs)
            return {"callbacks": run}
        manager_class = (
            AsyncCallbackManager if isinstance(run, AsyncRunManager) else CallbackManager
        )
        manager = manager_class(
            handlers=run.handlers,
            inheritable_handlers=run.inheritable_handlers,
            parent_run_id=run.run_id,
            tags=run.tags,
            inheritable_tags=run.inheritable_tags,
            metadata=run.metadata,
            inheritable_metadata=run.inheritable_metadata,
        )
        return {"callbacks": manager}

    @staticmethod
    def _with_trace(result: ChatResult, found: dict[str, Any] | None) -> ChatResult:
        if found is not None:
            llm_output = dict(result.llm_output or {})
            for key in _KEYS:
                if found.get(key) is not None:
                    llm_output.setdefault(key, found[key])
            result.llm_output = llm_output
        return result

    @staticmethod
    def _generation(chunk: AIMessageChunk, found: dict[str, Any] | None) -> ChatGenerationChunk:
        # A stream's LLMResult has no llm_output (LangChain builds it from the chunks):
        # generation_info of the chunk carrying the trace is what on_llm_end receives.
        if not found:  # every chunk but (at most) one
            return generation_chunk(chunk)
        info = {k: found[k] for k in _KEYS if found.get(k) is not None}
        return ChatGenerationChunk(message=chunk, generation_info=info or None)

    @staticmethod
    def _result_metadata(result: ChatResult) -> Mapping[str, Any] | None:
        if result.llm_output and returned_trace(result.llm_output):
            return result.llm_output
        return result.generations[0].message.response_metadata if result.generations else None

    # -- sync -------------------------------------------------------------------------------
    def _dispatch(self, data: dict[str, Any] | None) -> None:
        if data is not None and (config := self._config()) is not None:
            dispatch_custom_event(TRACE_EVENT, data, config=config)  # type: ignore[arg-type]

    def result(self, result: ChatResult) -> ChatResult:
        self._dispatch(data := self._take(self._result_metadata(result)))
        return self._with_trace(result, data)

    def chunk(self, chunk: AIMessageChunk) -> ChatGenerationChunk:
        if self.found is not None or not chunk.response_metadata:  # most chunks: no trace
            return generation_chunk(chunk)
        self._dispatch(data := self._take(chunk.response_metadata))
        return self._generation(chunk, data)

    def metadata(self, metadata: Mapping[str, Any] | None) -> None:
        self._dispatch(self._take(metadata))

    # -- async ------------------------------------------------------------------------------
    async def _adispatch(self, data: dict[str, Any] | None) -> None:
        if data is not None and (config := self._config()) is not None:
            await adispatch_custom_event(TRACE_EVENT, data, config=config)  # type: ignore[arg-type]

    async def aresult(self, result: ChatResult) -> ChatResult:
        await self._adispatch(data := self._take(self._result_metadata(result)))
        return self._with_trace(result, data)

    async def achunk(self, chunk: AIMessageChunk) -> ChatGenerationChunk:
        if self.found is not None or not chunk.response_metadata:  # most chunks: no trace
            return generation_chunk(chunk)
        await self._adispatch(data := self._take(chunk.response_metadata))
        return self._generation(chunk, data)

    async def ametadata(self, metadata: Mapping[str, Any] | None) -> None:
        await self._adispatch(self._take(metadata))
