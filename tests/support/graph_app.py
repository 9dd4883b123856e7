"""MLflow's real ``AgentServer`` serving one graph of ``tests.support.graphs`` through
``as_responses_agent``, the way a Databricks App serves a LangGraph agent.

The graph is named by the ``SERVED_GRAPH`` environment variable (``start_agent_server(...,
env={"SERVED_GRAPH": "react"})``). The handlers use the agent's async API, as an App should
(the in-process tests cover the sync one).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

from mlflow.genai.agent_server import AgentServer, invoke, stream

from langchain_dbx_serving.serving import as_responses_agent
from tests.support.graphs import GRAPHS

agent = as_responses_agent(GRAPHS[os.environ["SERVED_GRAPH"]]())
agent_server = AgentServer("ResponsesAgent")
app = agent_server.app


@invoke()
async def handle(request: Any) -> Any:
    return await agent.apredict(request)


@stream()
async def handle_stream(request: Any) -> AsyncIterator[Any]:
    async for event in agent.apredict_stream(request):
        yield event
