"""The responses protocol: what ``ResponsesAgent`` endpoints and MLflow's AgentServer speak.

Pure wire mapping (PROTOCOLS.md section 3): ``encode_request`` builds a
``ResponsesAgentRequest`` body from LangChain messages, ``decode_reply`` turns a
``ResponsesAgentResponse`` into a ``ChatResult`` and ``StreamDecoder`` turns stream events into
``AIMessageChunk``s whose sum matches ``decode_reply`` of the equivalent whole reply.

The pieces live in ``_responses_encode`` (request), ``_responses_items`` (output items as
content blocks, shared by both decoders) and ``_responses_stream`` (the stream decoder).

Tool calls: a ``function_call`` is the caller's (``AIMessage.tool_calls``) only when it names a
tool the caller bound in this request (``client_tools``, see :func:`tool_names`); every other
call is one the agent ran itself and is kept as ``server_tool_call`` / ``server_tool_result``
content blocks, which ``encode_request`` sends back as ``function_call`` /
``function_call_output`` items in the next turn's history.

Example:
    >>> from langchain_core.messages import HumanMessage
    >>> encode_request([HumanMessage("hi")], {"temperature": 0}, stream=False)
    {'input': [{'role': 'user', 'content': 'hi'}], 'temperature': 0}
    >>> result = decode_reply(
    ...     {
    ...         "object": "response",
    ...         "id": "resp_1",
    ...         "output": [
    ...             {"type": "message", "id": "m1", "role": "assistant",
    ...              "content": [{"type": "output_text", "text": "hello", "annotations": []}]}
    ...         ],
    ...     }
    ... )
    >>> result.generations[0].message.content
    'hello'
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import ValidationError

from langchain_dbx_serving.protocols._responses_agent import (
    agent_tool_calls,
    approval_turn_items,
    input_items,
    split_request,
    with_input_items,
)
from langchain_dbx_serving.protocols._responses_encode import encode_request
from langchain_dbx_serving.protocols._responses_items import (
    ResponseFields,
    decode_output_items,
    error_in,
    malformed,
    output_parts,
)
from langchain_dbx_serving.protocols._responses_reply import ResponseMetadata
from langchain_dbx_serving.protocols._responses_stream import StreamDecoder
from langchain_dbx_serving.protocols._seam import WireProtocol

__all__ = [
    "PROTOCOL",
    "StreamDecoder",
    "agent_tool_calls",
    "approval_turn_items",
    "input_items",
    "split_request",
    "with_input_items",
    "decode_output_items",
    "decode_reply",
    "encode_request",
    "tool_names",
]


def tool_names(params: Mapping[str, Any]) -> frozenset[str]:
    """The names of the function tools bound in ``params["tools"]``: the caller's tools.

    Both tool formats are read: chat completions
    (``{"type": "function", "function": {"name": ...}}``) and responses
    (``{"type": "function", "name": ...}``). Other tools (``web_search``, ...) have no
    function name and are skipped.

    Example:
        >>> sorted(
        ...     tool_names(
        ...         {
        ...             "tools": [
        ...                 {"type": "function", "function": {"name": "weather"}},
        ...                 {"type": "function", "name": "ask_user"},
        ...                 {"type": "web_search"},
        ...             ]
        ...         }
        ...     )
        ... )
        ['ask_user', 'weather']
    """
    tools = params.get("tools")
    if not isinstance(tools, (list, tuple)):
        return frozenset()
    names: set[str] = set()
    for tool in tools:
        if not isinstance(tool, Mapping) or tool.get("type", "function") != "function":
            continue
        function = tool.get("function")
        name = function.get("name") if isinstance(function, Mapping) else tool.get("name")
        if isinstance(name, str) and name:
            names.add(name)
    return frozenset(names)


def decode_reply(body: Any, *, client_tools: Collection[str] = ()) -> ChatResult:
    """Decode a whole responses reply into a :class:`ChatResult`.

    ``client_tools`` are the names of the tools the caller bound (:func:`tool_names`): only a
    ``function_call`` naming one of them, and not answered by a ``function_call_output`` of
    the same reply, becomes a tool call. The agent's own calls and their results become
    ``server_tool_call`` / ``server_tool_result`` content blocks (``()``: every call is the
    agent's own).

    ``response_metadata`` holds ``id``, ``status``, ``model_name``, ``custom_outputs``,
    ``trace_id`` (``metadata.trace_id`` or the returned trace's), ``trace`` and
    ``databricks_request_id`` (from ``databricks_output``) when present, and ``output``: the raw
    output items, so callers can rebuild the full reply.

    Raises:
        AgentError: the reply reports an error or ``status: "failed"``.
        MalformedResponseError: the body is not a responses reply.
    """
    if not isinstance(body, Mapping):
        raise malformed("a reply that is not a JSON object", body)
    error = error_in(body)
    if error is not None:
        raise error
    try:
        fields = ResponseFields.model_validate(body)
    except ValidationError:
        raise malformed("a responses reply of an unexpected shape", body) from None
    if fields.output is None:
        what = "a chat-completions reply" if "choices" in body else "a reply with no output list"
        raise malformed(what, body)
    content, tool_calls, invalid_tool_calls = output_parts(fields.output, client_tools=client_tools)
    reply = ResponseMetadata()
    reply.absorb_response(body, fields)
    metadata = reply.build(output=list(fields.output))
    databricks = reply.databricks
    message = AIMessage(
        content=content,
        tool_calls=tool_calls,
        invalid_tool_calls=invalid_tool_calls,
        response_metadata=metadata,
        usage_metadata=reply.usage,
        id=fields.id,
    )
    # No None values: LangChain copies llm_output into response_metadata, and a streamed reply
    # (which has no llm_output) would otherwise differ from an invoked one.
    candidates = {"model_name": fields.model, "id": fields.id, "token_usage": fields.usage}
    llm_output: dict[str, Any] = {k: v for k, v in candidates.items() if v is not None}
    llm_output.update({k: metadata[k] for k in ("trace", "trace_id") if k in metadata})
    if "databricks_request_id" in databricks:
        llm_output["databricks_request_id"] = databricks["databricks_request_id"]
    return ChatResult(generations=[ChatGeneration(message=message)], llm_output=llm_output)


PROTOCOL = WireProtocol(
    kind="responses",
    encode_request=encode_request,
    decode_reply=decode_reply,
    stream_decoder=StreamDecoder,
)
"""The responses protocol as a chat class uses it (see :class:`WireProtocol`)."""
