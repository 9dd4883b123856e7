"""``ChatDatabricksServing``: chat-completions endpoints (FMAPI, external, custom, ChatAgent)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal, get_args

from pydantic import field_validator

from langchain_dbx_serving._paths import endpoint_segment
from langchain_dbx_serving.chat_models import _routes
from langchain_dbx_serving.chat_models._base import DatabricksChatBase
from langchain_dbx_serving.protocols import chat_completions
from langchain_dbx_serving.protocols._seam import WireProtocol


class ChatDatabricksServing(DatabricksChatBase):
    """Chat model for Databricks serving endpoints that speak chat completions.

    Works with Foundation Model APIs, external models, custom chat models and legacy
    ChatAgent agents. ``custom_inputs``, ``databricks_options`` and any other body key can be
    given to the constructor or bound per call; ``custom_outputs`` and returned traces come back
    in ``response_metadata``. A returned trace also reaches ``on_llm_end`` handlers, a
    ``databricks_trace`` custom event (``TraceCollector``, ``astream_events``) and the caller's
    active MLflow span (``merge_mlflow_trace``); read it with ``get_trace``.

    Example:
        .. code-block:: python

            from langchain_dbx_serving import ChatDatabricksServing

            llm = ChatDatabricksServing(endpoint="databricks-claude-sonnet-4", max_tokens=256)
            llm.invoke("Hello!").text

            agent = llm.bind(custom_inputs={"user": "ana"}, return_trace=True)
            reply = agent.invoke("What changed in Q3?")
            reply.response_metadata["custom_outputs"], reply.response_metadata["trace_id"]
            print(get_trace(reply).tree())  # from langchain_dbx_serving import get_trace

            for chunk in llm.stream("Tell me a story"):
                print(chunk.text, end="")

            thinker = ChatDatabricksServing(  # one reasoning knob, mapped per model family
                endpoint="databricks-claude-sonnet-4-5", max_tokens=8192,
                reasoning={"budget_tokens": 4096},
            )
    """

    route: Literal["invocations", "chat/completions", "ai-gateway", "ai-gateway/openai"] = (
        "invocations"
    )
    """``invocations`` POSTs ``/serving-endpoints/{endpoint}/invocations`` (every endpoint type);
    ``chat/completions`` uses the OpenAI-compatible ``/serving-endpoints/chat/completions``;
    ``ai-gateway`` AI Gateway's unified ``/ai-gateway/mlflow/v1/chat/completions`` and
    ``ai-gateway/openai`` its OpenAI route ``/ai-gateway/openai/v1/chat/completions`` (the
    endpoint is then a served model id such as ``system.ai.claude-sonnet-4-5``)."""

    @field_validator("route", mode="before")
    @classmethod
    def _known_route(cls, value: Any) -> str:
        """A route this class serves, else a ConfigurationError naming those it does."""
        supported = get_args(cls.model_fields["route"].annotation)
        return _routes.check_route(value, supported, cls.__name__)

    _protocol: ClassVar[WireProtocol] = chat_completions.PROTOCOL

    @property
    def _llm_type(self) -> str:
        return "databricks-serving-chat"

    def _url(self, endpoint: str) -> str:
        if self.route in _routes.GATEWAY_ROOTS:
            return _routes.gateway_url(self, self.route, "chat/completions")
        if self.route == "chat/completions":
            return f"{self._root_url()}/chat/completions"
        return f"{self._root_url()}/{endpoint_segment(endpoint)}/invocations"

    def _route_params(self, endpoint: str) -> dict[str, Any]:
        return {"model": endpoint} if self.route != "invocations" else {}
