"""Helpers shared by the local endpoint's tests."""

from __future__ import annotations

import json
from typing import Any

from langchain_dbx_serving.testing import BackendRequest, LocalEndpoint, Reply, ScriptedBackend


def script(ep: LocalEndpoint, *replies: Any, name: str = "chat") -> None:
    """Queue replies on a scripted endpoint of ``ep``."""
    backend = ep.backend(name)
    assert isinstance(backend, ScriptedBackend)
    backend.add(*replies)


def capture(seen: list[BackendRequest], reply: Reply) -> Any:
    """A scripted entry that records the backend request and answers ``reply``."""

    def respond(request: BackendRequest) -> Reply:
        seen.append(request)
        return reply

    return respond


def parse_sse(text: str) -> list[Any]:
    """The ``data`` payloads of an SSE body: JSON objects, and ``"[DONE]"`` as a string."""
    events: list[Any] = []
    for block in text.split("\n\n"):
        data = [line[5:].strip() for line in block.split("\n") if line.startswith("data:")]
        if data:
            payload = "\n".join(data)
            events.append(payload if payload == "[DONE]" else json.loads(payload))
    return events


def chat(messages: str = "hi", **extra: Any) -> dict[str, Any]:
    """A chat-completions body for the ``chat`` endpoint."""
    return {"model": "chat", "messages": [{"role": "user", "content": messages}], **extra}


def responses(text: str = "hi", **extra: Any) -> dict[str, Any]:
    """A responses body for the ``chat`` endpoint."""
    return {"model": "chat", "input": [{"role": "user", "content": text}], **extra}
