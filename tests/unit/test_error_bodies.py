"""Every error body shape Databricks and its proxies send becomes a clear typed error."""

from __future__ import annotations

import json
import pickle

import httpx
import pytest

from langchain_dbx_serving import errors
from langchain_dbx_serving.transport._errors import (
    parse_error_body,
    parse_retry_after,
    status_error,
)


def reply(status: int, body: bytes, **headers: str) -> httpx.Response:
    request = httpx.Request("POST", "https://example.invalid/serving-endpoints/x/invocations")
    return httpx.Response(status, content=body, headers=headers, request=request)


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        (
            '{"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "Endpoint x not found"}',
            "RESOURCE_DOES_NOT_EXIST",
            "Endpoint x not found",
        ),
        (
            '{"error": {"code": 429, "message": "slow down", "type": "rate_limit"}}',
            "429",
            "slow down",
        ),
        (
            '{"detail": "Invalid input: text parts are not allowed"}',
            None,
            "Invalid input: text parts are not allowed",
        ),
        (
            "REQUEST_LIMIT_EXCEEDED: Exceeded workspace rate limit",
            "REQUEST_LIMIT_EXCEEDED",
            "Exceeded workspace rate limit",
        ),
        (
            "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>",
            None,
            "an HTML error page: 502 Bad Gateway",
        ),
        ("upstream connect error", None, "upstream connect error"),
        ("", None, ""),
    ],
)
def test_error_body_shapes(body: str, code: str | None, message: str) -> None:
    parsed_code, parsed_message, _ = parse_error_body(body)
    assert (parsed_code, parsed_message) == (code, message)


def test_message_that_is_itself_json_is_kept_readable() -> None:
    inner = '{"error_code": 400, "message": "guardrail: PII detected"}'
    body = json.dumps({"error_code": "BAD_REQUEST", "message": inner})
    code, message, _ = parse_error_body(body)
    assert code == "BAD_REQUEST"
    assert "guardrail: PII detected" in message


@pytest.mark.parametrize(
    ("status", "cls", "hint"),
    [
        (400, errors.BadRequestError, "request parameters"),
        (401, errors.AuthenticationError, "token is valid"),
        (403, errors.PermissionDeniedError, "CAN QUERY"),
        (404, errors.EndpointNotFoundError, "check the endpoint name"),
        (429, errors.RateLimitError, "rate limit"),
        (500, errors.ServerError, "retry later"),
        (503, errors.ServiceUnavailableError, "scaling up"),
    ],
)
def test_status_error_says_what_happened_and_what_to_do(status, cls, hint) -> None:
    err = status_error(
        reply(
            status, b'{"error_code": "SOME_CODE", "message": "it broke"}', **{"x-request-id": "r-1"}
        ),
        b'{"error_code": "SOME_CODE", "message": "it broke"}',
        endpoint="my-endpoint",
    )
    assert isinstance(err, cls)
    assert isinstance(err, errors.DatabricksServingError)
    assert (err.status_code, err.error_code, err.endpoint, err.request_id) == (
        status,
        "SOME_CODE",
        "my-endpoint",
        "r-1",
    )
    assert str(err).startswith(f"endpoint 'my-endpoint' returned {status} SOME_CODE: it broke — ")
    assert hint in str(err)
    assert "r-1" in str(err)


def test_retry_after_seconds_and_dates() -> None:
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after("0.5") == 0.5
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after("100000") == 120.0
    err = status_error(reply(429, b"", **{"retry-after": "3"}), b"", endpoint="e")
    assert err.retry_after == 3.0


def test_errors_pickle_with_their_fields() -> None:
    err = errors.RateLimitError(
        "endpoint 'e' returned 429", status_code=429, error_code="X", endpoint="e", retry_after=1.0
    )
    copy = pickle.loads(pickle.dumps(err))
    assert type(copy) is errors.RateLimitError
    assert (copy.status_code, copy.error_code, copy.retry_after, str(copy)) == (
        429,
        "X",
        1.0,
        str(err),
    )
