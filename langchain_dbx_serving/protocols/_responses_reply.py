"""What a responses reply says about itself, accumulated event by event: ``ResponseMetadata``.

The responses counterpart of the chat side's ``ReplyMetadata`` (``_chat_wire``): the reply id,
status, model, ``incomplete_details``, ``custom_outputs``, ``databricks_output`` (trace,
request id), AgentServer's trace id and usage. ``decode_reply`` fills one from a whole reply;
the stream decoder fills one from every event and emits it once, on the last chunk, because
LangChain adds chunks with ``merge_dicts`` (strings concatenate, usage adds up).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages.ai import UsageMetadata, add_usage

from langchain_dbx_serving.protocols._common import (
    as_str,
    databricks_output_metadata,
    map_usage,
)
from langchain_dbx_serving.protocols._responses_items import ResponseFields


def trace_id_in(response: Mapping[str, Any]) -> str | None:
    """``metadata.trace_id`` of a reply (MLflow AgentServer with ``x-mlflow-return-trace-id``)."""
    metadata = response.get("metadata")
    if isinstance(metadata, Mapping):
        return as_str(metadata.get("trace_id"))
    return None


@dataclass
class ResponseMetadata:
    """The metadata and usage of one responses reply (whole, or streamed over many events).

    Example:
        >>> meta = ResponseMetadata()
        >>> body = {"id": "r1", "status": "completed", "output": [],
        ...         "usage": {"input_tokens": 2, "output_tokens": 3}}
        >>> meta.absorb_response(body, ResponseFields.model_validate(body))
        >>> meta.build(output=[])["id"], meta.usage["total_tokens"]
        ('r1', 5)
    """

    response_id: str | None = None
    event_id: str | None = None  # the request id Model Serving puts on every event
    status: str | None = None
    model: str | None = None
    incomplete_details: Any = None
    custom_outputs: dict[str, Any] | None = None
    databricks: dict[str, Any] = field(default_factory=dict)
    agent_trace_id: str | None = None  # AgentServer's own (a trace_id event, metadata.trace_id)
    usages: dict[str, UsageMetadata] = field(default_factory=dict)

    # ---- reading ---------------------------------------------------------------------------

    @property
    def id(self) -> str | None:
        """The response id, else the request id that Model Serving puts on every event."""
        return self.response_id or self.event_id

    @property
    def trace_id(self) -> str | None:
        """The MLflow trace id (AgentServer's own, else the returned trace's)."""
        return self.agent_trace_id or self.databricks.get("trace_id")

    @property
    def trace(self) -> Any:
        """The MLflow trace dict from ``databricks_output``, when the endpoint returned one."""
        return self.databricks.get("trace")

    @property
    def request_id(self) -> str | None:
        """The Databricks request id, for errors: ``databricks_output``'s, else the events'."""
        return self.databricks.get("databricks_request_id") or self.event_id

    @property
    def usage(self) -> UsageMetadata | None:
        """Token usage, summed over the response lifecycles seen."""
        total: UsageMetadata | None = None
        for usage in self.usages.values():
            total = add_usage(total, usage) if total is not None else usage
        return total

    # ---- absorbing -------------------------------------------------------------------------

    def absorb_event(self, event: Mapping[str, Any], *, with_id: bool) -> None:
        """Fields any stream event may carry: ``custom_outputs`` (merged key by key, as on the
        chat-completions side), ``databricks_output``, ``trace_id`` and (``with_id``) ``id``."""
        # Once per stream event: nothing to do for a key the event does not have.
        if "custom_outputs" in event:
            self._absorb_custom_outputs(event["custom_outputs"])
        if "databricks_output" in event:
            self._absorb_databricks(event)
        if isinstance(event.get("trace_id"), str):
            self.agent_trace_id = event["trace_id"]
        if with_id and isinstance(event.get("id"), str) and self.event_id is None:
            self.event_id = event["id"]

    def absorb_created(self, response: ResponseFields) -> None:
        """``response.created``: the id and model of a new lifecycle."""
        self.response_id = response.id or self.response_id
        self.model = response.model or self.model

    def absorb_response(self, body: Mapping[str, Any], response: ResponseFields) -> None:
        """A finished response (a whole reply, ``response.completed``): one more lifecycle."""
        self.response_id = response.id or self.response_id
        self.model = response.model or self.model
        self.status = response.status or self.status
        self.incomplete_details = response.incomplete_details or self.incomplete_details
        self._absorb_custom_outputs(body.get("custom_outputs"))
        self._absorb_databricks(body)
        self.agent_trace_id = trace_id_in(body) or self.agent_trace_id
        usage = map_usage(response.usage)
        if usage is not None:
            self.usages[response.id or f"#{len(self.usages)}"] = usage

    def _absorb_custom_outputs(self, custom: Any) -> None:
        if isinstance(custom, dict):
            self.custom_outputs = {**(self.custom_outputs or {}), **custom}

    def _absorb_databricks(self, obj: Mapping[str, Any]) -> None:
        found = databricks_output_metadata(obj)
        if found:
            self.databricks = found

    # ---- emitting --------------------------------------------------------------------------

    def build(self, *, output: list[Any]) -> dict[str, Any]:
        """``response_metadata`` of the reply: the same keys for a whole and a streamed one."""
        meta: dict[str, Any] = {}
        if self.id is not None:
            meta["id"] = self.id
        if self.status is not None:
            meta["status"] = self.status
        if self.model is not None:
            meta["model_name"] = self.model
        if self.incomplete_details is not None:
            meta["incomplete_details"] = self.incomplete_details
        if self.custom_outputs is not None:
            meta["custom_outputs"] = dict(self.custom_outputs)
        meta.update(self.databricks)
        if self.agent_trace_id is not None:
            # AgentServer's own trace id wins over the one inside a returned trace.
            meta["trace_id"] = self.agent_trace_id
        meta["output"] = output
        return meta
