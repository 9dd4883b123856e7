"""Fixtures for the local endpoint's tests: one shared endpoint, reset before each test."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from langchain_dbx_serving.testing import EchoBackend, LocalEndpoint, ScriptedBackend


@pytest.fixture(scope="session")
def _shared_endpoint() -> Iterator[LocalEndpoint]:
    backends = {
        "chat": ScriptedBackend(),
        "agent": ScriptedBackend(),
        "echo": EchoBackend(),
    }
    with LocalEndpoint(backends, chat_agents={"agent"}, root="chat") as ep:
        yield ep


@pytest.fixture
def ep(_shared_endpoint: LocalEndpoint) -> LocalEndpoint:
    """The shared endpoint (``chat``: scripted, ``agent``: scripted ChatAgent, ``echo``),
    with empty queues and no recorded requests."""
    for name in ("chat", "agent"):
        backend = _shared_endpoint.backend(name)
        assert isinstance(backend, ScriptedBackend)
        backend.clear()
    _shared_endpoint.requests.clear()
    return _shared_endpoint


@pytest.fixture(scope="session")
def _shared_client(_shared_endpoint: LocalEndpoint) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {_shared_endpoint.token}"}
    with httpx.Client(base_url=_shared_endpoint.host, headers=headers, timeout=10) as http:
        yield http


@pytest.fixture
def client(ep: LocalEndpoint, _shared_client: httpx.Client) -> httpx.Client:
    """An httpx client on the endpoint's host, authenticated with its token."""
    return _shared_client
