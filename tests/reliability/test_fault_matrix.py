"""Every fault and bad reply, against both chat protocols, invoked and streamed.

Each case plans faults on the local endpoint, queues one ordinary answer, makes one call and
checks what a user sees: the answer, or our typed error with a useful message; how many
requests reached the endpoint (1 + retries); and that nothing hangs. With
``RELIABILITY_REPORT=<file>`` the observed outcomes are written as the markdown table of
``docs/reliability.md``.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from langchain_dbx_serving import (
    AuthenticationError,
    ChatDatabricksResponses,
    ChatDatabricksServing,
    DatabricksServingError,
    EndpointNotFoundError,
    MalformedResponseError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    ServingConnectionError,
    ServingTimeoutError,
    StreamInterruptedError,
)
from langchain_dbx_serving.testing import Fault, LocalEndpoint, Reply
from tests.support.serving import queue

ANSWER = ["one ", "two ", "three ", "four"]
MB = 1_000_000


def _429(retry_after: float | None = None) -> Any:
    return Reply.error(429, "REQUEST_LIMIT_EXCEEDED", "Too many requests", retry_after=retry_after)


def _503(fmt: str = "json") -> Any:
    return Reply.error(503, "TEMPORARILY_UNAVAILABLE", "Service Unavailable", format=fmt)


@dataclass(frozen=True)
class Case:
    """One fault scenario: the plan, the call's settings, and what the user must see."""

    name: str
    plan: tuple[Any, ...] = ()
    error: type[DatabricksServingError] | None = None
    phrase: str | dict[str, str] = ""
    requests: int = 1
    settings: dict[str, Any] = field(default_factory=dict)
    limits: dict[str, int] = field(default_factory=dict)
    extra_text: int = 0
    closed_port: bool = False

    def expected_phrase(self, mode: str) -> str:
        return self.phrase if isinstance(self.phrase, str) else self.phrase[mode]


CASES = [
    Case("429 with Retry-After: 0, then an answer", (_429(0),), requests=2),
    Case("429 without Retry-After, then an answer", (_429(),), requests=2),
    Case(
        "429 on every attempt (max_retries=2)",
        (_429(), _429(), _429()),
        RateLimitError,
        "gave up after 2 retries",
        requests=3,
        settings={"max_retries": 2},
    ),
    Case(
        "429 with Retry-After: 120, over the 60 s retry budget",
        (_429(120),),
        RateLimitError,
        "not retried: waiting 120s exceeds the 60s retry budget",
    ),
    Case("429 with max_retries=0", (_429(),), RateLimitError, "429", settings={"max_retries": 0}),
    Case("burst of three 503s, then an answer", (_503(), _503(), _503()), requests=4),
    Case("503 HTML page from a proxy, then an answer", (_503("html"),), requests=2),
    Case(
        "502 HTML page from a proxy",
        (Reply.error(502, "BAD_GATEWAY", "upstream connect error", format="html"),),
        ServerError,
        "HTML error page: 502 Bad Gateway",
    ),
    Case(
        "500 from the model server",
        (Reply.error(500, "INTERNAL_ERROR", "model crashed"),),
        ServerError,
        "model crashed",
    ),
    Case("connection reset before the reply, then an answer", (Fault.reset(),), requests=2),
    Case(
        "connection reset on every attempt",
        (Fault.reset(),) * 4,
        ServingConnectionError,
        "gave up after 3 retries",
        requests=4,
    ),
    Case(
        "connection refused (nothing listening)",
        error=ServingConnectionError,
        phrase="could not connect",
        requests=0,
        settings={"max_retries": 1},
        closed_port=True,
    ),
    Case(
        "stall before the reply (timeout=0.3)",
        (Fault.stall(),),
        ServingTimeoutError,
        "gave up after 0.3s waiting for the first byte of the reply",
        settings={"timeout": 0.3},
    ),
    Case(
        "stall after 2 events (timeout=0.3)",
        (Fault.stall(after=2),),
        ServingTimeoutError,
        "did not finish within timeout=0.3s",
        settings={"timeout": 0.3},
    ),
    Case(
        "connection dropped after 2 events (whole reply: half-way)",
        (Fault.drop(after=2),),
        StreamInterruptedError,
        "the reply is incomplete",
    ),
    Case(
        "malformed JSON (whole body; stream: an event after the first)",
        (Fault.garbage("{not json", after=1),),
        MalformedResponseError,
        "{not json",
    ),
    Case(
        "HTML page with status 200 instead of JSON/SSE",
        (Fault.garbage("<html><body>Sign in to continue</body></html>", after=1),),
        MalformedResponseError,
        "Sign in to continue",
    ),
    Case("8 MB answer (one 8 MB SSE event)", (Fault.oversized(8 * MB),), extra_text=8 * MB),
    Case(
        "2 MB answer over a 1 MB limit",
        (Fault.oversized(2 * MB),),
        MalformedResponseError,
        {"invoke": "larger than 1000000 bytes", "stream": "grew past 1000000 bytes"},
        limits={"max_reply_bytes": MB, "max_event_bytes": MB},
    ),
    Case(
        "wrong token (401)",
        error=AuthenticationError,
        phrase="check that the token is valid",
        settings={"token": "dapi-not-the-right-token-0000"},
    ),
    Case(
        "403 PERMISSION_DENIED",
        (Reply.error(403, "PERMISSION_DENIED", "User does not have CAN QUERY permission"),),
        PermissionDeniedError,
        "CAN QUERY permission",
    ),
    Case(
        "unknown endpoint (404)",
        error=EndpointNotFoundError,
        phrase="endpoint 'no-such-endpoint' returned 404 RESOURCE_DOES_NOT_EXIST",
        settings={"endpoint": "no-such-endpoint"},
    ),
]

