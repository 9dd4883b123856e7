"""Errors as Databricks sends them: auth, unknown endpoints, bad bodies, scripted failures,
and streams that are cut off."""

from __future__ import annotations

import httpx
import pytest

from langchain_dbx_serving.testing import LocalEndpoint, Reply
from tests.testing.helpers import chat, parse_sse, responses, script

CHAT_URL = "/serving-endpoints/chat/completions"


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "Credential was not sent or was of an unsupported type for this API."),
        ({"Authorization": "Bearer wrong"}, "Invalid access token."),
        ({"Authorization": "Basic abc"}, "Invalid access token."),
    ],
)
def test_missing_or_wrong_token_gets_401(ep: LocalEndpoint, headers: dict, message: str) -> None:
    response = httpx.post(ep.base_url + "/chat/completions", json=chat(), headers=headers)

    assert response.status_code == 401
    assert response.json() == {"error_code": "UNAUTHENTICATED", "message": message}


def test_no_token_configured_means_no_auth_check() -> None:
    with LocalEndpoint([Reply.text("open")], token=None) as ep:
        response = httpx.post(ep.invocations_url("any"), json=chat())

    assert response.json()["choices"][0]["message"]["content"] == "open"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/serving-endpoints/nope/invocations", chat()),
        (CHAT_URL, {**chat(), "model": "nope"}),
        ("/serving-endpoints/responses", {**responses(), "model": "nope"}),
    ],
)
def test_unknown_endpoint_gets_404_naming_it(client: httpx.Client, path: str, body: dict) -> None:
    response = client.post(path, json=body)

    assert response.status_code == 404
    assert response.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    assert "'nope'" in response.json()["message"]


def test_single_backend_serves_any_endpoint_name() -> None:
    with LocalEndpoint([Reply.text("a"), Reply.text("b")], token=None) as ep:
        first = httpx.post(ep.invocations_url("whatever"), json=chat()).json()
        second = httpx.post(ep.base_url + "/chat/completions", json={**chat(), "model": "x"}).json()

    assert (first["model"], second["model"]) == ("whatever", "x")


@pytest.mark.parametrize(
    ("path", "body", "code", "fragment"),
    [
        (
            CHAT_URL,
            {"messages": [{"role": "user", "content": "hi"}]},
            "INVALID_PARAMETER_VALUE",
            "'model'",
        ),
        (CHAT_URL, {"model": "chat"}, "INVALID_PARAMETER_VALUE", "'messages'"),
        (CHAT_URL, {**chat(), "stream": "yes"}, "INVALID_PARAMETER_VALUE", "'stream'"),
        (
            CHAT_URL,
            {"model": "chat", "messages": [{"role": "robot", "content": "x"}]},
            "INVALID_PARAMETER_VALUE",
            "role",
        ),
        (
            "/serving-endpoints/chat/invocations",
            {"prompt": "hi"},
            "INVALID_PARAMETER_VALUE",
            "neither",
        ),
        (
            "/serving-endpoints/responses",
            {"model": "chat", "input": []},
            "INVALID_PARAMETER_VALUE",
            "'input'",
        ),
        (
            "/serving-endpoints/responses",
            {
                "model": "chat",
                "input": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
            },
            "INVALID_PARAMETER_VALUE",
            "Invalid type: text",
        ),
        (
            "/serving-endpoints/responses",
            {"model": "chat", "input": [{"role": "user", "content": 3}]},
            "INVALID_PARAMETER_VALUE",
            "input[0].content must be a string or a list",
        ),
        (
            "/serving-endpoints/agent/invocations",
            responses(),
            "INVALID_PARAMETER_VALUE",
            "'messages'",
        ),
    ],
)
def test_wrong_bodies_get_400(
    client: httpx.Client, path: str, body: dict, code: str, fragment: str
) -> None:
    response = client.post(path, json=body)

    assert response.status_code == 400
    assert response.json()["error_code"] == code
    assert fragment in response.json()["message"]


def test_malformed_json_gets_400_bad_request(client: httpx.Client) -> None:
    response = client.post(
        CHAT_URL, content=b"{not json", headers={"content-type": "application/json"}
    )

    assert response.status_code == 400
    assert response.json()["error_code"] == "BAD_REQUEST"


def test_assistant_history_may_use_output_text_parts(
    ep: LocalEndpoint, client: httpx.Client
) -> None:
    script(ep, Reply.text("fine"))
    history = [
        {"role": "user", "content": [{"type": "input_text", "text": "hi"}]},
        {"role": "assistant", "content": [{"type": "output_text", "text": "hello"}]},
        {"role": "user", "content": "again"},
    ]

    response = client.post("/serving-endpoints/responses", json={"model": "chat", "input": history})

    assert response.status_code == 200


def test_unknown_route_gets_databricks_404(client: httpx.Client) -> None:
    response = client.post("/api/2.0/nothing", json={})

    assert response.status_code == 404
    assert response.json()["error_code"] == "ENDPOINT_NOT_FOUND"


def test_scripted_json_error_with_retry_after(ep: LocalEndpoint, client: httpx.Client) -> None:
    script(
        ep,
        Reply.error(429, "REQUEST_LIMIT_EXCEEDED", "Exceeded 2 requests per minute", retry_after=3),
    )

    response = client.post(CHAT_URL, json=chat())

    assert response.status_code == 429
    assert response.headers["retry-after"] == "3"
    assert response.headers["x-request-id"]
    assert response.json() == {
        "error_code": "REQUEST_LIMIT_EXCEEDED",
        "message": "Exceeded 2 requests per minute",
    }


