"""Pickled models (Spark executors, multiprocessing) carry an explicit token= only: credentials
from the environment, a profile or a WorkspaceClient are resolved again where the copy runs."""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from pathlib import Path

import pytest

from langchain_dbx_serving import AgentEndpoint, ChatDatabricksServing, DatabricksServingEmbeddings
from tests.security.echoes import dapi
from tests.security.rawserver import RawServer
from tests.security.workspace import Workspace


@pytest.fixture
def workspace() -> Iterator[tuple[Workspace, RawServer]]:
    ws = Workspace(pat=dapi())
    with RawServer(ws) as server:
        ws.url = server.url
        yield ws, server


def test_a_token_from_the_environment_is_not_pickled_and_is_read_again(
    workspace: tuple[Workspace, RawServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    ws, server = workspace
    driver_token = ws.pat
    monkeypatch.setenv("DATABRICKS_TOKEN", driver_token)
    llm = ChatDatabricksServing(endpoint="ep", host=ws.url)
    assert llm.invoke("hi").text == "fine"

    blobs = [pickle.dumps(obj) for obj in (llm, AgentEndpoint("ep", host=ws.url))]
    blobs.append(pickle.dumps(DatabricksServingEmbeddings(endpoint="ep", host=ws.url)))
    for blob in blobs:
        assert driver_token.encode() not in blob

    ws.pat = executor_token = dapi()  # the executor has its own
    monkeypatch.setenv("DATABRICKS_TOKEN", executor_token)
    copy = pickle.loads(blobs[0])
    assert copy.invoke("hi").text == "fine"
    assert server.requests[-1].token == executor_token


def test_an_explicit_token_travels_with_the_pickle(
    workspace: tuple[Workspace, RawServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    ws, _ = workspace
    llm = ChatDatabricksServing(endpoint="ep", host=ws.url, token=ws.pat)
    blob = pickle.dumps(llm)

    assert ws.pat.encode() in blob  # documented: Spark executors need it
    monkeypatch.setenv("DATABRICKS_TOKEN", dapi())  # an executor's own token does not win
    assert pickle.loads(blob).invoke("hi").text == "fine"


def test_a_model_built_with_a_workspace_client_pickles_without_its_secrets(
    workspace: tuple[Workspace, RawServer], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from databricks.sdk import WorkspaceClient

    ws, server = workspace
    (tmp_path / "driver").write_text(f"[work]\nhost = {ws.url}\ntoken = {ws.pat}\n")
    client = WorkspaceClient(profile="work", config_file=str(tmp_path / "driver"))
    llm = ChatDatabricksServing(endpoint="ep", workspace_client=client)
    assert llm.invoke("hi").text == "fine"

    blob = pickle.dumps(llm)

    assert ws.pat.encode() not in blob
    ws.pat = executor_token = dapi()  # the executor's own profile of the same name
    (tmp_path / "executor").write_text(f"[work]\nhost = {ws.url}\ntoken = {executor_token}\n")
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(tmp_path / "executor"))
    copy = pickle.loads(blob)
    assert copy.workspace_client is None
    assert copy.invoke("hi").text == "fine"
    assert server.requests[-1].token == executor_token


def test_oauth_credentials_are_not_pickled_and_are_exchanged_again(
    workspace: tuple[Workspace, RawServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    ws, server = workspace
    ws.pat = None
    ws.client_secret = "dose" + "7c" * 16
    monkeypatch.setenv("DATABRICKS_HOST", ws.url)
    monkeypatch.setenv("DATABRICKS_CLIENT_ID", ws.client_id)
    monkeypatch.setenv("DATABRICKS_CLIENT_SECRET", ws.client_secret)
    llm = ChatDatabricksServing(endpoint="ep")
    assert llm.invoke("hi").text == "fine"

    blob = pickle.dumps(llm)

    for secret in (ws.client_secret, ws.access_token):
        assert secret.encode() not in blob
    exchanges = sum(r.target == "/oidc/v1/token" for r in server.requests)
    assert pickle.loads(blob).invoke("hi").text == "fine"
    assert sum(r.target == "/oidc/v1/token" for r in server.requests) == exchanges + 1
