"""The cassette configuration as pure functions: scrubbers, the body matcher, the YAML writer.

Token-shaped values are assembled at run time so this file itself stays clean for the scanner.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from vcr.request import Request
from vcr.serializers import yamlserializer

from langchain_dbx_serving.testing.cassettes._vcr_config import (
    PLACEHOLDER_HOST,
    Redactor,
    ScrubRequest,
    ScrubResponse,
    databricks_vcr_config,
    is_databricks_config,
    live_host,
    match_json_body,
)
from langchain_dbx_serving.testing.cassettes._vcr_setup import ReadableYAML
from langchain_dbx_serving.testing.scan import scan_text

PAT = "dapi" + "5e6f7a8b" * 4
JWT = ".".join(["eyJ" + "hbGciOiJSUzI1NiJ9", "eyJ" + "aXNzIjoiZGJ4In0", "c2lnbmF0dXJl"])
SECRET = "dose" + "0f1e2d3c" * 4
WORKSPACE = "https://adb-1234567890.12.azuredatabricks.net"
LOCAL = "http://127.0.0.1:8765"


@pytest.fixture
def redactor() -> Redactor:
    return Redactor(hosts=[LOCAL], secrets=["my-plain-local-token"])


def test_redactor_removes_every_secret_shape_and_the_hosts(redactor: Redactor) -> None:
    text = (
        f"{PAT} {JWT} {SECRET} Bearer {'k' * 30} client_secret={'v' * 16} my-plain-local-token "
        f"{LOCAL}/x 127.0.0.1:8765 {WORKSPACE}/y dbc-a1b2.cloud.databricks.com"
    )
    scrubbed = redactor.text(text)
    assert list(scan_text(scrubbed)) == []
    for leaked in (PAT, JWT, SECRET, "my-plain-local-token", "127.0.0.1", "azuredatabricks"):
        assert leaked not in scrubbed
    assert f"{PLACEHOLDER_HOST}/x" in scrubbed
    assert f"{PLACEHOLDER_HOST}/y" in scrubbed
    assert "Bearer <redacted:bearer-token>" in scrubbed
    assert "client_secret=<redacted:client-secret>" in scrubbed
    assert redactor.text(scrubbed) == scrubbed  # idempotent: vcrpy re-applies it on load


def test_redactor_leaves_other_hosts_and_plain_text_alone(redactor: Redactor) -> None:
    text = "see https://api.openai.com/v1 and https://docs.databricks.com for the dapi prefix"
    assert redactor.text(text) == text


def request(uri: str, body: Any = b"", headers: dict[str, str] | None = None) -> Request:
    return Request("POST", uri, body, headers or {})


def test_request_scrubber_drops_secret_headers_and_rewrites_the_workspace(
    redactor: Redactor,
) -> None:
    body = json.dumps({"messages": [{"role": "user", "content": f"my token is {PAT}"}]})
    sent = request(
        f"{LOCAL}/serving-endpoints/chat/invocations?token={PAT}",
        body.encode(),
        {
            "Authorization": f"Bearer {PAT}",
            "Cookie": "session=1",
            "X-Databricks-Org-Id": "1234",
            "Host": "127.0.0.1:8765",
            "Content-Type": "application/json",
        },
    )
    kept = ScrubRequest(redactor)(sent)
    assert kept.uri.startswith(f"{PLACEHOLDER_HOST}/serving-endpoints/chat/invocations?token=")
    assert PAT not in kept.uri
    assert {k.lower() for k in kept.headers} == {"host", "content-type"}
    assert kept.headers["Host"] == "databricks-workspace.invalid"
    assert PAT not in kept.body.decode()
    assert json.loads(kept.body)["messages"][0]["content"].startswith("my token is <redacted")


def test_request_scrubber_keeps_other_hosts_and_drops_oauth_traffic(redactor: Redactor) -> None:
    scrub = ScrubRequest(redactor)
    other = scrub(request("https://api.openai.com/v1/chat/completions", b"{}"))
    assert other.uri == "https://api.openai.com/v1/chat/completions"
    token_exchange = f"grant_type=client_credentials&client_secret={SECRET}".encode()
    assert scrub(request(f"{WORKSPACE}/oidc/v1/token", token_exchange)) is None
    assert scrub(request("https://login.microsoftonline.com/t/oauth2/token", b"")) is None


def test_volatile_fields_are_normalized_at_any_depth(redactor: Redactor) -> None:
    body = {"messages": [], "databricks_options": {"client_request_id": "abc"}}
    kept = ScrubRequest(redactor)(request(f"{LOCAL}/x", json.dumps(body).encode()))
    assert json.loads(kept.body)["databricks_options"] == {"client_request_id": "<volatile>"}
    untouched = b'{"b": 1,  "a": 2}'  # no volatile key: the body stays byte for byte
    assert ScrubRequest(redactor)(request(f"{LOCAL}/x", untouched)).body == untouched


def test_response_scrubber_keeps_content_type_and_a_true_content_length(
    redactor: Redactor,
) -> None:
    body = json.dumps({"access_token": JWT, "expires_in": 3600}).encode()
    response = {
        "status": {"code": 200, "message": "OK"},
        "headers": {
            "content-type": ["application/json"],
            "content-length": [str(len(body))],
            "Set-Cookie": ["session=abc"],
        },
        "body": {"string": body},
    }
    scrubbed = ScrubResponse(redactor)(response)
    new_body = scrubbed["body"]["string"]
    assert JWT not in new_body.decode()
    assert scrubbed["headers"]["content-type"] == ["application/json"]
    assert scrubbed["headers"]["content-length"] == [str(len(new_body))]
    assert "Set-Cookie" not in scrubbed["headers"]


def test_response_scrubber_keeps_sse_and_binary_bodies_verbatim(redactor: Redactor) -> None:
    sse = b'data: {"delta": "hi"}\n\ndata: [DONE]\n\n'
    for raw in (sse, b"\xff\xfe\x00binary"):
        response = {"status": {"code": 200}, "headers": {}, "body": {"string": raw}}
        assert ScrubResponse(redactor)(response)["body"]["string"] == raw


def test_body_matcher_ignores_key_order_and_spacing() -> None:
    recorded = request("x", b'{"messages": [{"role": "user", "content": "hi"}], "stream": true}')
    sent = request("x", b'{"stream":true,"messages":[{"content":"hi","role":"user"}]}')
    match_json_body(sent, recorded)


@pytest.mark.parametrize(
    ("sent", "diff_line"),
    [
        (b'{"stream": 1, "messages": []}', '+  "stream": 1'),  # true is not 1
        (b'{"stream": true, "messages": [], "temperature": 0.5}', '+  "temperature": 0.5'),
        (b"not json", "+b'not json'"),
    ],
)
def test_body_matcher_explains_a_difference(sent: bytes, diff_line: str) -> None:
    recorded = request("x", b'{"stream": true, "messages": []}')
    with pytest.raises(AssertionError, match="request body differs") as failure:
        match_json_body(request("x", sent), recorded)
    assert diff_line in str(failure.value)


def test_readable_yaml_round_trips_through_vcrpys_loader() -> None:
    sse = 'data: {"a": 1}\n\ndata: [DONE]\n\n'
    cassette = {
        "version": 1,
        "interactions": [
            {"request": {"method": "POST", "body": "{}"}, "response": {"body": {"string": sse}}},
            {"request": {"body": "line\r\nbreak"}, "response": {"body": {"string": b"\xff\x00"}}},
        ],
    }
    text = ReadableYAML.serialize(cassette)
    assert 'string: |+\n        data: {"a": 1}\n\n        data: [DONE]\n' in text
    assert yamlserializer.deserialize(text) == cassette
    assert ReadableYAML.deserialize(text) == cassette


def test_config_takes_host_and_secrets_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABRICKS_HOST", WORKSPACE)
    monkeypatch.setenv("DATABRICKS_TOKEN", "plain-but-secret-token")
    config = databricks_vcr_config()
    assert is_databricks_config(config)
    assert config["match_on"] == ["method", "path", "dbx_json_body"]
    scrub = config["before_record_request"][0]
    kept = scrub(request(f"{WORKSPACE}/serving-endpoints/x/invocations", b"plain-but-secret-token"))
    assert kept.uri == f"{PLACEHOLDER_HOST}/serving-endpoints/x/invocations"
    assert kept.body == b"<redacted>"
    assert not is_databricks_config({"before_record_request": lambda r: r})


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"DATABRICKS_HOST": "adb-1.azuredatabricks.net"}, None),
        (
            {"DATABRICKS_HOST": "adb-1.azuredatabricks.net", "DATABRICKS_TOKEN": "t"},
            "https://adb-1.azuredatabricks.net",
        ),
        (
            {
                "DATABRICKS_HOST": LOCAL,
                "DATABRICKS_CLIENT_ID": "i",
                "DATABRICKS_CLIENT_SECRET": "s",
            },
            LOCAL,
        ),
        ({"DATABRICKS_HOST": LOCAL, "DATABRICKS_CLIENT_ID": "i"}, None),
    ],
)
def test_live_needs_a_host_and_credentials(
    env: dict[str, str], expected: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HOST", "TOKEN", "CLIENT_ID", "CLIENT_SECRET"):
        monkeypatch.delenv(f"DATABRICKS_{name}", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert live_host() == expected