def test_scripted_plain_text_html_and_openai_style_errors(
    ep: LocalEndpoint, client: httpx.Client
) -> None:
    script(
        ep,
        Reply.error(503, "TEMPORARILY_UNAVAILABLE", "scaling from zero", format="text"),
        Reply.error(502, "BAD_GATEWAY", "upstream died", format="html"),
        Reply.error(400, "invalid_request_error", "bad tool schema", format="openai"),
    )

    text = client.post(CHAT_URL, json=chat())
    html = client.post(CHAT_URL, json=chat())
    openai_style = client.post(CHAT_URL, json=chat())

    assert (text.status_code, text.text) == (503, "TEMPORARILY_UNAVAILABLE: scaling from zero")
    assert text.headers["content-type"].startswith("text/plain")
    assert html.status_code == 502 and html.headers["content-type"].startswith("text/html")
    assert "<title>502 Bad Gateway</title>" in html.text and "upstream died" in html.text
    assert openai_style.json()["error"]["message"] == "bad tool schema"
    assert openai_style.json()["error"]["code"] == "invalid_request_error"


def test_an_error_answers_a_stream_request_with_plain_json(
    ep: LocalEndpoint, client: httpx.Client
) -> None:
    script(ep, Reply.error(500, "INTERNAL_ERROR", "boom"))

    response = client.post(CHAT_URL, json=chat(stream=True))

    assert response.status_code == 500
    assert response.headers["content-type"] == "application/json"


def test_error_details_are_kept(ep: LocalEndpoint, client: httpx.Client) -> None:
    details = [{"@type": "type.googleapis.com/google.rpc.RequestInfo", "request_id": "r1"}]
    script(ep, Reply.error(403, "PERMISSION_DENIED", "no access", details=details))

    body = client.post(CHAT_URL, json=chat()).json()

    assert body["details"] == details


def test_empty_script_gets_a_500_that_says_so(ep: LocalEndpoint, client: httpx.Client) -> None:
    script(ep, Reply.text("only one"))
    client.post(CHAT_URL, json=chat())

    response = client.post(CHAT_URL, json=chat())

    assert response.status_code == 500
    assert "no scripted reply left for endpoint 'chat'" in response.json()["message"]


def test_a_failing_backend_gets_a_500(ep: LocalEndpoint, client: httpx.Client) -> None:
    def broken(request: object) -> Reply:
        raise KeyError("missing")

    script(ep, broken)

    response = client.post(CHAT_URL, json=chat())

    assert response.status_code == 500
    assert response.json()["error_code"] == "INTERNAL_ERROR"
    assert "KeyError" in response.json()["message"]


def test_cut_stream_is_an_incomplete_chunked_read(ep: LocalEndpoint, client: httpx.Client) -> None:
    script(ep, Reply.text("one two three four five six", cut_after=3))
    received: list[str] = []

    with (
        pytest.raises(httpx.RemoteProtocolError, match="incomplete chunked read"),
        client.stream("POST", CHAT_URL, json=chat(stream=True)) as response,
    ):
        received.extend(response.iter_lines())

    events = parse_sse("\n".join(received))
    assert len(events) == 3
    assert "[DONE]" not in events
    assert all(e["choices"][0]["finish_reason"] is None for e in events)


def test_cut_whole_reply_is_an_incomplete_body(ep: LocalEndpoint, client: httpx.Client) -> None:
    script(ep, Reply.text("complete answer", cut_after=0))

    with pytest.raises(httpx.RemoteProtocolError):
        client.post(CHAT_URL, json=chat())


def test_the_endpoint_keeps_serving_after_a_cut(ep: LocalEndpoint, client: httpx.Client) -> None:
    script(ep, Reply.text("a b c", cut_after=1), Reply.text("next"))
    with (
        pytest.raises(httpx.RemoteProtocolError),
        client.stream("POST", CHAT_URL, json=chat(stream=True)) as r,
    ):
        r.read()

    response = client.post(CHAT_URL, json=chat())

    assert response.json()["choices"][0]["message"]["content"] == "next"


def test_in_stream_error_event_for_chat_completions(
    ep: LocalEndpoint, client: httpx.Client
) -> None:
    script(
        ep,
        Reply.text("par", stream_error="overloaded", stream_error_code="TEMPORARILY_UNAVAILABLE"),
    )

    events = parse_sse(client.post(CHAT_URL, json=chat(stream=True)).text)

    assert events[-2] == {
        "error": {
            "message": "overloaded",
            "type": "server_error",
            "code": "TEMPORARILY_UNAVAILABLE",
        }
    }
    assert events[-1] == "[DONE]"


def test_a_request_nested_too_deep_gets_400_not_500(
    client: httpx.Client, ep: LocalEndpoint
) -> None:
    # A body deeper than a JSON parser can hold (Python's recursion limit) is a bad request, as
    # any other malformed body is; the endpoint still records that it arrived.
    deep = "[" * 100_000 + "]" * 100_000
    raw = '{"messages": [{"role": "user", "content": ' + deep + "}]}"

    response = client.post(CHAT_URL, content=raw, headers={"Content-Type": "application/json"})

    assert response.status_code == 400
    assert response.json()["error_code"] == "BAD_REQUEST"
    assert "nested too deeply" in response.json()["message"]
    assert ep.requests[-1].path == CHAT_URL
    assert ep.requests[-1].body is None
