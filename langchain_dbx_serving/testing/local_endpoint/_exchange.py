"""One request being answered: what the encoders, faults and trace of that answer share."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from langchain_dbx_serving.testing.local_endpoint._trace import (
    TraceFacts,
    TraceRecorder,
    new_trace_id,
)
from langchain_dbx_serving.testing.local_endpoint._wire import WireContext
from langchain_dbx_serving.testing.local_endpoint.replies import Fault, Reply

__all__ = ["Exchange"]


@dataclass
class Exchange:
    """One request being answered.

    Set by the app when the request arrives (endpoint, wire shape, body, wire context, the
    planned fault and the MLflow trace recorder); filled in by the encoders as the reply is
    encoded (``final``, ``response``, ``error``, ``cut_after``).
    """

    endpoint: str
    shape: str
    body: Mapping[str, Any]
    ctx: WireContext
    start_ns: int
    agent: bool
    trace_header: bool
    trace_id: str = field(default_factory=new_trace_id)
    final: Reply = field(default_factory=Reply)
    response: Any = None  # the whole-reply equivalent, for the trace's outputs
    error: str | None = None
    cut_after: int | None = None
    fault: Fault | None = None  # from the endpoint's FaultPlan
    recorder: TraceRecorder = field(default_factory=TraceRecorder)  # MLflow, when usable

    @property
    def wants_trace(self) -> bool:
        options = self.body.get("databricks_options") or {}
        return options.get("return_trace") is True

    def databricks_output(self) -> dict[str, Any]:
        options = self.body.get("databricks_options") or {}
        facts = TraceFacts(
            endpoint=self.endpoint,
            agent=self.agent,
            request={k: v for k, v in self.body.items() if k != "databricks_options"},
            response=self.response,
            answer=self.final.full_text,
            start_ns=self.start_ns,
            end_ns=time.time_ns(),
            trace_id=self.trace_id,
            usage=self.final.usage,
            steps=self.final.steps,
            client_request_id=self.body.get("client_request_id")
            or options.get("client_request_id"),
            error=self.error,
        )
        trace = self.recorder.finish(facts)
        return {"trace": trace, "databricks_request_id": self.ctx.request_id}
