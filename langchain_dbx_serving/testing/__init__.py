"""Test tooling: a local Databricks Model Serving endpoint with scripted or model backends.

Names are imported lazily (PEP 562), so ``import langchain_dbx_serving.testing`` loads neither
starlette nor uvicorn until a name such as :class:`LocalEndpoint` is used.

Example::

    from langchain_dbx_serving.testing import LocalEndpoint, Reply

    with LocalEndpoint([Reply.text("Hello!")]) as ep:
        print(ep.base_url, ep.token)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from langchain_dbx_serving.testing._app import RecordedRequest
    from langchain_dbx_serving.testing._long_running import LongRunningMode
    from langchain_dbx_serving.testing.backends import (
        Backend,
        BackendRequest,
        ChatModelBackend,
        EchoBackend,
        EmbeddingBackend,
        EmbeddingsBackend,
        FunctionBackend,
        HashEmbeddingBackend,
        ResponsesAgentBackend,
        ScriptedBackend,
        as_backend,
    )
    from langchain_dbx_serving.testing.endpoint import DEFAULT_TOKEN, LocalEndpoint
    from langchain_dbx_serving.testing.replies import (
        Delta,
        ErrorReply,
        Fault,
        FaultPlan,
        Quirks,
        RawReply,
        Reply,
        ToolCall,
        ToolCallDelta,
        ToolStep,
        Usage,
        reply_from_dict,
    )

__all__ = [
    "DEFAULT_TOKEN",
    "Backend",
    "BackendRequest",
    "ChatModelBackend",
    "Delta",
    "EchoBackend",
    "EmbeddingBackend",
    "EmbeddingsBackend",
    "ErrorReply",
    "Fault",
    "FaultPlan",
    "FunctionBackend",
    "HashEmbeddingBackend",
    "LocalEndpoint",
    "LongRunningMode",
    "Quirks",
    "RawReply",
    "RecordedRequest",
    "Reply",
    "ResponsesAgentBackend",
    "ScriptedBackend",
    "ToolCall",
    "ToolCallDelta",
    "ToolStep",
    "Usage",
    "as_backend",
    "reply_from_dict",
]

_MODULES = {
    "DEFAULT_TOKEN": "endpoint",
    "LocalEndpoint": "endpoint",
    "RecordedRequest": "_app",
    "LongRunningMode": "_long_running",
    "Backend": "backends",
    "BackendRequest": "backends",
    "ChatModelBackend": "backends",
    "EchoBackend": "backends",
    "EmbeddingBackend": "backends",
    "EmbeddingsBackend": "backends",
    "HashEmbeddingBackend": "backends",
    "FunctionBackend": "backends",
    "ResponsesAgentBackend": "backends",
    "ScriptedBackend": "backends",
    "as_backend": "backends",
    "Delta": "replies",
    "ErrorReply": "replies",
    "Fault": "replies",
    "FaultPlan": "replies",
    "Quirks": "replies",
    "RawReply": "replies",
    "Reply": "replies",
    "ToolCall": "replies",
    "ToolCallDelta": "replies",
    "ToolStep": "replies",
    "Usage": "replies",
    "reply_from_dict": "replies",
}


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
