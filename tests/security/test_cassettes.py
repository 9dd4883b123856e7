"""Cassettes recorded with every kind of Databricks auth, and with compressed replies, hold no
credential and no workspace host; token exchanges are never stored, so an OAuth recording
replays with every interaction played; the scanner finds what a scrubber would miss."""

from __future__ import annotations

import base64
import gzip
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
import zstandard
from vcr.request import Request

from langchain_dbx_serving import ChatDatabricksServing
from langchain_dbx_serving.testing.cassettes._vcr_config import (
    PLACEHOLDER_HOST,
    REPLAY_TOKEN,
    Redactor,
    ScrubRequest,
    ScrubResponse,
)
from langchain_dbx_serving.testing.cassettes._vcr_setup import databricks_cassette
from langchain_dbx_serving.testing.scan import main as scan_main
from langchain_dbx_serving.testing.scan import scan_paths
from tests.security.echoes import dapi
from tests.security.rawserver import RawServer
from tests.security.workspace import Workspace, jwt

GOOGLE_TOKEN = "ya29." + "a0AfB_" + "x" * 40


class FakeSdkConfig:
    """What databricks-sdk's Config gives our SdkCredentials: a host and auth headers."""

    def __init__(self, host: str, headers: dict[str, str]) -> None:
        self.host = host
        self._headers = headers

    def authenticate(self) -> dict[str, str]:
        return dict(self._headers)


class FakeWorkspaceClient:
    def __init__(self, config: FakeSdkConfig) -> None:
        self.config = config


@pytest.fixture
def workspace() -> Iterator[tuple[Workspace, RawServer]]:
    ws = Workspace()
    with RawServer(ws) as server:
        ws.url = server.url
        yield ws, server


def record(path: Path, host: str, make: Any) -> None:
    with databricks_cassette(path, record_mode="once", hosts=[host]):
        llm = make()
        assert llm.invoke("hi").text == "fine"
        assert "".join(c.text for c in llm.stream("hi")) == "fine"


def replay(path: Path) -> Any:
    with databricks_cassette(path, record_mode="none") as cassette:
        llm = ChatDatabricksServing(endpoint="ep", host=PLACEHOLDER_HOST, token=REPLAY_TOKEN)
        assert llm.invoke("hi").text == "fine"
        assert "".join(c.text for c in llm.stream("hi")) == "fine"
    return cassette


def assert_clean(path: Path, *secrets: str, host: str) -> None:
    text = path.read_text()
    for secret in secrets:
        assert secret not in text
    assert host.split("://")[1] not in text
    findings, _ = scan_paths([path])
    assert findings == []


def test_a_pat_recording(workspace: tuple[Workspace, RawServer], tmp_path: Path) -> None:
    ws, _ = workspace
    ws.pat = dapi()
    path = tmp_path / "pat.yaml"
    record(path, ws.url, lambda: ChatDatabricksServing(endpoint="ep", host=ws.url, token=ws.pat))
    assert_clean(path, ws.pat, host=ws.url)
    assert replay(path).all_played


def test_an_oauth_m2m_recording_replays_with_nothing_unplayed(
    workspace: tuple[Workspace, RawServer], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws, server = workspace
    ws.client_secret = "dose" + "9a" * 16
    monkeypatch.setenv("DATABRICKS_HOST", ws.url)
    monkeypatch.setenv("DATABRICKS_CLIENT_ID", ws.client_id)
    monkeypatch.setenv("DATABRICKS_CLIENT_SECRET", ws.client_secret)
    path = tmp_path / "m2m.yaml"

    record(path, ws.url, lambda: ChatDatabricksServing(endpoint="ep"))

    targets = {r.target for r in server.requests}
    assert "/oidc/v1/token" in targets and "/.well-known/databricks-config" in targets
    stored = yaml.safe_load(path.read_text())["interactions"]
    assert [i["request"]["uri"] for i in stored] == [
        f"{PLACEHOLDER_HOST}/serving-endpoints/ep/invocations"
    ] * 2
    basic = base64.b64encode(f"{ws.client_id}:{ws.client_secret}".encode()).decode()
    assert_clean(path, ws.client_secret, ws.access_token, basic, host=ws.url)
    monkeypatch.delenv("DATABRICKS_CLIENT_SECRET")
    assert replay(path).all_played  # what --dbx-fail-unplayed checks


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Databricks-GCP-SA-Access-Token": GOOGLE_TOKEN},
        {"X-Databricks-Azure-SP-Management-Token": jwt()},
        {"X-Databricks-Azure-Workspace-Resource-Id": "/subscriptions/s/resourceGroups/g"},
    ],
    ids=["gcp", "azure", "azure-resource"],
)
def test_cloud_auth_headers_are_not_recorded(
    workspace: tuple[Workspace, RawServer], tmp_path: Path, headers: dict[str, str]
) -> None:
    """databricks-sdk's Google and Azure credentials add these headers to every request."""
    ws, server = workspace
    ws.pat = jwt()
    config = FakeSdkConfig(ws.url, {"Authorization": f"Bearer {ws.pat}", **headers})
    path = tmp_path / "cloud.yaml"

    record(
        path,
        ws.url,
        lambda: ChatDatabricksServing(endpoint="ep", workspace_client=FakeWorkspaceClient(config)),
    )

    ((name, value),) = headers.items()
    assert server.requests[0].headers[name.lower()] == value  # it was sent...
    assert name.lower() not in path.read_text().lower()  # ...and not recorded
    assert_clean(path, ws.pat, value, host=ws.url)


