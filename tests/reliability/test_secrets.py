"""The token never shows: not in reprs, dumps, logs, errors, tracebacks (even with their frames'
locals) or cassettes; and it is never sent in clear text to a host that is not loopback."""

from __future__ import annotations

import logging
import socket
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from langchain_core.load import dumpd, dumps

from langchain_dbx_serving import (
    AgentEndpoint,
    AuthenticationError,
    ChatDatabricksResponses,
    ChatDatabricksServing,
    ConfigurationError,
    DatabricksServingError,
    MalformedResponseError,
)
from langchain_dbx_serving.auth import check_url_is_safe
from langchain_dbx_serving.testing import Fault, LocalEndpoint, Reply, ScriptedBackend
from langchain_dbx_serving.transport import client as transport_client

# Token-shaped (so scrubbers treat it as a real one), built at runtime so that the
# repository's own secret scanner does not flag this file.
SECRET = "dapi" + "0123456789abcdef" * 2
ANSWER = Reply.text(["one ", "two ", "three"])


@pytest.fixture(scope="module")
def _endpoint() -> Iterator[LocalEndpoint]:
    with LocalEndpoint({"chat": ScriptedBackend()}, token=SECRET) as ep:
        yield ep


@pytest.fixture
def ep(_endpoint: LocalEndpoint, monkeypatch: pytest.MonkeyPatch) -> LocalEndpoint:
    """A local endpoint whose token is ``SECRET``, with an empty script and fault plan."""
    monkeypatch.setattr(transport_client, "_INITIAL_BACKOFF", 0.001)
    backend = _endpoint.backend("chat")
    assert isinstance(backend, ScriptedBackend)
    backend.clear()
    _endpoint.faults.clear()
    return _endpoint


def clients(host: str, **settings: Any) -> list[Any]:
    """One of each public class, with ``SECRET`` as their token."""
    fields = {"endpoint": "chat", "host": host, "token": SECRET, **settings}
    return [
        ChatDatabricksServing(**fields),
        ChatDatabricksResponses(**fields),
        AgentEndpoint(chat=ChatDatabricksResponses(**fields)),
    ]


def failure_of(call: Callable[[], Any]) -> DatabricksServingError:
    """Run ``call`` in a frame holding no secret; return the error it raised."""
    try:
        call()
    except DatabricksServingError as exc:
        return exc
    raise AssertionError("the call did not fail")


def every_rendering(err: BaseException) -> str:
    """What an error can show: str, repr, fields, the traceback with chained causes, and the
    traceback with every frame's locals (pytest --showlocals, error trackers)."""
    with_locals = traceback.TracebackException.from_exception(err, capture_locals=True)
    return "\n".join(
        [
            str(err),
            repr(err),
            repr(vars(err)),
            "".join(traceback.format_exception(err)),
            "".join(with_locals.format()),
        ]
    )


def run(client: Any, mode: str) -> Any:
    if mode == "invoke":
        return client.invoke("hi")
    return list(client.stream("hi"))


def test_no_public_class_shows_the_token(ep: LocalEndpoint) -> None:
    for client in clients(ep.host):
        chat = client.chat if isinstance(client, AgentEndpoint) else client
        shown = [
            repr(client),
            str(client),
            str(dumpd(client)),
            dumps(client),
            client.model_dump_json(),
            repr(client.model_dump()),
            repr(chat.transport),
            repr(chat.transport.credentials),
        ]
        for text in shown:
            assert SECRET not in text


FAULTS = {
    "dropped mid-stream": (Fault.drop(after=2), {}),
    "stalled (read timeout)": (Fault.stall(after=2), {"timeout": 0.3}),
    "reset before the reply": (Fault.reset(), {"max_retries": 0}),
    "malformed event": (Fault.garbage(after=1), {}),
    "429 retried then 404": (Reply.error(429, "REQUEST_LIMIT_EXCEEDED", "slow"), {}),
}


