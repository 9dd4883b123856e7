"""A ``ResponsesAgent`` on MLflow's ``AgentServer`` that delegates to a second agent through
``ChatDatabricksResponses``: the first hop of the two-hop tests.

Set ``SECOND_AGENT_URL`` to the second agent's AgentServer, and ``PROPAGATE_TRACE_CONTEXT=0``
to call it with propagation off (the second agent then returns its trace, which is merged).
Each turn asks the second agent ``lookup <text>`` inside a ``delegate`` span and answers with
its reply. The app is traced like a Databricks endpoint (``tests.support.serving_tracing``).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import mlflow
from mlflow.genai.agent_server import AgentServer, invoke, stream
from mlflow.pyfunc import ResponsesAgent
from mlflow.types.responses import (
    ResponsesAgentRequest,
    ResponsesAgentResponse,
    ResponsesAgentStreamEvent,
)

from langchain_dbx_serving import ChatDatabricksResponses
from tests.support.serving_tracing import ServingTracing

NAME = "first-agent"

second = ChatDatabricksResponses(
    endpoint="second-agent",
    base_url=os.environ.get("SECOND_AGENT_URL", "http://127.0.0.1:9"),
    token="unused-local-token",
    return_trace=True,
    propagate_trace_context=os.environ.get("PROPAGATE_TRACE_CONTEXT", "1") == "1",
)


def _text(request: ResponsesAgentRequest) -> str:
    content = request.input[-1].model_dump().get("content")
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content or [] if isinstance(part, dict))


@mlflow.trace(name="delegate", span_type="CHAIN")
async def delegate(text: str) -> str:
    reply = await second.ainvoke(f"lookup {text}")
    return reply.text


def _item(text: str) -> dict:
    return ResponsesAgent.create_text_output_item(text, "msg_first")


@invoke()
async def invoke_turn(request: ResponsesAgentRequest) -> ResponsesAgentResponse:
    return ResponsesAgentResponse(output=[_item(await delegate(_text(request)))])


@stream()
async def stream_turn(request: ResponsesAgentRequest) -> AsyncIterator[ResponsesAgentStreamEvent]:
    answer = await delegate(_text(request))
    yield ResponsesAgentStreamEvent(type="response.output_item.done", item=_item(answer))


app = ServingTracing(AgentServer("ResponsesAgent").app, NAME)
