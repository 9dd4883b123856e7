"""The loopback fixtures: the shared local serving endpoint and chat models pointed at it.

Only the folders whose tests talk HTTP to it load these (their ``conftest.py`` imports the
fixtures), so a unit test imports no server (starlette, uvicorn). Each of those folders gets
its own session endpoint.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from langchain_dbx_serving import ChatDatabricksServing
from langchain_dbx_serving.testing import EchoBackend, LocalEndpoint, ScriptedBackend

SCRIPTED = ("chat", "agent", "responder")


@pytest.fixture(scope="session")
def _serving() -> Iterator[LocalEndpoint]:
    backends = {name: ScriptedBackend() for name in SCRIPTED}
    backends["echo"] = EchoBackend()
    with LocalEndpoint(backends, chat_agents={"agent"}, root="responder") as ep:
        yield ep


@pytest.fixture
def serving(_serving: LocalEndpoint) -> LocalEndpoint:
    """The shared local endpoint, with empty reply queues and no recorded requests.

    Endpoints: ``chat`` (scripted, chat completions), ``agent`` (scripted, ChatAgent shape),
    ``responder`` (scripted, also served at the root like an agent App) and ``echo``.
    """
    for name in SCRIPTED:
        backend = _serving.backend(name)
        assert isinstance(backend, ScriptedBackend)
        backend.clear()
    _serving.requests.clear()
    return _serving


def queue(ep: LocalEndpoint, *replies: Any, name: str = "chat") -> None:
    """Queue replies on one of the scripted endpoints."""
    backend = ep.backend(name)
    assert isinstance(backend, ScriptedBackend)
    backend.add(*replies)


@pytest.fixture
def make_chat(serving: LocalEndpoint) -> Callable[..., ChatDatabricksServing]:
    """Build a ``ChatDatabricksServing`` on the local endpoint (no retry sleeps by default)."""

    def make(**fields: Any) -> ChatDatabricksServing:
        fields.setdefault("endpoint", "chat")
        fields.setdefault("host", serving.host)
        fields.setdefault("token", serving.token)
        return ChatDatabricksServing(**fields)

    return make