@pytest.mark.parametrize("mode", ["invoke", "stream"])
@pytest.mark.parametrize("fault", list(FAULTS))
def test_errors_and_their_tracebacks_never_show_the_token(
    ep: LocalEndpoint, fault: str, mode: str
) -> None:
    entry, settings = FAULTS[fault]
    for client in clients(ep.host, **settings):
        ep.faults.add(entry)
        if fault.startswith("429"):
            ep.faults.add(Reply.error(404, "RESOURCE_DOES_NOT_EXIST", "gone"))
        ep.backend("chat").add(ANSWER)  # type: ignore[attr-defined]

        err = failure_of(lambda c=client: run(c, mode))

        assert SECRET not in every_rendering(err)
        ep.faults.clear()
        ep.backend("chat").clear()  # type: ignore[attr-defined]


@pytest.mark.parametrize("mode", ["invoke", "stream"])
def test_a_rejected_or_refused_token_is_not_shown(ep: LocalEndpoint, mode: str) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    wrong = ChatDatabricksServing(endpoint="chat", host=ep.host, token=SECRET[::-1])
    refused = ChatDatabricksServing(endpoint="chat", host=closed, token=SECRET, max_retries=0)

    rejected = failure_of(lambda: run(wrong, mode))
    unreachable = failure_of(lambda: run(refused, mode))

    assert isinstance(rejected, AuthenticationError)
    assert SECRET[::-1] not in every_rendering(rejected)
    assert unreachable.__cause__ is not None  # the httpx error is chained, for debugging
    assert SECRET not in every_rendering(unreachable)


def test_a_token_echoed_back_by_the_server_is_masked(ep: LocalEndpoint) -> None:
    llm = ChatDatabricksServing(endpoint="chat", host=ep.host, token=SECRET)
    ep.faults.add(
        Reply.error(401, "UNAUTHENTICATED", f"Invalid token 'Bearer {SECRET}' for this workspace"),
        Fault.garbage(f"<html>Authorization: Bearer {SECRET}</html>"),
    )
    ep.backend("chat").add(ANSWER)  # type: ignore[attr-defined]

    rejected = failure_of(lambda: llm.invoke("hi"))
    garbled = failure_of(lambda: llm.invoke("hi"))

    assert isinstance(rejected, AuthenticationError)
    assert "Invalid token 'Bearer ***'" in str(rejected)
    assert isinstance(garbled, MalformedResponseError)
    assert "Bearer ***" in str(garbled)
    for err in (rejected, garbled):
        # Frames' locals may hold the raw bytes the server sent: only what we render is masked.
        shown = [str(err), repr(err), repr(vars(err)), "".join(traceback.format_exception(err))]
        assert SECRET not in "\n".join(shown)


def test_debug_logs_of_every_path_never_show_the_token(
    ep: LocalEndpoint, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        for client in clients(ep.host):
            ep.faults.add(Reply.error(429, "REQUEST_LIMIT_EXCEEDED", "slow"), Fault.reset())
            ep.backend("chat").add(ANSWER, ANSWER)  # type: ignore[attr-defined]
            client.invoke("hi")
            list(client.stream("hi"))

    assert "retrying" in caplog.text
    assert any(r.name.startswith("httpcore") for r in caplog.records)  # they were on
    assert SECRET not in caplog.text
    assert all(SECRET not in repr(r.args) for r in caplog.records)


def test_cassettes_never_hold_the_token(ep: LocalEndpoint, tmp_path: Path) -> None:
    from langchain_dbx_serving.testing.plugin import databricks_cassette

    cassette = tmp_path / "session.yaml"
    ep.faults.add(Reply.error(403, "PERMISSION_DENIED", "no CAN QUERY"))
    ep.backend("chat").add(ANSWER, ANSWER)  # type: ignore[attr-defined]
    llm = ChatDatabricksServing(endpoint="chat", host=ep.host, token=SECRET, max_retries=0)

    with databricks_cassette(cassette, record_mode="once"):
        failure_of(lambda: llm.invoke("hi"))
        llm.invoke("hi")
        list(llm.stream("hi"))

    recorded = cassette.read_text()
    assert "serving-endpoints" in recorded
    assert SECRET not in recorded


# -- plain http --------------------------------------------------------------------------------


def recording_clients() -> tuple[list[httpx.Request], httpx.Client, httpx.AsyncClient]:
    """httpx clients that answer every request locally and remember what was sent."""
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        body = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}}]}
        return httpx.Response(200, json=body)

    mock = httpx.MockTransport(answer)
    return seen, httpx.Client(transport=mock), httpx.AsyncClient(transport=mock)


