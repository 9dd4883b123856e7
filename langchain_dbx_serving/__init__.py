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
    BadRequestError,
    ConfigurationError,
    DatabricksServingError,
    EndpointNotFoundError,
    MalformedResponseError,
    PermissionDeniedError,
    RateLimitError,
    ResponseError,
    ServerError,
    ServiceUnavailableError,
    ServingConnectionError,
    ServingTimeoutError,
    StreamInterruptedError,
    TransportError,
)

if TYPE_CHECKING:
    from langchain_dbx_serving.agents import AgentEndpoint, AgentEvent, AgentResponse, AgentToolCall
    from langchain_dbx_serving.chat_models import ChatDatabricksResponses, ChatDatabricksServing

__version__ = "0.1.0"

_LAZY = {
    "AgentEndpoint": "langchain_dbx_serving.agents",
    "AgentEvent": "langchain_dbx_serving.agents",
    "AgentResponse": "langchain_dbx_serving.agents",
    "AgentToolCall": "langchain_dbx_serving.agents",
    "ChatDatabricksResponses": "langchain_dbx_serving.chat_models",
    "ChatDatabricksServing": "langchain_dbx_serving.chat_models",
}

__all__ = [
    "APIStatusError",
    "AgentEndpoint",
    "AgentError",
    "AgentEvent",
    "AgentResponse",
    "AgentToolCall",
    "AuthenticationError",
    "BadRequestError",
    "ChatDatabricksResponses",
    "ChatDatabricksServing",
    "ConfigurationError",
    "DatabricksServingError",
    "EndpointNotFoundError",
    "MalformedResponseError",
    "PermissionDeniedError",
    "RateLimitError",
    "ResponseError",
    "ServerError",
    "ServiceUnavailableError",
    "ServingConnectionError",
    "ServingTimeoutError",
    "StreamInterruptedError",
    "TransportError",
    "__version__",
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
