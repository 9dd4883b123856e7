"""Fixtures of the reliability tests: the shared local endpoint with an empty fault plan."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from langchain_dbx_serving.testing import LocalEndpoint
from langchain_dbx_serving.transport import client as transport_client
from tests.reliability.raw_server import RawServer
from tests.support.serving import _serving, make_chat, serving  # noqa: F401  (fixtures)


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep exponential backoff but scale it down, so retry tests take milliseconds."""
    monkeypatch.setattr(transport_client, "_INITIAL_BACKOFF", 0.001)


@pytest.fixture
def faulty(serving: LocalEndpoint) -> Iterator[LocalEndpoint]:  # noqa: F811  (fixture above)
    """The shared local endpoint (see ``tests/support/serving.py``) with an empty fault plan."""
    serving.faults.clear()
    yield serving
    serving.faults.clear()


@pytest.fixture
def raw_servers() -> Iterator[Any]:
    """Start raw-socket servers with ``raw_servers(*plan, **options)``; all stopped after the
    test (see ``raw_server.RawServer`` for the plan)."""
    servers: list[RawServer] = []

    def start(*plan: list[Any], **options: Any) -> RawServer:
        srv = RawServer(list(plan), **options).__enter__()
        servers.append(srv)
        return srv

    yield start
    for srv in servers:
        srv.stop()
