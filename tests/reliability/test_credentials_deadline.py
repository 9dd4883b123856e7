"""Credential resolution (databricks-sdk Config, OAuth) runs inside the call's deadline, and off
the event loop in async calls. The "workspace" is a raw-socket server that never answers, so
the SDK's OIDC discovery (OAuth M2M) or host probing would otherwise hang for minutes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from langchain_dbx_serving import ChatDatabricksServing
from langchain_dbx_serving.errors import DatabricksServingError, ServingTimeoutError
from tests.reliability.raw_server import HOLD, RawServer

SLACK = 3.0
TIMEOUT = 1.5


@pytest.fixture
def silent_workspace(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[RawServer]:
    """A host that accepts connections and never answers, and an environment whose only
    credentials are an OAuth M2M client (no token, no profile file)."""
    for name in ("DATABRICKS_TOKEN", "DATABRICKS_CONFIG_PROFILE", "DATABRICKS_HOST"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(tmp_path / "none.cfg"))
    monkeypatch.setenv("DATABRICKS_CLIENT_ID", "client-id")
    monkeypatch.setenv("DATABRICKS_CLIENT_SECRET", "client-secret-value-0123")
    with RawServer([[HOLD]]) as srv:
        yield srv


def model(srv: RawServer) -> ChatDatabricksServing:
    return ChatDatabricksServing(endpoint="m", host=srv.url, timeout=TIMEOUT, max_retries=0)


def test_a_stalled_token_endpoint_ends_at_the_deadline(silent_workspace: RawServer) -> None:
    start = time.monotonic()
    with pytest.raises(ServingTimeoutError) as info:
        model(silent_workspace).invoke("hi")
    elapsed = time.monotonic() - start
    assert elapsed < TIMEOUT + SLACK
    message = str(info.value)
    assert f"127.0.0.1:{silent_workspace.port}" in message
    assert "oauth-m2m" in message and f"timeout={TIMEOUT:g}s" in message


def test_async_credential_resolution_never_freezes_the_event_loop(
    silent_workspace: RawServer,
) -> None:
    gaps: list[float] = []

    async def ticker(stop: asyncio.Event) -> None:
        last = time.monotonic()
        while not stop.is_set():
            await asyncio.sleep(0.02)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    async def main() -> tuple[BaseException, float]:
        stop = asyncio.Event()
        tick = asyncio.create_task(ticker(stop))
        start = time.monotonic()
        try:
            await model(silent_workspace).ainvoke("hi")
        except DatabricksServingError as exc:
            return exc, time.monotonic() - start
        finally:
            stop.set()
            await tick
        raise AssertionError("no error")

    error, elapsed = asyncio.run(main())
    assert isinstance(error, ServingTimeoutError)
    assert "oauth-m2m" in str(error)
    assert elapsed < TIMEOUT + SLACK
    assert max(gaps) < 0.5, f"the event loop froze for {max(gaps):.2f}s"


def test_no_credentials_and_an_unreachable_host_end_within_the_deadline(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("DATABRICKS_TOKEN", "DATABRICKS_CLIENT_ID", "DATABRICKS_CONFIG_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(tmp_path / "none.cfg"))
    chat = ChatDatabricksServing(
        endpoint="m", host="http://127.0.0.1:9", timeout=TIMEOUT, max_retries=0
    )
    start = time.monotonic()
    with pytest.raises(DatabricksServingError) as info:
        chat.invoke("hi")
    assert time.monotonic() - start < TIMEOUT + SLACK
    assert "127.0.0.1:9" in str(info.value)
    assert "auth" in str(info.value)
