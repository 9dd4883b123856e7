"""Where credentials come from: explicit token, environment, databricks-sdk profiles and clients."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from langchain_dbx_serving import ChatDatabricksServing
from langchain_dbx_serving.testing import Reply
from tests.support.serving import queue


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    for name in (
        "DATABRICKS_HOST",
        "DATABRICKS_TOKEN",
        "DATABRICKS_CONFIG_PROFILE",
        "DATABRICKS_CLIENT_ID",
        "DATABRICKS_CLIENT_SECRET",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(tmp_path / "missing.cfg"))
    return monkeypatch


def test_api_key_alias_and_explicit_host(serving, clean_env) -> None:
    queue(serving, Reply.text("ok"))
    llm = ChatDatabricksServing(model="chat", host=serving.host, api_key=serving.token)
    assert llm.invoke("hi").text == "ok"
    assert llm.endpoint == "chat"


def test_environment_variables(serving, clean_env) -> None:
    clean_env.setenv("DATABRICKS_HOST", serving.host)
    clean_env.setenv("DATABRICKS_TOKEN", serving.token)
    queue(serving, Reply.text("from env"))
    assert ChatDatabricksServing(endpoint="chat").invoke("hi").text == "from env"


def test_profile_in_databrickscfg_through_databricks_sdk(serving, clean_env, tmp_path) -> None:
    config = tmp_path / "databrickscfg"
    config.write_text(f"[dev]\nhost = {serving.host}\ntoken = {serving.token}\n")
    clean_env.setenv("DATABRICKS_CONFIG_FILE", str(config))
    clean_env.setenv("DATABRICKS_CONFIG_PROFILE", "dev")
    queue(serving, Reply.text("from profile"))
    llm = ChatDatabricksServing(endpoint="chat")
    assert llm.invoke("hi").text == "from profile"
    assert serving.last_request.headers["authorization"] == "Bearer ***"


def test_workspace_client(serving, clean_env) -> None:
    from databricks.sdk import WorkspaceClient

    client = WorkspaceClient(host=serving.host, token=serving.token)
    queue(serving, Reply.text("from client"))
    assert ChatDatabricksServing(endpoint="chat", workspace_client=client).invoke("x").text == (
        "from client"
    )


def test_sdk_credentials_are_asked_on_every_request(serving, clean_env) -> None:
    """OAuth tokens expire: headers come from the SDK config per request, not once."""

    class CountingConfig:
        host = serving.host
        calls = 0

        def authenticate(self) -> dict[str, str]:
            CountingConfig.calls += 1
            return {"Authorization": f"Bearer {serving.token}"}

    class Client:
        config = CountingConfig()

    queue(serving, Reply.text("1"), Reply.text("2"))
    llm = ChatDatabricksServing(endpoint="chat", workspace_client=Client())
    assert [llm.invoke("a").text, llm.invoke("b").text] == ["1", "2"]
    assert CountingConfig.calls == 2


def test_no_credentials_anywhere_is_a_clear_configuration_error(clean_env) -> None:
    from langchain_dbx_serving import ConfigurationError

    # No host either: with a host, databricks-sdk first probes it for OAuth metadata (and
    # retries an unreachable one for minutes, which is the SDK's behaviour, not ours).
    llm = ChatDatabricksServing(endpoint="chat")
    with pytest.raises(ConfigurationError) as info:
        llm.invoke("hi")
    assert "DATABRICKS_TOKEN" in str(info.value)


def test_injected_http_clients_are_used(serving) -> None:
    seen: list[str] = []

    def hook(request: httpx.Request) -> None:
        seen.append(str(request.url))

    async def ahook(request: httpx.Request) -> None:
        seen.append(str(request.url))

    queue(serving, Reply.text("sync"), Reply.text("async"))
    import asyncio

    async def both() -> None:
        async with httpx.AsyncClient(event_hooks={"request": [ahook]}) as async_client:
            llm = ChatDatabricksServing(
                endpoint="chat",
                host=serving.host,
                token=serving.token,
                http_client=sync_client,
                http_async_client=async_client,
            )
            assert await asyncio.to_thread(lambda: llm.invoke("hi").text) == "sync"
            assert (await llm.ainvoke("hi")).text == "async"

    with httpx.Client(event_hooks={"request": [hook]}) as sync_client:
        asyncio.run(both())
    assert seen == [f"{serving.base_url}/chat/invocations"] * 2


def test_pooled_client_is_reused_across_calls(serving, make_chat) -> None:
    queue(serving, Reply.text("1"), Reply.text("2"))
    llm = make_chat()
    llm.invoke("a")
    first = llm.transport._sync_client()
    llm.invoke("b")
    assert llm.transport._sync_client() is first