@pytest.mark.parametrize("cls", [ChatDatabricksServing, ChatDatabricksResponses])
async def test_the_token_is_never_sent_over_plain_http_to_a_remote_host(cls: type) -> None:
    seen, http, ahttp = recording_clients()
    llm = cls(
        endpoint="x",
        host="http://adb-1.azuredatabricks.net",
        token=SECRET,
        http_client=http,
        http_async_client=ahttp,
    )
    agent = AgentEndpoint(chat=llm) if cls is ChatDatabricksResponses else None

    calls: list[Callable[[], Any]] = [lambda: llm.invoke("hi"), lambda: list(llm.stream("hi"))]
    if agent is not None:
        calls.append(lambda: agent.invoke("hi"))
    for call in calls:
        with pytest.raises(ConfigurationError) as info:
            call()
        assert "refusing to send the Databricks token over plain http://" in str(info.value)
        assert "allow_insecure_http=True" in str(info.value)
    with pytest.raises(ConfigurationError):
        await llm.ainvoke("hi")
    assert seen == []


async def test_allow_insecure_http_sends_it_when_the_user_says_so() -> None:
    seen, http, ahttp = recording_clients()
    llm = ChatDatabricksServing(
        endpoint="x",
        host="http://gateway.internal:8080",
        token=SECRET,
        allow_insecure_http=True,
        http_client=http,
        http_async_client=ahttp,
    )

    assert llm.invoke("hi").text == "hi"
    assert (await llm.ainvoke("hi")).text == "hi"

    url = "http://gateway.internal:8080/serving-endpoints/x/invocations"
    assert [str(r.url) for r in seen] == [url, url]
    assert seen[0].headers["authorization"] == f"Bearer {SECRET}"


def test_https_and_a_plain_http_base_url_are_told_apart() -> None:
    seen, http, _ = recording_clients()
    secure = ChatDatabricksServing(
        endpoint="x", host="https://adb-1.azuredatabricks.net", token=SECRET, http_client=http
    )
    insecure_app = ChatDatabricksServing(
        endpoint="x", base_url="http://my-agent.example.com", token=SECRET, http_client=http
    )

    assert secure.invoke("hi").text == "hi"
    with pytest.raises(ConfigurationError, match=r"my-agent\.example\.com"):
        insecure_app.invoke("hi")
    assert len(seen) == 1


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://adb-1.azuredatabricks.net/serving-endpoints/x/invocations", True),
        ("http://127.0.0.1:8080/serving-endpoints/x/invocations", True),
        ("http://127.8.9.10/x", True),
        ("http://localhost:5000/x", True),
        ("http://LOCALHOST./x", True),
        ("http://[::1]:8080/x", True),
        ("http://adb-1.azuredatabricks.net/x", False),
        ("http://10.0.0.5/x", False),
        ("http://0.0.0.0:8080/x", False),
        ("http://localhost.evil.com/x", False),
        ("http://127.0.0.1.nip.io/x", False),
        ("HTTP://example.com/x", False),
    ],
)
def test_which_urls_may_carry_the_token(url: str, allowed: bool) -> None:
    if allowed:
        check_url_is_safe(url)
    else:
        with pytest.raises(ConfigurationError):
            check_url_is_safe(url)
        check_url_is_safe(url, allow_insecure_http=True)
