"""A small deterministic ``ResponsesAgent`` served by MLflow's real ``AgentServer``.

Tests start it in a subprocess (see ``tests.support.agentserver``) and drive it through its input.
It is written the way agents served from Databricks Apps are: an async generator registered with
``@stream()`` that yields ``ResponsesAgentStreamEvent`` built with ``ResponsesAgent``'s helpers,
and an ``@invoke()`` function returning the ``response.output_item.done`` items of the same turn.
Every turn runs inside MLflow tracing spans, so a trace id returned by the server names a real
trace (root span from the server, then ``plan``, ``lookup`` and ``respond`` from here).

Behaviour, first matching rule wins ("text" = the text of the last ``user`` message):

============================================  ===============================================
input                                         output items
============================================  ===============================================
text contains ``explode``                     stream: two text deltas, then ``RuntimeError``;
                                              invoke: ``RuntimeError`` (the server's 500)
a ``function_call_output`` after the last     message "<name> returned: <output>" (the name
user message                                  of the matching ``function_call``, else "tool")
text contains ``lookup``                      agent-internal tool turn: ``function_call``
                                              ``lookup`` + its ``function_call_output``
                                              "result for <text>" + message "Found: <output>"
text ``call <name>``, or ``tools`` with a     ``function_call`` to <name> (else to the first
function tool                                 function tool), arguments ``{"query": <text>}``
otherwise                                     message echoing the text exactly
============================================  ===============================================

Modifiers: text containing ``think`` puts a ``reasoning`` item first; containing ``lifecycle``
wraps the stream OpenAI-style in ``response.created`` / ``response.output_item.added`` /
``response.completed`` (with ``usage``) and adds ``usage`` to the whole reply.
``custom_inputs`` come back unchanged as ``custom_outputs`` (in a stream, on the last
``response.output_item.done`` event). Item ids are fixed (the ``*_ID`` constants); text streams
as one ``response.output_text.delta`` per word.

Serve it by hand with ``uvicorn tests.support.agent_app:app --port 8000`` after setting the
MLflow variables of ``tests.support.agentserver.mlflow_env`` (without a tracking store every
span is a no-op).
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import mlflow
from mlflow.entities import SpanType
from mlflow.genai.agent_server import AgentServer, invoke, stream
from mlflow.pyfunc import ResponsesAgent
from mlflow.types.responses import (
    ResponsesAgentRequest,
    ResponsesAgentResponse,
    ResponsesAgentStreamEvent,
)

MESSAGE_ID = "msg_1"
REASONING_ID = "rs_1"
FUNCTION_CALL_ID = "fc_1"
CALL_ID = "call_1"
INTERNAL_CALL_ID = "call_lookup_1"
RESPONSE_ID = "resp_1"

EXPLODE_WORD = "explode"
LOOKUP_WORD = "lookup"
THINK_WORD = "think"
LIFECYCLE_WORD = "lifecycle"
ERROR_MESSAGE = "agent exploded on purpose"
PARTIAL_DELTAS = ("Partial ", "answer")
USAGE = {
    "input_tokens": 5,
    "input_tokens_details": {"cached_tokens": 0},
    "output_tokens": 3,
    "output_tokens_details": {"reasoning_tokens": 0},
    "total_tokens": 8,
}

_CALL_RE = re.compile(r"\bcall (\w+)")

agent_server = AgentServer("ResponsesAgent")
app = agent_server.app


def _text_of(content: Any) -> str:
    """The text of a message's content: a string, or its joined ``input_text`` parts."""
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content if p.get("type") == "input_text")


def _last_user_index(items: list[dict[str, Any]]) -> int:
    indices = [i for i, item in enumerate(items) if item.get("role") == "user"]
    return indices[-1] if indices else -1


def _tool_result(items: list[dict[str, Any]]) -> tuple[str, str] | None:
    """(tool name, output) of a ``function_call_output`` sent after the last user message."""
    for item in reversed(items[_last_user_index(items) + 1 :]):
        if item.get("type") == "function_call_output":
            calls = (i for i in items if i.get("type") == "function_call")
            name = next((c["name"] for c in calls if c["call_id"] == item["call_id"]), "tool")
            output = item["output"]
            return name, output if isinstance(output, str) else json.dumps(output)
    return None


def _requested_tool(request: ResponsesAgentRequest, text: str) -> str | None:
    if match := _CALL_RE.search(text):
        return match.group(1)
    for tool in request.tools or []:
        if tool.type == "function":
            return tool.model_dump()["name"]
    return None


@mlflow.trace(name="lookup", span_type=SpanType.TOOL)
def lookup(query: str) -> str:
    """The agent's own tool: a deterministic lookup."""
    return f"result for {query}"


