"""The test agent (``tests.support.agent_app``) traced like a Databricks endpoint: the second
hop of the two-hop tests (see ``tests.support.serving_tracing``)."""

from __future__ import annotations

from tests.support import agent_app
from tests.support.serving_tracing import ServingTracing

NAME = "second-agent"

app = ServingTracing(agent_app.app, NAME)
