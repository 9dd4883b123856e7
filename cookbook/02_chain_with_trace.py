"""A chain over an agent endpoint, with the agent's returned MLflow trace printed as a tree.

``prompt | agent.bind(custom_inputs=...) | StrOutputParser()`` asks the agent with
``return_trace=True``. The chain's output is only text, so a ``TraceCollector`` passed in the
config picks up the trace the endpoint returned; ``Trace.tree()`` prints it.

Offline by default: a local serving endpoint on 127.0.0.1 plays a support agent that calls a
tool. Live: set DATABRICKS_HOST and DATABRICKS_TOKEN, and DBX_AGENT_ENDPOINT to a ResponsesAgent
endpoint of your workspace.

    python cookbook/02_chain_with_trace.py
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterator

from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

from langchain_dbx_serving import ChatDatabricksResponses, TraceCollector
from langchain_dbx_serving.testing import BackendRequest, LocalEndpoint, Reply, ToolStep

ENDPOINT = "support-agent"


def support_agent(request: BackendRequest) -> Reply:
    """A stand-in agent: looks the order up with a tool, answers, echoes the customer tier."""
    tier = (request.custom_inputs or {}).get("customer_tier", "standard")
    lookup = ToolStep("lookup_order", {"order_id": 42}, "shipped yesterday via UPS", id="call_1")
    return Reply.text(
        f"Order 42 shipped yesterday via UPS ({tier} support).",
        steps=[lookup],
        usage=(118, 14),
        custom_outputs={"customer_tier": tier},
    )


@contextlib.contextmanager
def agent_model() -> Iterator[ChatDatabricksResponses]:
    if os.environ.get("DATABRICKS_HOST") and os.environ.get("DATABRICKS_TOKEN"):
        yield ChatDatabricksResponses(
            endpoint=os.environ.get("DBX_AGENT_ENDPOINT", ENDPOINT), return_trace=True
        )
        return
    with LocalEndpoint({ENDPOINT: support_agent}) as local:
        print(f"(offline: local serving endpoint at {local.base_url})\n")
        yield ChatDatabricksResponses(
            endpoint=ENDPOINT, host=local.host, token=local.token, return_trace=True
        )


def main() -> None:
    prompt = ChatPromptTemplate.from_messages(
        [("system", "You are a support agent."), ("user", "{question}")]
    )
    with agent_model() as agent:
        chain = prompt | agent.bind(custom_inputs={"customer_tier": "gold"}) | StrOutputParser()

        collector = TraceCollector()
        answer = chain.invoke({"question": "Where is order 42?"}, {"callbacks": [collector]})
        print("answer:", answer)

        for entry in collector:
            print(f"collected: {entry.trace_id} from {entry.endpoint}")
            trace = entry.parsed()
            if trace is None:
                print("(the endpoint returned a trace id only)")
                continue
            print(trace.tree())
            for tool in trace.find(span_type="TOOL"):
                print(f"tool {tool.name}: {tool.inputs} -> {tool.outputs}")

        # The same trace is a custom event in astream_events(version="v2").
        async def trace_events() -> list[str]:
            events = chain.astream_events({"question": "Where is order 42?"}, version="v2")
            return [e["name"] async for e in events if e["event"] == "on_custom_event"]

        print("astream_events custom events:", asyncio.run(trace_events()))


if __name__ == "__main__":
    main()
