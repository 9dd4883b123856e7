"""``as_responses_agent``: any LangChain runnable or compiled LangGraph graph as a ResponsesAgent.

The mapping (see the package docstring for the user-facing version):

request                         graph / runnable
==============================  =============================================================
``input`` items                 messages (``protocols._responses_input.decode_input``) under
                                ``messages_key``; a plain runnable gets the message list
``custom_inputs``               ``config["configurable"]["custom_inputs"]``, and the state key
                                ``custom_inputs_key`` when the graph has that channel
``context.conversation_id``     ``config["configurable"]["thread_id"]`` (and
                                ``conversation_id``); ``context.user_id`` -> ``user_id``
history the checkpointer holds  not appended twice: with a checkpointed thread that already
                                has messages, only the input after the last AI / tool item
                                is sent to the graph
==============================  =============================================================

output: the AI and tool messages the run added (text, reasoning, the graph's tool calls and
results as ``function_call`` / ``function_call_output``), ``custom_outputs`` from the final
state's ``custom_outputs_key``, usage of every model call of the run (see ``TurnStream.usage``).
``predict`` is the stream collected, so a turn gives the same items either way.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any

from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, ToolMessage
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.runnables.config import merge_configs

from langchain_dbx_serving.protocols._responses_input import decode_input
from langchain_dbx_serving.serving._turn import TurnStream


def _is_graph(runnable: Any) -> bool:
    # A compiled LangGraph graph (Pregel) without importing langgraph.
    return hasattr(runnable, "channels") and hasattr(runnable, "get_state")


def _tool_nodes(graph: Any) -> frozenset[str]:
    """Names of the graph's tool nodes (LangGraph's ``ToolNode``, as ``create_agent`` uses)."""
    nodes = getattr(graph, "nodes", None) or {}
    return frozenset(
        name
        for name, node in nodes.items()
        if any(cls.__name__ == "ToolNode" for cls in type(getattr(node, "bound", None)).__mro__)
    )


def _has_checkpointer(runnable: Any) -> bool:
    # ``checkpointer=True`` (a subgraph using its parent's) is not one this run can look up.
    saver = getattr(runnable, "checkpointer", None)
    return _is_graph(runnable) and saver is not None and not isinstance(saver, bool)


class GraphRunner:
    """Runs one responses request through a runnable or graph, yielding responses events.

    The MLflow-free core of the adapter: ``events(request)`` takes the request as a dict
    (``ResponsesAgentRequest.model_dump()``) and yields event dicts, ending with
    ``response.completed`` (usage, ``custom_outputs``). An exception from the graph propagates
    after the events already yielded.
    """

    def __init__(
        self,
        runnable: Runnable[Any, Any],
        *,
        messages_key: str = "messages",
        custom_inputs_key: str = "custom_inputs",
        custom_outputs_key: str = "custom_outputs",
        config: RunnableConfig | None = None,
        trace: bool = True,
    ) -> None:
        self.runnable = runnable
        self.messages_key = messages_key
        self.custom_inputs_key = custom_inputs_key
        self.custom_outputs_key = custom_outputs_key
        self.config = config
        self.trace = trace

    # -- request -> config and input --------------------------------------------------------
    def run_config(self, request: Mapping[str, Any]) -> RunnableConfig:
        context = request.get("context") or {}
        configurable: dict[str, Any] = {}
        if request.get("custom_inputs") is not None:
            configurable["custom_inputs"] = dict(request["custom_inputs"])
        if context.get("conversation_id"):
            configurable["thread_id"] = context["conversation_id"]
            configurable["conversation_id"] = context["conversation_id"]
        if context.get("user_id"):
            configurable["user_id"] = context["user_id"]
        config: RunnableConfig = {"configurable": configurable}
        callbacks = _mlflow_callbacks() if self.trace else []
        if callbacks:
            config["callbacks"] = callbacks
        merged = merge_configs(self.config, config)
        if _has_checkpointer(self.runnable) and not merged["configurable"].get("thread_id"):
            # No conversation to continue: a thread of its own, as a stateless agent would.
            merged["configurable"]["thread_id"] = f"turn-{uuid.uuid4().hex}"
        return merged

    def _checkpointed_thread(self, config: RunnableConfig) -> bool:
        """Is there a checkpointer and a thread id to look the thread up with?"""
        if not _has_checkpointer(self.runnable):
            return False
        return bool((config.get("configurable") or {}).get("thread_id"))

    def _holds_messages(self, snapshot: Any) -> bool:
        values = snapshot.values if isinstance(snapshot.values, Mapping) else {}
        return bool(values.get(self.messages_key))

    def run_input(self, request: Mapping[str, Any], held: bool) -> Any:
        """The graph's input; ``held``: the thread already holds the conversation so far."""
        messages = decode_input(request.get("input") or [])
        if held:
            messages = _after_last_agent_message(messages)
        if not _is_graph(self.runnable):
            return messages
        state: dict[str, Any] = {self.messages_key: messages}
        channels = self.runnable.channels  # type: ignore[attr-defined]
        if request.get("custom_inputs") is not None and self.custom_inputs_key in channels:
            state[self.custom_inputs_key] = dict(request["custom_inputs"])
        return state

    # -- run ----------------------------------------------------------------------------------
    def _stream_kwargs(self) -> dict[str, Any]:
        return {"stream_mode": ["messages", "values"]} if _is_graph(self.runnable) else {}

    def events(self, request: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        config = self.run_config(request)
        held = self._checkpointed_thread(config) and self._holds_messages(
            self.runnable.get_state(config)  # type: ignore[attr-defined]
        )
        run = _Run(self, TurnStream())
        config = run.counting(config)
        for piece in self.runnable.stream(
            self.run_input(request, held), config, **self._stream_kwargs()
        ):
            yield from run.feed(piece)
        yield from run.finish()

    async def aevents(self, request: Mapping[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """``events`` with the runnable's async API (for async servers and checkpointers)."""
        config = self.run_config(request)
        held = self._checkpointed_thread(config) and self._holds_messages(
            await self.runnable.aget_state(config)  # type: ignore[attr-defined]
        )
        run = _Run(self, TurnStream())
        config = run.counting(config)
        async for piece in self.runnable.astream(
            self.run_input(request, held), config, **self._stream_kwargs()
        ):
            for event in run.feed(piece):
                yield event
        for event in run.finish():
            yield event


class _Run:
    """One run's stream turned into events: shared by the sync and async paths."""

    def __init__(self, runner: GraphRunner, turn: TurnStream) -> None:
        self.runner = runner
        self.turn = turn
        self.graph = _is_graph(runner.runnable)
        self.tool_nodes = _tool_nodes(runner.runnable) if self.graph else frozenset()
        self.final: Any = None  # a graph's last state, or a runnable's output added up
        self.message: AIMessageChunk | None = None  # a runnable's streamed message so far

    def counting(self, config: RunnableConfig) -> RunnableConfig:
        """The config plus a handler counting every model call of the run (tools' too)."""
        return merge_configs(config, {"callbacks": [self.turn.usage_counter]})

    def feed(self, piece: Any) -> list[dict[str, Any]]:
        if self.graph:
            mode, payload = piece
            if mode == "messages":
                message, metadata = payload
                if metadata.get("langgraph_node") in self.tool_nodes:
                    return []  # a model called inside a tool: its reply is not the agent's
                return self.turn.chunk(message) if isinstance(message, AIMessageChunk) else []
            if not isinstance(payload, Mapping):
                return []
            self.final = payload
            return self.turn.state(list(payload.get(self.runner.messages_key) or []))
        if isinstance(piece, str):  # a chain ending in a string parser streams text
            piece = AIMessageChunk(content=piece)
        if not isinstance(piece, AIMessageChunk):
            self.final = _add(self.final, piece)
            return []
        # One id for the whole message, so that every delta names the same item.
        message_id = (self.message and self.message.id) or piece.id or f"msg_{uuid.uuid4().hex}"
        piece = piece.model_copy(update={"id": message_id})
        self.message = piece if self.message is None else self.message + piece
        return self.turn.chunk(piece)

    def finish(self) -> list[dict[str, Any]]:
        key, custom_key = self.runner.messages_key, self.runner.custom_outputs_key
        events: list[dict[str, Any]] = []
        custom: Any = None
        if self.graph:
            custom = self.final.get(custom_key) if isinstance(self.final, Mapping) else None
        elif self.message is not None:
            events = self.turn.output([_whole(self.message)])
        else:
            messages, custom = _output_of(self.final, key, custom_key)
            events = self.turn.output(messages)
        custom = dict(custom) if isinstance(custom, Mapping) else None
        return [*events, self.turn.completed(custom)]


def _add(total: Any, piece: Any) -> Any:
    """Stream chunks of a runnable's output added up (the last one when they do not add)."""
    if total is None:
        return piece
    try:
        return total + piece
    except TypeError:
        return piece


def _whole(chunk: AIMessageChunk) -> AIMessage:
    return AIMessage(
        content=chunk.content,
        tool_calls=chunk.tool_calls,
        invalid_tool_calls=chunk.invalid_tool_calls,
        usage_metadata=chunk.usage_metadata,
        response_metadata=chunk.response_metadata,
        id=chunk.id,
    )


def _output_of(
    value: Any, messages_key: str, custom_outputs_key: str
) -> tuple[list[BaseMessage], dict[str, Any] | None]:
    """Messages and custom outputs of a runnable's whole output (message, str, list, dict)."""
    if isinstance(value, BaseMessage):
        return [value], None
    if isinstance(value, str):
        return [AIMessage(value)], None
    if isinstance(value, Mapping):
        messages, _ = _output_of(value.get(messages_key) or [], messages_key, custom_outputs_key)
        custom = value.get(custom_outputs_key)
        return messages, dict(custom) if isinstance(custom, Mapping) else None
    if isinstance(value, Sequence):
        return [m for m in value if isinstance(m, BaseMessage)], None
    raise TypeError(
        f"cannot serve a runnable that returns {type(value).__name__}: return an AIMessage, "
        f"a string, a list of messages or a dict with '{messages_key}'"
    )


def _after_last_agent_message(messages: list[BaseMessage]) -> list[BaseMessage]:
    """The input a client added after the history (the part a checkpointer does not hold)."""
    for index in range(len(messages) - 1, -1, -1):
        if isinstance(messages[index], (AIMessage, ToolMessage)):
            return messages[index + 1 :]
    return messages


def _mlflow_callbacks() -> list[Any]:
    """MLflow's LangChain tracer when mlflow is imported and tracing is on; else nothing."""
    import sys

    if "mlflow" not in sys.modules:
        return []
    try:
        from mlflow.langchain.langchain_tracer import MlflowLangchainTracer
        from mlflow.utils.autologging_utils import autologging_is_disabled
    except ImportError:  # pragma: no cover - an mlflow without the LangChain flavor
        return []
    if not autologging_is_disabled("langchain"):
        return []  # mlflow.langchain.autolog() already traces every run: not twice
    return [MlflowLangchainTracer()]
