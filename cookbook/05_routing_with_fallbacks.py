"""Routing between agent endpoints with a classifier, and falling back when one is rate-limited.

An ``EndpointRouter`` asks a classifier chat model (structured output over the route names and
descriptions) which route should answer: a billing agent, a shipping agent (both
``AgentEndpoint``s) or a general chat model. The billing agent is over its rate limit, so its
questions fall back to the general model; ``RouteResult`` says which route answered and which
were tried first. Streaming passes through the router, fallback included.

Offline by default: a local serving endpoint on 127.0.0.1 serves all four endpoints, the billing
agent answering every request with ``429 REQUEST_LIMIT_EXCEEDED``. Live: set DATABRICKS_HOST and
DATABRICKS_TOKEN, and DBX_CLASSIFIER_ENDPOINT, DBX_CHAT_ENDPOINT, DBX_BILLING_AGENT and
DBX_SHIPPING_AGENT to endpoints of your workspace (the agents are ResponsesAgent endpoints).

    python cookbook/05_routing_with_fallbacks.py
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from langchain_dbx_serving import AgentEndpoint, ChatDatabricksServing, EndpointRouter, Route
from langchain_dbx_serving.testing import BackendRequest, LocalEndpoint, Reply, ToolStep

KEYWORDS = {"billing": ("refund", "invoice", "charged"), "shipping": ("order", "track", "parcel")}


def classifier_model(request: BackendRequest) -> Reply:
    """Picks a route by keywords, answering through the structured-output tool it was given."""
    question = request.messages[-1].text.lower()
    route = next((r for r, words in KEYWORDS.items() if any(w in question for w in words)), None)
    schema_tool = request.tools[0]["function"]["name"]
    return Reply.tool_call(schema_tool, {"route": route or "general"}, usage=(90, 6))


def shipping_agent(request: BackendRequest) -> Reply:
    """A stand-in shipping agent that tracks the parcel with its own tool."""
    step = ToolStep("track_parcel", {"order_id": 42}, "in transit, Lyon hub", id="call_1")
    return Reply.text("Order 42 is in transit, now at the Lyon hub.", steps=[step])


def general_model(request: BackendRequest) -> Reply:
    """A stand-in general chat model: a short, polite answer naming the topic."""
    question = request.messages[-1].text.rstrip("?")
    return Reply.text(f"General help: I noted your question ({question}) for our team.")


RATE_LIMITED = Reply.error(429, "REQUEST_LIMIT_EXCEEDED", "billing-agent is over its rate limit")


@contextlib.contextmanager
def endpoints() -> Iterator[dict[str, Any]]:
    """Connection settings per endpoint: the workspace, or one local endpoint serving them all."""
    if os.environ.get("DATABRICKS_HOST") and os.environ.get("DATABRICKS_TOKEN"):
        yield {
            "classifier": os.environ.get("DBX_CLASSIFIER_ENDPOINT", "databricks-claude-sonnet-4"),
            "general": os.environ.get("DBX_CHAT_ENDPOINT", "databricks-claude-sonnet-4"),
            "billing": os.environ.get("DBX_BILLING_AGENT", "billing-agent"),
            "shipping": os.environ.get("DBX_SHIPPING_AGENT", "shipping-agent"),
            "auth": {},
        }
        return
    backends = {
        "classifier": classifier_model,
        "general": general_model,
        "billing-agent": lambda request: RATE_LIMITED,
        "shipping-agent": shipping_agent,
    }
    with LocalEndpoint(backends) as local:
        print(f"(offline: local serving endpoint at {local.base_url})\n")
        yield {
            "classifier": "classifier",
            "general": "general",
            "billing": "billing-agent",
            "shipping": "shipping-agent",
            "auth": {"host": local.host, "token": local.token},
        }


def build_router(names: dict[str, Any]) -> EndpointRouter:
    auth = names["auth"]
    routes = [
        Route(
            name="billing",
            description="invoices, refunds, double charges",
            # No retries here: the router's fallback is the answer to a rate limit.
            runnable=AgentEndpoint(names["billing"], max_retries=0, **auth),
            fallbacks=["general"],
        ),
        Route(
            name="shipping",
            description="where an order is, delivery and tracking",
            runnable=AgentEndpoint(names["shipping"], **auth),
            fallbacks=["general"],
        ),
        Route(
            name="general",
            description="anything else",
            runnable=ChatDatabricksServing(endpoint=names["general"], max_tokens=200, **auth),
        ),
    ]
    classifier = ChatDatabricksServing(endpoint=names["classifier"], temperature=0, **auth)
    return EndpointRouter(routes=routes, classifier=classifier)


def main() -> None:
    with endpoints() as names:
        router = build_router(names)
        questions = [
            "Where is my order 42?",
            "I was charged twice, can I get a refund?",
            "Do you have gift cards?",
        ]
        for question in questions:
            result = router.invoke(question)
            print("question:", question)
            print(f"  route: {result.route} | fell_back_from: {result.fell_back_from}")
            print("  answer:", result.output.text)  # AgentResponse and AIMessage both have .text

        print("\nstreaming:", end=" ")
        for chunk in router.stream("Please send me the invoice for May."):
            if chunk.output.text:
                print(chunk.output.text, end="|", flush=True)
        print(f"\n  route: {chunk.route} | fell_back_from: {chunk.fell_back_from}")


if __name__ == "__main__":
    main()