PROTOCOLS = {"chat completions": ChatDatabricksServing, "responses": ChatDatabricksResponses}
_observed: list[tuple[str, str, str, str, int, float]] = []


@pytest.fixture(scope="module", autouse=True)
def report() -> Iterator[None]:
    """Write the observed outcomes when ``RELIABILITY_REPORT`` names a file."""
    yield
    path = os.environ.get("RELIABILITY_REPORT")
    if path and _observed:
        lines = [
            "| fault | protocol | call | outcome | requests | time |",
            "|---|---|---|---|---|---|",
        ]
        for name, protocol, mode, outcome, requests, seconds in _observed:
            cell = outcome.replace("|", "\\|")
            lines.append(
                f"| {name} | {protocol} | {mode} | {cell} | {requests} | {seconds:.2f} s |"
            )
        with open(path, "w") as out:
            out.write("\n".join(lines) + "\n")


def _closed_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def _call(llm: Any, mode: str, received: list[str]) -> str:
    """The answer text; streamed chunks' texts are appended to ``received`` as they come."""
    if mode == "invoke":
        return llm.invoke("hi").text
    for chunk in llm.stream("hi"):
        received.append(chunk.text)
    return "".join(received)


@pytest.mark.parametrize("mode", ["invoke", "stream"])
@pytest.mark.parametrize("protocol", list(PROTOCOLS))
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_fault(faulty: LocalEndpoint, case: Case, protocol: str, mode: str) -> None:
    faulty.faults.add(*case.plan)
    queue(faulty, Reply.text(ANSWER, usage=(3, 4)))
    host = _closed_port() if case.closed_port else faulty.host
    settings = {"endpoint": "chat", "host": host, "token": faulty.token, **case.settings}
    llm = PROTOCOLS[protocol](**settings)
    for name, value in case.limits.items():
        setattr(llm.transport, name, value)

    start = time.perf_counter()
    received: list[str] = []
    try:
        text = _call(llm, mode, received)
    except DatabricksServingError as exc:
        error: DatabricksServingError | None = exc
        outcome = f"{type(exc).__name__}: {exc.message}"
    else:
        error = None
        outcome = f"answer ({len(text)} characters)"
    elapsed = time.perf_counter() - start
    _observed.append((case.name, protocol, mode, outcome, len(faulty.requests), elapsed))

    assert len(faulty.requests) == case.requests
    assert elapsed < 5, "a fault must never hang the caller"
    if case.error is None:
        assert error is None, outcome
        assert text == "".join(ANSWER) + "x" * case.extra_text
        return
    assert isinstance(error, case.error), outcome
    assert case.expected_phrase(mode) in str(error)
    if isinstance(error, StreamInterruptedError) and mode == "stream":
        # What arrived is attached, and it is only a prefix: never passed off as the answer.
        got = error.partial.text if error.partial is not None else ""
        assert got == "".join(received)
        assert "".join(ANSWER).startswith(got) and got != "".join(ANSWER)
