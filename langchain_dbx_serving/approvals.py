"""Human approval turns: an agent's ``mcp_approval_request`` items, approved or denied.

An agent that calls MCP tools needing approval (OpenAI's responses format, which Databricks'
hosted agent loop follows) stops with ``mcp_approval_request`` output items instead of
calling them. The caller answers in a second turn with one ``mcp_approval_response`` item per
request; the agent then runs (or skips) the tools and answers.

:func:`approval_requests` reads the requests of a reply (an ``AIMessage`` from
``ChatDatabricksResponses``, where they are ``non_standard`` content blocks, or an
``AgentResponse``) as typed :class:`ApprovalRequest` objects; ``request.approve()`` /
``request.deny()`` build the answer items, and :func:`approval_message` wraps answers in the
``HumanMessage`` that sends them (``AgentEndpoint.resolve_approvals`` does the whole turn).

Example:
    .. code-block:: python

        reply = chat.invoke(history)
        if requests := approval_requests(reply):
            for request in requests:
                print(request.server_label, request.name, request.arguments)
            answer = approval_message(*(r.approve() for r in requests))
            reply = chat.invoke([*history, reply, answer])
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from langchain_core.messages import BaseMessage, HumanMessage
from pydantic import BaseModel, ConfigDict, Field

from langchain_dbx_serving.protocols._common import parse_arguments

__all__ = ["ApprovalRequest", "approval_message", "approval_requests"]

REQUEST = "mcp_approval_request"
RESPONSE = "mcp_approval_response"
INTERRUPT = (
    "mcp_approval"  # the type of the interrupt value of langchain_dbx_serving.approval_interrupts
)


class ApprovalRequest(BaseModel):
    """One tool call the agent wants approved before it runs it.

    Example:
        >>> request = ApprovalRequest.from_item(
        ...     {"type": "mcp_approval_request", "id": "mcpr_1", "name": "delete_rows",
        ...      "arguments": '{"table": "t"}', "server_label": "warehouse"}
        ... )
        >>> request.name, request.arguments
        ('delete_rows', {'table': 't'})
        >>> answer = request.deny("not today")
        >>> answer["type"], answer["approval_request_id"], answer["approve"], answer["reason"]
        ('mcp_approval_response', 'mcpr_1', False, 'not today')
    """

    model_config = ConfigDict(frozen=True)

    id: str
    name: str = ""
    arguments: dict[str, Any] = Field(default_factory=dict)
    """The tool's arguments (parsed; ``{"_raw": text}`` when they are not a JSON object)."""
    server_label: str | None = None
    item: dict[str, Any] = Field(default_factory=dict, repr=False)
    """The ``mcp_approval_request`` item as the agent sent it."""

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> ApprovalRequest:
        raw = item.get("arguments")
        parsed, _error = parse_arguments(raw)
        arguments = parsed if parsed is not None else {"_raw": raw}
        request_id = item.get("id")
        if not isinstance(request_id, str) or not request_id:
            raise ValueError(f"an {REQUEST} item without an id cannot be answered: {item!r}")
        name = item.get("name")
        label = item.get("server_label")
        return cls(
            id=request_id,
            name=name if isinstance(name, str) else "",
            arguments=arguments,
            server_label=label if isinstance(label, str) else None,
            item=dict(item),
        )

    def respond(self, approve: bool, reason: str | None = None) -> dict[str, Any]:
        """The ``mcp_approval_response`` item answering this request."""
        answer: dict[str, Any] = {
            "type": RESPONSE,
            "approval_request_id": self.id,
            "approve": bool(approve),
        }
        if reason is not None:
            answer["reason"] = reason
        return answer

    def approve(self, reason: str | None = None) -> dict[str, Any]:
        return self.respond(True, reason)

    def deny(self, reason: str | None = None) -> dict[str, Any]:
        return self.respond(False, reason)


def _items_of(reply: Any) -> list[Any]:
    value = getattr(reply, "value", None)  # a LangGraph Interrupt raised by an agent node/tool
    if isinstance(value, Mapping) and value.get("type") == INTERRUPT:
        reply = value
    if isinstance(reply, Mapping) and reply.get("type") == INTERRUPT:
        return list(reply.get("requests") or [])
    output = getattr(reply, "output", None)
    if isinstance(output, list):  # an AgentResponse
        return output
    if isinstance(reply, BaseMessage):
        content = reply.content if isinstance(reply.content, list) else []
        return [
            block.get("value")
            for block in content
            if isinstance(block, Mapping) and block.get("type") == "non_standard"
        ]
    if isinstance(reply, Mapping) and isinstance(reply.get("output"), list):
        return reply["output"]  # a raw responses reply
    raise TypeError(
        "approval_requests() reads an AIMessage, an AgentResponse, a responses reply dict or "
        "an approval interrupt, "
        f"not {type(reply).__name__}"
    )


def approval_requests(reply: Any) -> list[ApprovalRequest]:
    """The approval requests of a reply that the reply itself has not answered, in order.

    ``reply`` is an ``AIMessage``, an ``AgentResponse``, a responses reply dict, or the
    interrupt (or its value) an agent node or tool raised in a LangGraph graph.
    """
    items = [i for i in _items_of(reply) if isinstance(i, Mapping)]
    answered = {i.get("approval_request_id") for i in items if i.get("type") == RESPONSE}
    return [
        ApprovalRequest.from_item(i)
        for i in items
        if i.get("type") == REQUEST and i.get("id") not in answered
    ]


def approval_message(*answers: Mapping[str, Any] | Iterable[Mapping[str, Any]]) -> HumanMessage:
    """The turn sending ``mcp_approval_response`` items (from ``approve()`` / ``deny()``)."""
    flat: list[Mapping[str, Any]] = []
    for answer in answers:
        if isinstance(answer, Mapping):
            flat.append(answer)
        else:
            flat.extend(answer)
    if not flat:
        raise ValueError("approval_message() needs at least one approve()/deny() answer")
    for answer in flat:
        if answer.get("type") != RESPONSE:
            raise ValueError(f"not an {RESPONSE} item: {answer!r}")
    return HumanMessage(content=[{"type": "non_standard", "value": dict(a)} for a in flat])
