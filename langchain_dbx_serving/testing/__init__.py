"""Test tooling in three rooms: the local endpoint, the cassette plugin and the secret scanner.

- :mod:`~langchain_dbx_serving.testing.local_endpoint`: a local Databricks Model Serving
  endpoint with scripted or model backends (doors: ``endpoint``, ``replies``, ``backends``);
- :mod:`~langchain_dbx_serving.testing.cassettes`: the pytest plugin that records and replays
  serving traffic (doors: ``plugin``, ``record``);
- :mod:`~langchain_dbx_serving.testing.scan`: token-shaped strings in files and cassettes.

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
    from langchain_dbx_serving.testing.local_endpoint._long_running import LongRunningMode
    from langchain_dbx_serving.testing.local_endpoint._recording import RecordedRequest
    from langchain_dbx_serving.testing.local_endpoint.backends import (
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
    from langchain_dbx_serving.testing.local_endpoint.replies import (
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
    from langchain_dbx_serving.testing.local_endpoint.server import DEFAULT_TOKEN, LocalEndpoint

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
    "DEFAULT_TOKEN": "local_endpoint.server",
    "LocalEndpoint": "local_endpoint.server",
    "RecordedRequest": "local_endpoint._recording",
    "LongRunningMode": "local_endpoint._long_running",
    "Backend": "local_endpoint.backends",
    "BackendRequest": "local_endpoint.backends",
    "ChatModelBackend": "local_endpoint.backends",
    "EchoBackend": "local_endpoint.backends",
    "EmbeddingBackend": "local_endpoint.backends",
    "EmbeddingsBackend": "local_endpoint.backends",
    "HashEmbeddingBackend": "local_endpoint.backends",
    "FunctionBackend": "local_endpoint.backends",
    "ResponsesAgentBackend": "local_endpoint.backends",
    "ScriptedBackend": "local_endpoint.backends",
    "as_backend": "local_endpoint.backends",
    "Delta": "local_endpoint.replies",
    "ErrorReply": "local_endpoint.replies",
    "Fault": "local_endpoint.replies",
    "FaultPlan": "local_endpoint.replies",
    "Quirks": "local_endpoint.replies",
    "RawReply": "local_endpoint.replies",
    "Reply": "local_endpoint.replies",
    "ToolCall": "local_endpoint.replies",
    "ToolCallDelta": "local_endpoint.replies",
    "ToolStep": "local_endpoint.replies",
    "Usage": "local_endpoint.replies",
    "reply_from_dict": "local_endpoint.replies",
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
