"""Serve any LangChain runnable or LangGraph graph as a Databricks responses agent.

:func:`as_responses_agent` returns an MLflow ``ResponsesAgent`` (``pip install
"langchain-dbx-serving[agents]"``; mlflow is imported when it is called, never by ``import
langchain_dbx_serving``). Log it as a model for Model Serving, register it with MLflow's
``AgentServer`` for a Databricks App, or hand it to ``LocalEndpoint`` to develop on a laptop.

How a request reaches the graph:

- ``input`` items become LangChain messages, the inverse of what ``ChatDatabricksResponses``
  sends: user/system messages, the assistant's earlier turns as ``AIMessage`` (reasoning and
  text blocks keep their item ids, ``function_call`` items are ``tool_calls``) and
  ``function_call_output`` items as ``ToolMessage``. A graph gets ``{messages_key: [...]}``; a
  plain runnable (a chat model, a chain) gets the list.
- ``custom_inputs`` go to ``config["configurable"]["custom_inputs"]`` and, when the graph's state
  has a ``custom_inputs_key`` channel, into the state.
- ``context.conversation_id`` is ``config["configurable"]["thread_id"]`` (the checkpointer's
  thread) and ``conversation_id``; ``context.user_id`` is ``user_id``. Chat UIs re-send the
  whole conversation each turn: when the graph's checkpointer already holds messages for the
  thread, only the input after the last assistant or tool item is appended. A checkpointed
  graph called without a ``conversation_id`` runs on a new thread of its own.

What comes back:

- every AI and tool message the run added, as output items: text (``message``), reasoning
  (``reasoning``), the graph's own tool calls and results (``function_call`` /
  ``function_call_output``), in the order the graph produced them;
- ``custom_outputs``: the final state's ``custom_outputs_key`` (a dict), or the
  ``custom_outputs_key`` of a dict returned by a plain runnable;
- ``usage``: the sum of ``usage_metadata`` of the new AI messages.

``predict_stream`` runs the graph with LangGraph's ``messages`` and ``values`` stream modes:
``response.output_text.delta`` and ``response.function_call_arguments.delta`` (after a
``response.output_item.added`` naming the call) as the chat models stream, one
``response.output_item.done`` per item once the graph's state holds the finished message, and
``response.completed`` with usage and ``custom_outputs``. ``predict`` is that stream collected.
Tokens of a chat model called inside a tool (a ``ToolNode``) are not the agent's answer and are
not streamed; a model called inside any other node streams as LangGraph's ``messages`` mode
reports it (tag it ``"nostream"`` when its reply is not part of the answer).
``apredict`` / ``apredict_stream`` do the same on the graph's async API: use them in an
``AgentServer`` app (it calls sync handlers on its event loop, one request at a time).
With MLflow tracing on, the run is traced with MLflow's LangChain tracer (``trace=False`` to
turn it off), so spans nest under the serving span and callers asking for the trace get them.

Example:
    .. code-block:: python

        from mlflow.genai.agent_server import AgentServer, invoke, stream
        from langchain_dbx_serving.serving import as_responses_agent

        agent = as_responses_agent(graph)  # a compiled LangGraph graph
        server = AgentServer("ResponsesAgent")

        @invoke()
        async def handle(request):
            return await agent.apredict(request)

        @stream()
        async def handle_stream(request):
            async for event in agent.apredict_stream(request):
                yield event

        # or, on a laptop: LocalEndpoint({"my-agent": agent})
"""

from __future__ import annotations

import functools
from typing import Any

from langchain_core.runnables import Runnable, RunnableConfig

from langchain_dbx_serving.serving._adapter import GraphRunner

__all__ = ["GraphRunner", "as_responses_agent"]


def as_responses_agent(
    runnable: Runnable[Any, Any],
    *,
    messages_key: str = "messages",
    custom_inputs_key: str = "custom_inputs",
    custom_outputs_key: str = "custom_outputs",
    config: RunnableConfig | None = None,
    trace: bool = True,
) -> Any:
    """An MLflow ``ResponsesAgent`` serving ``runnable`` (a runnable or compiled graph).

    ``config`` is merged into every run's config (e.g. ``recursion_limit``). The returned
    agent has ``predict``, ``predict_stream``, their async ``apredict`` / ``apredict_stream``,
    and ``runner`` (the :class:`GraphRunner`).

    Example:
        .. code-block:: python

            agent = as_responses_agent(graph)
            reply = agent.predict({"input": [{"role": "user", "content": "hi"}]})
            reply.output[-1]["content"][0]["text"]
    """
    runner = GraphRunner(
        runnable,
        messages_key=messages_key,
        custom_inputs_key=custom_inputs_key,
        custom_outputs_key=custom_outputs_key,
        config=config,
        trace=trace,
    )
    return _agent_class()(runner)


@functools.lru_cache(maxsize=1)
def _agent_class() -> type:
    """The ResponsesAgent subclass, defined on first use so that mlflow loads only then."""
    try:
        from mlflow.pyfunc import ResponsesAgent
        from mlflow.types.responses import (
            ResponsesAgentRequest,
            ResponsesAgentResponse,
            ResponsesAgentStreamEvent,
        )
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "as_responses_agent needs MLflow: pip install 'langchain-dbx-serving[agents]'"
        ) from exc

    def _request(request: Any) -> dict[str, Any]:
        if isinstance(request, dict):
            request = ResponsesAgentRequest(**request)
        return request.model_dump(exclude_none=True)

    class LangChainResponsesAgent(ResponsesAgent):  # type: ignore[misc]
        """A ``ResponsesAgent`` over a LangChain runnable or LangGraph graph."""

        def __init__(self, runner: GraphRunner) -> None:
            self.runner = runner

        def predict_stream(self, request: Any) -> Any:
            for event in self.runner.events(_request(request)):
                yield ResponsesAgentStreamEvent(**event)

        def predict(self, request: Any) -> Any:
            return _whole(list(self.runner.events(_request(request))))

        async def apredict_stream(self, request: Any) -> Any:
            """``predict_stream`` on the graph's async API (for ``AgentServer`` apps)."""
            async for event in self.runner.aevents(_request(request)):
                yield ResponsesAgentStreamEvent(**event)

        async def apredict(self, request: Any) -> Any:
            """``predict`` on the graph's async API."""
            return _whole([event async for event in self.runner.aevents(_request(request))])

    def _whole(events: list[dict[str, Any]]) -> Any:
        """The response a stream's events add up to."""
        items = [e["item"] for e in events if e["type"] == "response.output_item.done"]
        completed = next((e for e in events if e["type"] == "response.completed"), {})
        response = completed.get("response") or {}
        return ResponsesAgentResponse(
            id=response.get("id"),
            output=items,
            usage=response.get("usage"),
            custom_outputs=completed.get("custom_outputs"),
        )

    return LangChainResponsesAgent
