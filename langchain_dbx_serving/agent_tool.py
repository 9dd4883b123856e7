"""A responses agent as a LangChain tool: a sub-agent for a supervisor, losslessly.

:class:`AgentTool` (made by ``AgentEndpoint.as_tool()`` or ``ChatDatabricksResponses.as_tool()``)
sends the model's request to the agent as one user message and returns
``(answer text, AgentResponse)`` (``response_format="content_and_artifact"``): the supervisor's
model sees the text, and ``ToolMessage.artifact`` keeps the whole reply (``custom_outputs``,
annotations, the sub-agent's own tool calls with outputs, usage, trace id).

What it passes on, from the run's config (what ``as_responses_agent`` sets when the supervisor is
itself served, and what LangGraph sets from a thread):

- ``context``: ``conversation_id`` (``configurable["conversation_id"]``, else ``thread_id``) and
  ``user_id`` (``configurable["user_id"]``);
- ``custom_inputs``: the ``custom_inputs`` given to ``as_tool`` plus the keys named in
  ``forward_custom_inputs`` taken from ``configurable["custom_inputs"]``.

The agent is called through its Runnable interface with the tool run's callbacks, so it shows
as a child run (and its trace handling and usage reporting apply); while it streams, the tool
dispatches custom events: :data:`TEXT_EVENT` (``{"tool", "endpoint", "delta"}``) for each piece
of answer text and :data:`ITEM_EVENT` (``{"tool", "endpoint", "item"}``) for each finished output
item, which ``astream_events`` shows as ``on_custom_event``.

In a LangGraph graph (a ``ToolNode``, a ``create_agent`` supervisor), a sub-agent answer with
``mcp_approval_request`` items interrupts the graph; ``Command(resume=decision)`` sends the
``mcp_approval_response`` turn and the tool returns the final answer (see
:mod:`langchain_dbx_serving.approval_interrupts`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Iterator, Mapping
from typing import Any, Protocol

from langchain_core.callbacks import (
    AsyncCallbackManagerForToolRun,
    CallbackManagerForToolRun,
    adispatch_custom_event,
    dispatch_custom_event,
)
from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import patch_config
from langchain_core.tools import BaseTool
from pydantic import BaseModel, Field

from langchain_dbx_serving import approval_interrupts as approvals
from langchain_dbx_serving._agent_reply import AgentEvent, AgentResponse
from langchain_dbx_serving.errors import MalformedResponseError
from langchain_dbx_serving.protocols import responses

__all__ = ["ITEM_EVENT", "TEXT_EVENT", "AgentTool", "AgentToolInput", "StreamingAgent"]

TEXT_EVENT = "agent_text_delta"
"""Name of the custom event carrying a piece of the sub-agent's answer text."""
ITEM_EVENT = "agent_output_item"
"""Name of the custom event carrying a finished output item of the sub-agent."""


