"""LangChain and LangGraph components for Databricks Model Serving endpoints.

Public names are imported on first use (PEP 562), so ``import langchain_dbx_serving`` stays
fast: langchain-core's chat model machinery, databricks-sdk, mlflow and vcrpy load only when
the names that need them are touched.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from langchain_dbx_serving.errors import (
    AgentError,
    APIStatusError,
    AuthenticationError,
    BackgroundTimeoutError,
    BadRequestError,
    ConfigurationError,
    DatabricksServingError,
    EndpointNotFoundError,
    MalformedResponseError,
    ModelRuleError,
    PermissionDeniedError,
    RateLimitError,
    RequestEncodingError,
    ResponseError,
    RunNotFoundError,
    ServerError,
    ServiceUnavailableError,
    ServingConnectionError,
    ServingTimeoutError,
    StreamInterruptedError,
    TraceParseError,
    TransportError,
    UnsupportedOperationError,
)

if TYPE_CHECKING:
    from langchain_dbx_serving.agents import AgentEndpoint, AgentEvent, AgentResponse, AgentToolCall
    from langchain_dbx_serving.approvals import ApprovalRequest, approval_message, approval_requests
    from langchain_dbx_serving.background import BackgroundRun
    from langchain_dbx_serving.chat_models import ChatDatabricksResponses, ChatDatabricksServing
    from langchain_dbx_serving.embeddings import DatabricksServingEmbeddings
    from langchain_dbx_serving.router import EndpointRouter, Route, RouteResult
    from langchain_dbx_serving.serving import as_responses_agent
    from langchain_dbx_serving.tracing import (
        CollectedTrace,
        Span,
        Trace,
        TraceCollector,
        get_trace,
        get_trace_id,
    )

__version__ = "0.1.0"

_LAZY = {
    "AgentEndpoint": "langchain_dbx_serving.agents",
    "AgentEvent": "langchain_dbx_serving.agents",
    "AgentResponse": "langchain_dbx_serving.agents",
    "AgentToolCall": "langchain_dbx_serving.agents",
    "ApprovalRequest": "langchain_dbx_serving.approvals",
    "BackgroundRun": "langchain_dbx_serving.background",
    "approval_message": "langchain_dbx_serving.approvals",
    "approval_requests": "langchain_dbx_serving.approvals",
    "ChatDatabricksResponses": "langchain_dbx_serving.chat_models",
    "ChatDatabricksServing": "langchain_dbx_serving.chat_models",
    "CollectedTrace": "langchain_dbx_serving.tracing",
    "DatabricksServingEmbeddings": "langchain_dbx_serving.embeddings",
    "EndpointRouter": "langchain_dbx_serving.router",
    "Route": "langchain_dbx_serving.router",
    "RouteResult": "langchain_dbx_serving.router",
    "Span": "langchain_dbx_serving.tracing",
    "Trace": "langchain_dbx_serving.tracing",
    "TraceCollector": "langchain_dbx_serving.tracing",
    "get_trace": "langchain_dbx_serving.tracing",
    "get_trace_id": "langchain_dbx_serving.tracing",
    "as_responses_agent": "langchain_dbx_serving.serving",
}

__all__ = [
    "APIStatusError",
    "AgentEndpoint",
    "AgentError",
    "AgentEvent",
    "AgentResponse",
    "AgentToolCall",
    "ApprovalRequest",
    "AuthenticationError",
    "BackgroundRun",
    "BackgroundTimeoutError",
    "BadRequestError",
    "ChatDatabricksResponses",
    "ChatDatabricksServing",
    "CollectedTrace",
    "ConfigurationError",
    "DatabricksServingEmbeddings",
    "DatabricksServingError",
    "EndpointNotFoundError",
    "EndpointRouter",
    "MalformedResponseError",
    "ModelRuleError",
    "PermissionDeniedError",
    "RateLimitError",
    "RequestEncodingError",
    "ResponseError",
    "Route",
    "RunNotFoundError",
    "RouteResult",
    "ServerError",
    "ServiceUnavailableError",
    "ServingConnectionError",
    "ServingTimeoutError",
    "Span",
    "StreamInterruptedError",
    "Trace",
    "TraceCollector",
    "TraceParseError",
    "TransportError",
    "UnsupportedOperationError",
    "approval_message",
    "approval_requests",
    "__version__",
    "get_trace",
    "get_trace_id",
    "as_responses_agent",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'langchain_dbx_serving' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
