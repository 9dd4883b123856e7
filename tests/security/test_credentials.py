"""Credentials are validated where they enter: surrounding whitespace is stripped, and an empty
token or secret, or one holding a control or non-ASCII character, is a ConfigurationError that
names its source (argument, environment variable, profile) and never shows the value."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from langchain_dbx_serving import (
    AgentEndpoint,
    ChatDatabricksResponses,
    ChatDatabricksServing,
    ConfigurationError,
    DatabricksServingEmbeddings,
)
from tests.security.echoes import dapi, tokens
from tests.security.rawserver import RawServer
from tests.security.sinks import every_rendering
from tests.security.workspace import Workspace

CLASSES = [ChatDatabricksServing, ChatDatabricksResponses, DatabricksServingEmbeddings]
ODD = {
    "zero-width space": "\u200b",
    "non-breaking space": "\u00a0",
    "accented letter": "\u00e9",
    "newline": "\n",
    "carriage return + header": "\r\nX-Injected: 1",
    "nul": "\x00",
    "tab": "\t",
    "inner space": " ",
}


@pytest.fixture
def workspace() -> Iterator[Workspace]:
    ws = Workspace()
    with RawServer(ws) as server:
        ws.url = server.url
        ws.server = server  # type: ignore[attr-defined]
        yield ws


def assert_nothing_credentialed_sent(workspace: Workspace) -> None:
    """Only databricks-sdk's unauthenticated discovery reached the server, if anything."""
    for request in workspace.server.requests:  # type: ignore[attr-defined]
        assert "authorization" not in request.headers
        assert "serving-endpoints" not in request.target


def configuration_error(call: Any) -> ConfigurationError:
    with pytest.raises(ConfigurationError) as info:
        call()
    return info.value


# -- the cases -------------------------------------------------------------------------


@pytest.mark.parametrize("padding", ["\n", "\r\n", " ", "\t", " \n\n"])
def test_a_token_read_from_a_file_works(workspace: Workspace, padding: str, tmp_path: Path) -> None:
    token = dapi()
    workspace.pat = token
    (tmp_path / "token").write_text(token + padding)

    llm = ChatDatabricksServing(
        endpoint="ep", host=workspace.url, token=(tmp_path / "token").read_text()
    )

    assert llm.invoke("hi").text == "fine"
    assert workspace.server.requests[-1].headers["authorization"] == f"Bearer {token}"  # type: ignore[attr-defined]


