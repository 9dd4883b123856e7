"""An agent's reply as typed objects: :class:`AgentResponse`, its :class:`AgentToolCall` s and
the :class:`AgentEvent` s of a stream.

Its own module so that what produces these (``agents.AgentEndpoint``) and what consumes them
(``agent_tool``, ``approval_interrupts``, ``background``) import them from here, not from each
other. Public under ``langchain_dbx_serving`` and ``langchain_dbx_serving.agents``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from langchain_core.messages import AIMessage
from pydantic import BaseModel, ConfigDict, Field

__all__ = ["AgentEvent", "AgentInput", "AgentResponse", "AgentToolCall"]

AgentInput = str | Sequence[Any] | Mapping[str, Any]


class AgentToolCall(BaseModel):
    """A tool call in an agent's output, with the agent's own result when it ran the tool."""

    id: str | None = None
    name: str
    args: dict[str, Any] = Field(default_factory=dict)
    output: Any = None


class AgentResponse(BaseModel):
    """The whole reply of a responses agent.

    Example:
        .. code-block:: python

            reply = AgentEndpoint("support-agent").invoke("Where is order 42?")
            reply.text, [call.name for call in reply.tool_calls], reply.custom_outputs
    """

    model_config = ConfigDict(frozen=True)

    output: list[dict[str, Any]] = Field(default_factory=list)
    """Every output item as the agent sent it (messages, function calls and outputs, ...)."""
    text: str = ""
    """The answer text (reasoning and tool traffic excluded)."""
    tool_calls: list[AgentToolCall] = Field(default_factory=list)
    custom_outputs: dict[str, Any] | None = None
    usage: dict[str, Any] | None = None
    id: str | None = None
    trace_id: str | None = None
    trace: dict[str, Any] | None = None
    message: AIMessage | None = Field(default=None, exclude=True, repr=False)

    def to_message(self) -> AIMessage:
        """The reply as an ``AIMessage`` (as ``ChatDatabricksResponses`` would return it)."""
        return self.message if self.message is not None else AIMessage(self.text)


class AgentEvent(BaseModel):
    """One event of ``AgentEndpoint.stream()``.

    ``text_delta`` and ``reasoning_delta`` carry ``delta``; ``output_item`` carries a completed
    ``item``; the last event is always ``response``, carrying the whole ``AgentResponse``.
    """

    type: Literal["text_delta", "reasoning_delta", "output_item", "response"]
    delta: str | None = None
    item: dict[str, Any] | None = None
    response: AgentResponse | None = None
