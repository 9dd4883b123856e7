"""The documented door to the local endpoint's backends (``ScriptedBackend``, ``EchoBackend``, ...).

Defined in :mod:`langchain_dbx_serving.testing.local_endpoint.backends`; see its docstring.
"""

from __future__ import annotations

from langchain_dbx_serving.testing.local_endpoint.backends import (
    Backend,
    BackendRequest,
    BackendResult,
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

__all__ = [
    "Backend",
    "BackendRequest",
    "BackendResult",
    "ChatModelBackend",
    "EchoBackend",
    "EmbeddingBackend",
    "EmbeddingsBackend",
    "FunctionBackend",
    "HashEmbeddingBackend",
    "ResponsesAgentBackend",
    "ScriptedBackend",
    "as_backend",
]
