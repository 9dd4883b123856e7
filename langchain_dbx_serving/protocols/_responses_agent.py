"""What ``AgentEndpoint`` needs of the responses wire: request dicts in, tool turns out.

An agent is called with a ``ResponsesAgentRequest``-style dict (``{"input": ..., **keys}``), a
string or LangChain messages; its reply's ``function_call`` / ``function_call_output`` items are
the agent's own tool turns. These functions own those wire facts so that ``agents.py`` is glue.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.messages import BaseMessage, convert_to_messages

from langchain_dbx_serving.protocols._responses_encode import encode_input


def split_request(value: Any) -> tuple[list[BaseMessage], list[Any] | None, dict[str, Any]]:
    """``(messages, raw input items or None, other body keys)`` of an agent's input.

    ``value`` is a string, LangChain messages, or a request dict holding ``input`` (a string or
    a list of wire items) or ``messages``, next to other body keys (``custom_inputs``, ...).

    Example:
        >>> split_request({"input": [{"role": "user", "content": "hi"}], "context": {}})
        ([], [{'role': 'user', 'content': 'hi'}], {'context': {}})
    """
    if isinstance(value, str):
        return convert_to_messages([value]), None, {}
    if isinstance(value, Mapping):
        body_keys = {k: v for k, v in value.items() if k not in ("input", "messages")}
        if "messages" in value:
            return convert_to_messages(value["messages"]), None, body_keys
        raw = value.get("input")
        if isinstance(raw, str):
            return convert_to_messages([raw]), None, body_keys
        if isinstance(raw, list):
            return [], raw, body_keys
        raise ValueError("an AgentEndpoint dict input needs 'input' (a string or a list of items)")
    return convert_to_messages(value), None, {}


def with_input_items(body: Mapping[str, Any], items: list[Any]) -> dict[str, Any]:
    """A request body whose ``input`` is ``items``, sent as given (not re-encoded)."""
    return {**body, "input": items}


def approval_turn_items(
    history: Sequence[Any], output: Sequence[Any], answers: Sequence[Any]
) -> list[Any]:
    """The input items of the turn answering a reply's approval requests: the request's own
    items, then the reply's output items (the requests among them), then the answers.

    Example:
        >>> approval_turn_items([{"role": "user"}], [{"type": "mcp_approval_request"}], [{}])
        [{'role': 'user'}, {'type': 'mcp_approval_request'}, {}]
    """
    return [*history, *output, *answers]


def input_items(value: Any) -> tuple[list[Any], dict[str, Any]]:
    """``(input items, other body keys)`` of an agent's input: raw items as given, messages
    encoded as the request encoder encodes them."""
    messages, items, extra = split_request(value)
    return (items if items is not None else encode_input(messages)), extra


def agent_tool_calls(items: Sequence[Mapping[str, Any]], content: Any) -> list[dict[str, Any]]:
    """The agent's own tool calls of a decoded reply, each with its output.

    ``content`` is the decoded message's content (its ``server_tool_call`` blocks are the
    calls), ``items`` the reply's output items (their ``function_call_output`` items the
    outputs). Each call is ``{"id", "name", "args", "output"}`` (``output`` ``None`` when the
    reply holds no answer to it).
    """
    outputs = {
        item.get("call_id"): item.get("output")
        for item in items
        if item.get("type") == "function_call_output"
    }
    calls = []
    for block in content if isinstance(content, list) else []:
        if isinstance(block, dict) and block.get("type") == "server_tool_call":
            call_id = block.get("id")
            calls.append(
                {
                    "id": call_id,
                    "name": block.get("name") or "",
                    "args": block.get("args") or {},
                    "output": outputs.get(call_id),
                }
            )
    return calls
