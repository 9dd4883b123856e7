"""Fixtures of the reliability tests: the shared local endpoint with an empty fault plan."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from langchain_dbx_serving.testing import LocalEndpoint
from langchain_dbx_serving.transport import client as transport_client
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