def test_compressed_replies_are_stored_readable_and_scrubbed(
    workspace: tuple[Workspace, RawServer], tmp_path: Path
) -> None:
    ws, server = workspace
    ws.pat = dapi()
    ws.encoding = "gzip"  # our transport asks for gzip and deflate only (bounded inflation)
    ws.reply_headers = {"X-Echo": f"{ws.url}/serving-endpoints"}
    path = tmp_path / "gzip.yaml"

    record(path, ws.url, lambda: ChatDatabricksServing(endpoint="ep", host=ws.url, token=ws.pat))

    assert server.requests[0].headers["accept-encoding"] == "gzip, deflate"
    text = path.read_text()
    assert "content-encoding" not in text.lower()
    assert '"content": "fine"' in text  # readable JSON, not a compressed blob
    assert_clean(path, ws.pat, host=ws.url)
    assert replay(path).all_played


def test_a_zstd_reply_to_other_code_is_stored_readable_and_scrubbed(
    workspace: tuple[Workspace, RawServer], tmp_path: Path
) -> None:
    """Other code the plugin records (an httpx client with zstandard installed, such as the
    openai client's) asks for zstd, which vcrpy would store compressed, out of the scrubber's
    and the scanner's sight."""
    ws, server = workspace
    ws.pat = dapi()
    ws.encoding = "zstd"
    ws.reply_headers = {"X-Echo": f"{ws.url}/serving-endpoints"}
    path = tmp_path / "zstd.yaml"
    body = {"messages": [{"role": "user", "content": "hi"}]}

    with (
        databricks_cassette(path, record_mode="once", hosts=[ws.url]),
        httpx.Client(headers={"Accept-Encoding": "zstd"}) as client,
    ):
        reply = client.post(
            f"{ws.url}/serving-endpoints/ep/invocations",
            json=body,
            headers={"Authorization": f"Bearer {ws.pat}"},
        )

    assert reply.json()["choices"][0]["message"]["content"] == "fine"
    assert server.requests[0].headers["accept-encoding"] == "zstd"
    text = path.read_text()
    assert "content-encoding" not in text.lower()
    assert '"content": "fine"' in text  # readable JSON, not a compressed blob
    assert_clean(path, ws.pat, host=ws.url)


# -- the scrubbers, request by request ---------------------------------------------------------

TOKEN_EXCHANGES = [
    "https://login.microsoftonline.com/tenant/oauth2/v2.0/token",
    "https://login.microsoftonline.us/tenant/oauth2/token",
    "https://login.chinacloudapi.cn/tenant/oauth2/token",
    "https://login.partner.microsoftonline.cn/tenant/oauth2/token",
    "https://login.windows.net/tenant/oauth2/token",
    "https://oauth2.googleapis.com/token",
    "https://sts.googleapis.com/v1/token",
    "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/sa:generateIdToken",
    "http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/token",
    "http://169.254.169.254/metadata/identity/oauth2/token?resource=x",
    "https://adb-1.azuredatabricks.net/oidc/v1/token",
    "https://accounts.cloud.databricks.com/oidc/accounts/abc/v1/token",
    "https://adb-1.azuredatabricks.net/.well-known/databricks-config",
    "https://adb-1.azuredatabricks.net/oidc/.well-known/oauth-authorization-server",
    "https://adb-1.azuredatabricks.net/aad/auth",
    "https://pipelines.actions.githubusercontent.com/abc/idtoken?audience=x",
]


