"""Approval turns inside LangGraph: an agent's ``mcp_approval_request`` items as an ``interrupt``.

``AgentEndpoint.as_node()`` and ``AgentEndpoint.as_tool()`` use this when they run inside a
LangGraph graph: when the agent answers with approval requests, the node (or tool) calls
``langgraph.types.interrupt`` with an :data:`APPROVAL_INTERRUPT` value; the graph stops, the
caller decides, and ``graph.invoke(Command(resume=decision), config)`` sends the
``mcp_approval_response`` turn and carries on.

LangGraph resumes a node by running it again from its start. A reply that asks for approval
is therefore kept in the checkpoint as the result of a LangGraph task (``langgraph.func.task``)
before the interrupt, and the approval turns run as tasks too: the re-run reads them back
instead of asking the agent again (a reply asking for nothing is returned as before, no task
involved). The agent receives each turn exactly once, however many approval rounds there
are (it needs a checkpointer, as every ``interrupt`` does).

A ``create_agent`` supervisor runs each tool call as its own task, so several sub-agents
asking at once raise one interrupt each, resumed together with
``Command(resume={interrupt.id: decision, ...})``. LangGraph numbers the tasks and
interrupts of one node in the order they are called, so several sub-agent tools run
concurrently inside *one* plain ``ToolNode`` step can see a first turn sent again on resume:
give each tool call its own task (``create_agent``, or ``Send``) when more than one may ask.

The interrupt's value is plain JSON (it is stored in the checkpoint, which blocks unknown
types): ``{"type": "mcp_approval", "endpoint": "<agent>", "requests": [<request items>]}``;
:func:`~langchain_dbx_serving.approvals.approval_requests` reads it (or the ``Interrupt``) as
typed :class:`~langchain_dbx_serving.approvals.ApprovalRequest` objects.

The decision (the ``resume`` value) is one of (anything else interrupts again, with the
same requests and an ``"error"`` saying what is accepted):

- ``True`` / ``False``: approve or deny every request;
- a mapping from request id to ``True`` / ``False`` or to ``{"approve": bool, "reason": str}``;
- the answer items themselves: ``[request.approve(), request.deny("why"), ...]``.

Example:
    .. code-block:: python

        from langgraph.types import Command

        graph = builder.compile(checkpointer=InMemorySaver())  # agent.as_node() in it
        state = graph.invoke({"messages": [("user", "Drop the staging table")]}, config)
        for request in approval_requests(state["__interrupt__"][0]):
            print(request.server_label, request.name, request.arguments)
        state = graph.invoke(Command(resume={"mcpr_1": {"approve": False, "reason": "audit"}}),
                             config)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from langchain_core.runnables import RunnableConfig

from langchain_dbx_serving._agent_reply import AgentResponse
from langchain_dbx_serving.approvals import (
    INTERRUPT,
    RESPONSE,
    ApprovalRequest,
    approval_message,
    approval_requests,
)

__all__ = [
    "APPROVAL_INTERRUPT",
    "answers_for",
    "arun_turns",
    "decide",
    "in_graph",
    "resuming",
    "run_turns",
]

APPROVAL_INTERRUPT = INTERRUPT
"""The ``type`` of the interrupt value raised for approval requests."""

Turn = Callable[[Any], Any]
"""A turn: (the turn's input) -> a JSON-safe reply snapshot (what the checkpoint keeps)."""


def in_graph(config: RunnableConfig | None) -> bool:
    """Whether ``config`` is a LangGraph node's: its tasks and interrupts are available."""
    configurable = (config or {}).get("configurable") or {}
    try:
        from langgraph._internal._constants import CONFIG_KEY_CALL
    except ImportError:  # no LangGraph, or a version without it: not inside a graph we know
        return False
    return CONFIG_KEY_CALL in configurable


def interrupt_value(
    endpoint: str, requests: Sequence[ApprovalRequest], error: str | None = None
) -> dict[str, Any]:
    """The interrupt value for ``requests`` (JSON only: the checkpoint stores it)."""
    value: dict[str, Any] = {
        "type": APPROVAL_INTERRUPT,
        "endpoint": endpoint,
        "requests": [dict(request.item) for request in requests],
    }
    if error is not None:
        value["error"] = error
    return value


def decide(endpoint: str, requests: Sequence[ApprovalRequest]) -> list[dict[str, Any]]:
    """Interrupt the graph until the resume value is a valid decision; its answer items.

    A decision that cannot be used interrupts again with the same requests and an ``error``
    saying why (raising would leave the thread stuck: LangGraph would replay the same
    resume value on every later resume).
    """
    from langgraph.types import interrupt

    error = None
    while True:
        decision = interrupt(interrupt_value(endpoint, requests, error))
        try:
            return answers_for(requests, decision)
        except ValueError as exc:
            error = str(exc)


def answers_for(requests: Sequence[ApprovalRequest], decision: Any) -> list[dict[str, Any]]:
    """The ``mcp_approval_response`` items for ``requests`` from a resume value.

    ``ValueError`` (saying what is accepted) for a decision that misses a request or has an
    unknown form; the agent is not called then.
    """
    if isinstance(decision, bool):
        return [request.respond(decision) for request in requests]
    if isinstance(decision, Mapping):
        answers = []
        for request in requests:
            if request.id not in decision:
                raise ValueError(f"the decision has no answer for approval request {request.id!r}")
            answers.append(_answer(request, decision[request.id]))
        return answers
    if isinstance(decision, Sequence) and not isinstance(decision, (str, bytes)):
        given = {
            item.get("approval_request_id"): dict(item)
            for item in decision
            if isinstance(item, Mapping) and item.get("type") == RESPONSE
        }
        missing = [request.id for request in requests if request.id not in given]
        if missing or len(given) != len(decision):
            raise ValueError(
                f"the decision must hold one {RESPONSE} item per request "
                f"(request.approve() / request.deny()); missing: {missing}"
            )
        return [given[request.id] for request in requests]
    raise ValueError(
        "resume an approval interrupt with True/False, a mapping from request id to a "
        "decision, or the request.approve()/deny() items; got " + type(decision).__name__
    )


def _answer(request: ApprovalRequest, choice: Any) -> dict[str, Any]:
    if isinstance(choice, bool):
        return request.respond(choice)
    if isinstance(choice, Mapping) and isinstance(choice.get("approve"), bool):
        reason = choice.get("reason")
        return request.respond(choice["approve"], reason if isinstance(reason, str) else None)
    raise ValueError(
        f"the decision for approval request {request.id!r} must be True/False or "
        f'{{"approve": bool, "reason": str}}, not {choice!r}'
    )


def resuming(config: RunnableConfig | None) -> bool:
    """Whether this node run is LangGraph re-running it to deliver a resume value."""
    try:
        from langgraph._internal._constants import CONFIG_KEY_SCRATCHPAD
    except ImportError:
        return False
    pad = ((config or {}).get("configurable") or {}).get(CONFIG_KEY_SCRATCHPAD)
    if pad is None:
        return False
    return bool(getattr(pad, "resume", None)) or pad.get_null_resume(False) is not None


Rounds = list[tuple[Any, list[dict[str, Any]] | None]]


def run_turns(
    endpoint: str,
    first: Any,
    direct: Turn,
    turn: Turn,
    next_input: Callable[[Any, Any, list[dict[str, Any]]], Any],
    *,
    name: str,
    config: RunnableConfig | None,
) -> Rounds:
    """The agent's turns in a graph node, approval rounds as interrupts.

    The first turn is asked directly (``direct``): a reply asking for no approval changes
    nothing in the graph's runs and updates. A reply asking for approval is stored as the
    result of the LangGraph task ``name`` before the interrupt, so that the re-run on resume
    reads it back (the same task, by position) instead of asking again; each approval turn
    (``turn``) runs as the next task. Returns ``[(reply snapshot, answers sent after it or
    None), ...]``, the last reply asking for no approval.
    """
    from langgraph.func import task

    step = task(turn, name=name)
    if resuming(config):
        reply = step(first).result()  # kept in the checkpoint by the run that interrupted
    else:
        reply = direct(first)
        if not approval_requests(reply):
            return [(reply, None)]
        asked = reply
        reply = task(lambda _: asked, name=name)(first).result()  # now kept in the checkpoint
    rounds: Rounds = []
    value = first
    while requests := approval_requests(reply):
        answers = decide(endpoint, requests)
        rounds.append((reply, answers))
        value = next_input(value, reply, answers)
        reply = step(value).result()
    rounds.append((reply, None))
    return rounds


async def arun_turns(
    endpoint: str,
    first: Any,
    direct: Callable[[Any], Awaitable[Any]],
    turn: Callable[[Any], Awaitable[Any]],
    next_input: Callable[[Any, Any, list[dict[str, Any]]], Any],
    *,
    name: str,
    config: RunnableConfig | None,
) -> Rounds:
    """Async :func:`run_turns`."""
    from langgraph.func import task

    step = task(turn, name=name)
    if resuming(config):
        reply = await step(first)
    else:
        reply = await direct(first)
        if not approval_requests(reply):
            return [(reply, None)]
        asked = reply

        async def keep(_: Any) -> Any:
            return asked

        reply = await task(keep, name=name)(first)
    rounds: Rounds = []
    value = first
    while requests := approval_requests(reply):
        answers = decide(endpoint, requests)
        rounds.append((reply, answers))
        value = next_input(value, reply, answers)
        reply = await step(value)
    rounds.append((reply, None))
    return rounds


# -- the agent's replies as checkpoint values ---------------------------------------------------
def snapshot(response: Any) -> dict[str, Any]:
    """An ``AgentResponse`` as the checkpoint keeps it (JSON, plus its ``AIMessage``)."""
    return {**response.model_dump(mode="json"), "message": response.to_message()}


def thaw(value: Mapping[str, Any]) -> AgentResponse:
    """The ``AgentResponse`` of a :func:`snapshot`."""
    return AgentResponse.model_validate(dict(value))


# -- AgentEndpoint.as_node ------------------------------------------------------------------------
def _next_messages(messages: Any, reply: Any, answers: list[dict[str, Any]]) -> list[Any]:
    return [*messages, thaw(reply).to_message(), approval_message(*answers)]


def _node_update(rounds: list[tuple[Any, list[dict[str, Any]] | None]]) -> list[Any]:
    """The messages a node adds: each reply, each approval turn after it, the final reply."""
    added: list[Any] = []
    for reply, answers in rounds:
        added.append(thaw(reply).to_message())
        if answers:
            added.append(approval_message(*answers))
    return added


def node_messages(
    agent: Any, endpoint: str, messages: list[Any], config: RunnableConfig | None
) -> list[Any]:
    """The messages ``agent`` adds to a graph's state, with approval rounds as interrupts."""
    rounds = run_turns(
        endpoint,
        messages,
        lambda value: snapshot(agent.invoke(value, config)),
        lambda value: snapshot(agent.invoke(value)),
        _next_messages,
        name=f"{endpoint}_turn",
        config=config,
    )
    return _node_update(rounds)


async def anode_messages(
    agent: Any, endpoint: str, messages: list[Any], config: RunnableConfig | None
) -> list[Any]:
    """Async :func:`node_messages`."""

    async def direct(value: Any) -> dict[str, Any]:
        return snapshot(await agent.ainvoke(value, config))

    async def turn(value: Any) -> dict[str, Any]:
        return snapshot(await agent.ainvoke(value))

    rounds = await arun_turns(
        endpoint, messages, direct, turn, _next_messages, name=f"{endpoint}_turn", config=config
    )
    return _node_update(rounds)