@mlflow.trace(name="plan", span_type=SpanType.CHAIN)
def plan(request: ResponsesAgentRequest) -> dict[str, Any]:
    """Decide the turn from the input: ``{"kind", "text", ...}`` (see the module docstring)."""
    items = [item.model_dump(exclude_none=True) for item in request.input]
    last_user = _last_user_index(items)
    text = _text_of(items[last_user]["content"]) if last_user >= 0 else ""
    lowered = text.lower()
    steps: dict[str, Any] = {
        "text": text,
        "think": THINK_WORD in lowered,
        "lifecycle": LIFECYCLE_WORD in lowered,
    }
    if EXPLODE_WORD in lowered:
        return steps | {"kind": "explode"}
    if result := _tool_result(items):
        return steps | {"kind": "answer", "answer": f"{result[0]} returned: {result[1]}"}
    if LOOKUP_WORD in lowered:
        return steps | {"kind": "internal_tool", "output": lookup(text)}
    if tool := _requested_tool(request, text):
        return steps | {"kind": "function_call", "tool": tool}
    return steps | {"kind": "answer", "answer": text}


def _done(item: dict[str, Any]) -> ResponsesAgentStreamEvent:
    return ResponsesAgentStreamEvent(type="response.output_item.done", item=item)


def _text_events(text: str) -> list[ResponsesAgentStreamEvent]:
    """One delta per word (whitespace kept), then the whole message item."""
    deltas = [piece for piece in re.findall(r"\S*\s*", text) if piece]
    events = [
        ResponsesAgentStreamEvent(**ResponsesAgent.create_text_delta(delta, MESSAGE_ID))
        for delta in deltas
    ]
    return [*events, _done(ResponsesAgent.create_text_output_item(text, MESSAGE_ID))]


def _turn_events(steps: dict[str, Any]) -> list[ResponsesAgentStreamEvent]:
    text = steps["text"]
    events: list[ResponsesAgentStreamEvent] = []
    if steps["think"]:
        reasoning = f"The user wrote {len(text.split())} words."
        events.append(_done(ResponsesAgent.create_reasoning_item(REASONING_ID, reasoning)))
    arguments = json.dumps({"query": text})
    if steps["kind"] == "function_call":
        call = ResponsesAgent.create_function_call_item(
            FUNCTION_CALL_ID, CALL_ID, steps["tool"], arguments
        )
        return [*events, _done(call)]
    if steps["kind"] == "internal_tool":
        call = ResponsesAgent.create_function_call_item(
            FUNCTION_CALL_ID, INTERNAL_CALL_ID, LOOKUP_WORD, arguments
        )
        output = ResponsesAgent.create_function_call_output_item(INTERNAL_CALL_ID, steps["output"])
        return [*events, _done(call), _done(output), *_text_events(f"Found: {steps['output']}")]
    return [*events, *_text_events(steps["answer"])]


def _response(output: list[dict[str, Any]], status: str) -> dict[str, Any]:
    body: dict[str, Any] = {"id": RESPONSE_ID, "object": "response", "status": status}
    return body | {"output": output} | ({"usage": USAGE} if status == "completed" else {})


def _with_lifecycle(events: list[ResponsesAgentStreamEvent]) -> list[ResponsesAgentStreamEvent]:
    """Wrap a turn the way OpenAI-style agents stream it (created, added, ..., completed)."""
    created = _response([], "in_progress")
    wrapped = [ResponsesAgentStreamEvent(type="response.created", response=created)]
    items = []
    for event in events:
        if event.type == "response.output_item.done":
            item = event.model_dump()["item"]
            items.append(item)
            wrapped.append(ResponsesAgentStreamEvent(type="response.output_item.added", item=item))
        wrapped.append(event)
    completed = _response(items, "completed")
    return [*wrapped, ResponsesAgentStreamEvent(type="response.completed", response=completed)]


def _run(
    request: ResponsesAgentRequest, steps: dict[str, Any]
) -> Iterator[ResponsesAgentStreamEvent]:
    """The events of one turn; raises after two deltas when asked to explode."""
    if steps["kind"] == "explode":
        for delta in PARTIAL_DELTAS:
            yield ResponsesAgentStreamEvent(**ResponsesAgent.create_text_delta(delta, MESSAGE_ID))
        raise RuntimeError(ERROR_MESSAGE)
    # Closed before the first yield: a span left open across yields would outlive the turn.
    with mlflow.start_span(name="respond", span_type=SpanType.LLM) as span:
        span.set_inputs({"kind": steps["kind"], "text": steps["text"]})
        events = _turn_events(steps)
        span.set_outputs([event.model_dump(exclude_none=True) for event in events])
    if steps["lifecycle"]:
        events = _with_lifecycle(events)
    if request.custom_inputs is not None:
        last_done = max(i for i, e in enumerate(events) if e.type == "response.output_item.done")
        events[last_done].custom_outputs = dict(request.custom_inputs)
    yield from events


@stream()
async def stream_turn(request: ResponsesAgentRequest) -> AsyncIterator[ResponsesAgentStreamEvent]:
    """The agent, streaming (registered with the AgentServer's ``@stream()``)."""
    for event in _run(request, plan(request)):
        yield event


@invoke()
async def invoke_turn(request: ResponsesAgentRequest) -> ResponsesAgentResponse:
    """The agent, whole (registered with ``@invoke()``): the items the stream would send."""
    steps = plan(request)
    events = list(_run(request, steps))
    output = [e.model_dump()["item"] for e in events if e.type == "response.output_item.done"]
    usage = USAGE if steps["lifecycle"] else None
    return ResponsesAgentResponse(output=output, custom_outputs=request.custom_inputs, usage=usage)