@pytest.mark.parametrize("uri", TOKEN_EXCHANGES)
def test_token_exchanges_of_every_cloud_are_never_recorded(uri: str) -> None:
    body = f"grant_type=client_credentials&client_secret={'s' * 20}".encode()
    assert ScrubRequest(Redactor())(Request("POST", uri, body, {})) is None


def test_url_encoded_secrets_are_redacted_whole() -> None:
    secret = "abc+def/ghi=jkl+mno+pqr+stu+vwx"
    encoded = "abc%2Bdef%2Fghi%3Djkl%2Bmno%2Bpqr%2Bstu%2Bvwx"
    redactor = Redactor()
    for text in (f"client_secret={encoded}&x=1", f"access_token={encoded}", f"Bearer {encoded}"):
        scrubbed = redactor.text(text)
        assert "def" not in scrubbed and "vwx" not in scrubbed, scrubbed
    assert "jkl" not in Redactor(secrets=[secret]).text(f"echo {encoded}")


@pytest.mark.parametrize(
    "name", ["X-Databricks-GCP-SA-Access-Token", "X-Custom-Auth-Token", "X-Api-Key", "Cookie"]
)
def test_any_credential_header_is_dropped(name: str) -> None:
    request = Request(
        "POST", "https://x.invalid/y", b"{}", {name: "opaque-value-1234", "Accept": "*/*"}
    )
    kept = ScrubRequest(Redactor())(request)
    assert list(kept.headers) == ["Accept"]
    reply = ScrubResponse(Redactor())(
        {"status": {"code": 200}, "headers": {name: ["v" * 20]}, "body": {"string": b"{}"}}
    )
    assert reply["headers"] == {}


def test_a_header_holding_a_token_shape_is_dropped() -> None:
    token = dapi()
    request = Request("GET", "https://x.invalid/y", b"", {"X-Forwarded-Whatever": token})
    assert dict(ScrubRequest(Redactor())(request).headers) == {}


# -- the scanner -------------------------------------------------------------------------------


def write_cassette(path: Path, headers: dict[str, list[str]], body: bytes) -> None:
    cassette = {
        "version": 1,
        "interactions": [
            {
                "request": {
                    "method": "POST",
                    "uri": f"{PLACEHOLDER_HOST}/x",
                    "body": None,
                    "headers": {},
                },
                "response": {
                    "status": {"code": 200, "message": "OK"},
                    "headers": headers,
                    "body": {"string": body},
                },
            }
        ],
    }
    path.write_text(yaml.safe_dump(cassette))


@pytest.mark.parametrize("encoding", ["zstd", "gzip", "deflate", "identity"])
def test_the_scanner_reads_compressed_bodies(tmp_path: Path, encoding: str) -> None:
    token = dapi()
    raw = f'{{"echo": "{token}"}}'.encode()
    packed = {
        "zstd": lambda b: zstandard.ZstdCompressor().compress(b),
        "gzip": gzip.compress,
        "deflate": lambda b: __import__("zlib").compress(b),
        "identity": lambda b: b,
    }[encoding](raw)
    write_cassette(tmp_path / "c.yaml", {"Content-Encoding": [encoding]}, packed)

    findings, _ = scan_paths([tmp_path])

    assert [f.kind for f in findings] == ["Databricks personal access token"]
    assert token not in str(findings[0])
    assert scan_main([str(tmp_path)]) == 1


def test_the_scanner_flags_credential_headers_whatever_their_value(tmp_path: Path) -> None:
    write_cassette(
        tmp_path / "c.yaml", {"X-Databricks-GCP-SA-Access-Token": ["short-opaque"]}, b"{}"
    )
    (finding,) = scan_paths([tmp_path])[0]
    assert "X-Databricks-GCP-SA-Access-Token" in finding.kind


def test_the_scanner_flags_google_tokens_and_url_encoded_secrets(tmp_path: Path) -> None:
    field = "client_" + "secret=abc%2Bdef%2Bghijklmnop"  # assembled: this file stays clean
    (tmp_path / "a.txt").write_text(f"token {GOOGLE_TOKEN}\n{field}\n")
    kinds = sorted(f.kind for f in scan_paths([tmp_path])[0])
    assert kinds == ["Google OAuth access token", "client secret"]