def test_a_token_with_a_newline_from_the_environment_works(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = dapi()
    workspace.pat = token
    monkeypatch.setenv("DATABRICKS_TOKEN", token + "\n")
    monkeypatch.setenv("DATABRICKS_HOST", workspace.url + "\n")

    assert ChatDatabricksServing(endpoint="ep").invoke("hi").text == "fine"


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("odd", list(ODD))
def test_an_odd_token_argument_is_a_configuration_error_naming_it(cls: type, odd: str) -> None:
    token = dapi()
    garbled = token[:10] + ODD[odd] + token[10:]

    err = configuration_error(lambda: cls(endpoint="ep", host="https://x.invalid", token=garbled))

    assert "token= (api_key=) argument" in str(err)
    assert "copy the token again" in str(err)
    assert token[:10] not in every_rendering(err, with_locals=False) and token[
        10:
    ] not in every_rendering(err, with_locals=False)


@pytest.mark.parametrize("odd", [k for k in ODD if k != "nul"])  # no NUL in an environment
def test_an_odd_databricks_token_variable_is_named(
    monkeypatch: pytest.MonkeyPatch, odd: str
) -> None:
    token = dapi()
    monkeypatch.setenv("DATABRICKS_TOKEN", token[:10] + ODD[odd] + token[10:])

    err = configuration_error(lambda: AgentEndpoint("ep", host="https://x.invalid"))

    assert "DATABRICKS_TOKEN environment variable" in str(err)
    assert token[10:] not in every_rendering(err, with_locals=False)


@pytest.mark.parametrize("value", ["", " ", "\n", "\u3000"])
def test_an_empty_token_is_an_immediate_error(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    err = configuration_error(lambda: ChatDatabricksServing(endpoint="ep", token=value))
    assert "argument is empty" in str(err) or "argument holds" in str(err)

    monkeypatch.setenv("DATABRICKS_TOKEN", value)
    err = configuration_error(lambda: ChatDatabricksServing(endpoint="ep"))
    assert "DATABRICKS_TOKEN environment variable" in str(err)


def test_a_garbled_token_in_a_profile_is_named(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    token = dapi()
    config = tmp_path / ".databrickscfg"
    config.write_text(
        f"[work]\nhost = {workspace.url}\ntoken = {token[:8]}\u200b{token[8:]}\n", "utf-8"
    )
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(config))
    monkeypatch.setenv("DATABRICKS_CONFIG_PROFILE", "work")
    llm = ChatDatabricksServing(endpoint="ep")

    err = configuration_error(lambda: llm.invoke("hi"))

    assert "profile 'work'" in str(err)
    assert "U+200B ZERO WIDTH SPACE" in str(err)
    assert token[8:] not in every_rendering(err, with_locals=False)
    assert_nothing_credentialed_sent(workspace)


def test_a_client_secret_with_a_newline_works_for_oauth_m2m(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch, debug_logs: Any
) -> None:
    workspace.client_secret = "dose" + "ab" * 16
    monkeypatch.setenv("DATABRICKS_HOST", workspace.url)
    monkeypatch.setenv("DATABRICKS_CLIENT_ID", workspace.client_id)
    monkeypatch.setenv("DATABRICKS_CLIENT_SECRET", workspace.client_secret + "\n")

    assert ChatDatabricksServing(endpoint="ep").invoke("hi").text == "fine"
    logs = debug_logs.text()
    assert "/oidc/v1/token" in logs  # databricks-sdk and urllib3 logged the exchange...
    basic = base64.b64encode(f"{workspace.client_id}:{workspace.client_secret}".encode()).decode()
    for secret in (workspace.client_secret, workspace.access_token, basic):
        assert secret not in logs  # ...without its secrets


@pytest.mark.parametrize("variable", ["DATABRICKS_CLIENT_SECRET", "ARM_CLIENT_SECRET"])
def test_a_garbled_client_secret_is_named(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    secret = "dose" + "cd" * 16
    monkeypatch.setenv("DATABRICKS_HOST", workspace.url)
    monkeypatch.setenv("DATABRICKS_CLIENT_ID", workspace.client_id)
    monkeypatch.setenv(variable, secret[:6] + "\u200b" + secret[6:])
    llm = ChatDatabricksServing(endpoint="ep")

    err = configuration_error(lambda: llm.invoke("hi"))

    assert f"{variable} environment variable" in str(err)
    assert secret[6:] not in every_rendering(err, with_locals=False)
    assert_nothing_credentialed_sent(workspace)


# -- any token ---------------------------------------------------------------------------------

_spaces = st.text(alphabet=" \t\r\n\f\v", max_size=3)
_bad_chars = st.characters(
    blacklist_categories=(), whitelist_categories=("Cc", "Cf", "Zs", "Zl", "Zp", "Lo", "Ll", "So")
).filter(lambda c: not (" " < c < "\x7f"))


@settings(max_examples=100, deadline=None)
@given(token=tokens, before=_spaces, after=_spaces)
def test_any_token_is_stripped(token: str, before: str, after: str) -> None:
    llm = ChatDatabricksServing(
        endpoint="ep", host="https://x.invalid", token=before + token + after
    )
    assert llm.transport.credentials.headers() == {"Authorization": f"Bearer {token}"}


@settings(max_examples=100, deadline=None)
@given(token=tokens, bad=_bad_chars, at=st.integers(min_value=1, max_value=15))
def test_any_garbled_token_is_refused_without_showing_it(token: str, bad: str, at: int) -> None:
    garbled = token[:at] + bad + token[at:]
    err = configuration_error(lambda: ChatDatabricksServing(endpoint="ep", token=garbled))
    shown = every_rendering(err, with_locals=False)
    assert garbled not in shown and token not in shown
    for piece in (token[:at], token[at:]):
        assert len(piece) < 8 or piece not in shown