class StreamingAgent(Protocol):
    """What a tool needs of its agent: an endpoint name and a stream of
    :class:`~langchain_dbx_serving.AgentEvent` s ending with the response
    (:class:`~langchain_dbx_serving.AgentEndpoint` is one)."""

    @property
    def endpoint(self) -> str: ...

    def stream(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Iterator[AgentEvent]: ...

    def astream(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any
    ) -> AsyncIterator[AgentEvent]: ...


class AgentToolInput(BaseModel):
    """What the calling model sends: one request, in plain language."""

    request: str = Field(description="What to ask the agent, as a complete, standalone request.")


class AgentTool(BaseTool):
    """A tool that asks a responses agent and returns its answer text and whole reply.

    Example:
        .. code-block:: python

            from langchain.agents import create_agent
            from langchain_dbx_serving import AgentEndpoint

            research = AgentEndpoint("research-agent").as_tool(
                name="research", description="Finds facts about a topic."
            )
            supervisor = create_agent(model, tools=[research])
            state = supervisor.invoke({"messages": [("user", "What changed in Q3?")]})
            reply = state["messages"][2].artifact  # the research agent's AgentResponse
            reply.custom_outputs, reply.tool_calls, reply.usage
    """

    agent: Any  # a StreamingAgent (pydantic cannot check a Protocol)
    """The :class:`~langchain_dbx_serving.AgentEndpoint` asked."""
    custom_inputs: dict[str, Any] | None = None
    """Sent as ``custom_inputs`` with every request."""
    forward_custom_inputs: tuple[str, ...] = ()
    """Keys of the caller's ``configurable["custom_inputs"]`` passed on to the agent."""
    args_schema: Any = AgentToolInput
    response_format: str = "content_and_artifact"

    # -- the request ------------------------------------------------------------------------
    def _body(self, request: str, config: RunnableConfig | None) -> dict[str, Any]:
        configurable = (config or {}).get("configurable") or {}
        body: dict[str, Any] = {"input": [{"role": "user", "content": request}]}
        custom = dict(self.custom_inputs or {})
        caller_inputs = configurable.get("custom_inputs")
        if isinstance(caller_inputs, Mapping):
            forwarded = [k for k in self.forward_custom_inputs if k in caller_inputs]
            custom |= {k: caller_inputs[k] for k in forwarded}
        if custom:
            body["custom_inputs"] = custom
        context = {
            "conversation_id": configurable.get("conversation_id") or configurable.get("thread_id"),
            "user_id": configurable.get("user_id"),
        }
        context = {k: v for k, v in context.items() if isinstance(v, str) and v}
        if context:
            body["context"] = context
        return body

    def _progress(self, event: AgentEvent) -> tuple[str, dict[str, Any]] | None:
        where = {"tool": self.name, "endpoint": self.agent.endpoint}
        if event.type == "text_delta" and event.delta:
            return TEXT_EVENT, {**where, "delta": event.delta}
        if event.type == "output_item" and event.item is not None:
            return ITEM_EVENT, {**where, "item": event.item}
        return None

    # -- runs -------------------------------------------------------------------------------
    def _ask(self, body: dict[str, Any], child: RunnableConfig, run_manager: Any) -> AgentResponse:
        response = None
        for event in self.agent.stream(body, child):
            progress = self._progress(event)
            if progress is not None and run_manager is not None:
                dispatch_custom_event(*progress, config=child)
            response = event.response or response
        return _answer(response, self.agent.endpoint)[1]

    async def _aask(
        self, body: dict[str, Any], child: RunnableConfig, run_manager: Any
    ) -> AgentResponse:
        response = None
        async for event in self.agent.astream(body, child):
            progress = self._progress(event)
            if progress is not None and run_manager is not None:
                await adispatch_custom_event(*progress, config=child)
            response = event.response or response
        return _answer(response, self.agent.endpoint)[1]

    def _run(
        self,
        request: str,
        config: RunnableConfig,
        run_manager: CallbackManagerForToolRun | None = None,
    ) -> tuple[str, AgentResponse]:  # (answer text, the whole reply)
        child = patch_config(config, callbacks=run_manager.get_child() if run_manager else None)
        body = self._body(request, config)
        if not approvals.in_graph(config):
            return _answer(self._ask(body, child, run_manager), self.agent.endpoint)

        # In a graph: approval requests interrupt it; the turns are kept in the checkpoint
        def turn(value: dict[str, Any]) -> dict[str, Any]:
            return approvals.snapshot(self._ask(value, child, run_manager))

        rounds = approvals.run_turns(
            self.agent.endpoint,
            body,
            turn,
            turn,
            _next_body,
            name=f"{self.name}_turn",
            config=config,
        )
        return _answer(approvals.thaw(rounds[-1][0]), self.agent.endpoint)

    async def _arun(
        self,
        request: str,
        config: RunnableConfig,
        run_manager: AsyncCallbackManagerForToolRun | None = None,
    ) -> tuple[str, AgentResponse]:  # (answer text, the whole reply)
        child = patch_config(config, callbacks=run_manager.get_child() if run_manager else None)
        body = self._body(request, config)
        if not approvals.in_graph(config):
            return _answer(await self._aask(body, child, run_manager), self.agent.endpoint)

        async def turn(value: dict[str, Any]) -> dict[str, Any]:
            return approvals.snapshot(await self._aask(value, child, run_manager))

        rounds = await approvals.arun_turns(
            self.agent.endpoint,
            body,
            turn,
            turn,
            _next_body,
            name=f"{self.name}_turn",
            config=config,
        )
        return _answer(approvals.thaw(rounds[-1][0]), self.agent.endpoint)


def _next_body(body: dict[str, Any], reply: Any, answers: list[dict[str, Any]]) -> dict[str, Any]:
    """The approval turn: the request, the agent's reply items, then the answers."""
    items = responses.approval_turn_items(body["input"], reply["output"], answers)
    return responses.with_input_items(body, items)


def _answer(response: AgentResponse | None, endpoint: str) -> tuple[str, AgentResponse]:
    if response is None:  # AgentEndpoint's stream ends with the response or raises
        raise MalformedResponseError(
            f"the stream of agent '{endpoint}' ended without a response",
            endpoint=endpoint,
        )
    return response.text, response


def agent_tool(
    agent: StreamingAgent,
    *,
    name: str | None = None,
    description: str | None = None,
    custom_inputs: Mapping[str, Any] | None = None,
    forward_custom_inputs: Collection[str] = (),
) -> AgentTool:
    """Build the :class:`AgentTool` of ``agent`` (see ``AgentEndpoint.as_tool``)."""
    tool_name = name or _tool_name(agent.endpoint)
    return AgentTool(
        name=tool_name,
        description=description or f"Ask the '{agent.endpoint}' agent; it answers in text.",
        agent=agent,
        custom_inputs=dict(custom_inputs) if custom_inputs is not None else None,
        forward_custom_inputs=tuple(forward_custom_inputs),
    )


def _tool_name(endpoint: str) -> str:
    """A tool name models accept (``^[a-zA-Z0-9_-]{1,64}$``) from an endpoint name."""
    cleaned = "".join(c if c.isalnum() or c in "_-" else "_" for c in endpoint)
    return cleaned[:64] or "agent"
