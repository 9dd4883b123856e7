"""The transport's own clients send straight to httpx's transports (``transport/_direct.py``):
what ``Client.send`` did for them still happens, and a user's injected client still gets all
of ``Client.send`` (its hooks, cookies and mounts).

Cases: a proxy from the environment is used for a plain-http host that is not loopback, next to
a loopback host the same client sends to directly; the whole-call deadline holds at the socket
of that proxy's connections; httpx's ``HTTP Request:`` log line is written; an injected client's
event hooks, cookies and mounts apply, sync and async.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import httpx
import pytest

from langchain_dbx_serving import ChatDatabricksServing
from langchain_dbx_serving.auth import TokenCredentials
from langchain_dbx_serving.errors import ServingTimeoutError
from langchain_dbx_serving.transport.client import Transport
from tests.reliability.raw_server import RawServer, Trickle, http_head

TOKEN = "direct-send-token-0123456789"
REMOTE = "http://workspace.invalid"  # never resolved: reachable only through the proxy
PATH = "/serving-endpoints/m/invocations"
SLACK = 3.0  # on top of the deadline, for a loaded 2-core machine


def reply(text: str) -> bytes:
    body = json.dumps(
        {"choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]}
    ).encode()
    return http_head(Content_Length=str(len(body)), Connection="close") + body


def targets(srv: RawServer) -> list[str]:
    return [raw.split(b" ", 2)[1].decode() for raw in srv.requests]


def ours(proxy: RawServer) -> list[bytes]:
    """The requests for ``REMOTE`` that reached ``proxy``. The proxy is set in the environment
    of the whole process: another library's background thread left by an earlier test (e.g.
    databricks-sdk fetching a host's ``/.well-known/databricks-config``) may go through it too."""
    return [raw for raw in proxy.requests if raw.split(b" ", 2)[1].startswith(REMOTE.encode())]


@pytest.mark.parametrize("variable", ["HTTP_PROXY", "ALL_PROXY"])
def test_an_environment_proxy_carries_a_remote_host_next_to_a_direct_loopback_one(
    raw_servers: Any, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    """One transport, two origins: each goes its own way, call after call, sync and async."""
    proxy, local = raw_servers([reply("via proxy")]), raw_servers([reply("direct")])
    monkeypatch.setenv(variable, proxy.url)
    transport = Transport(lambda: TokenCredentials(TOKEN), allow_insecure_http=True, max_retries=0)
    body = {"messages": [{"role": "user", "content": "hi"}]}

    async def both() -> list[Any]:
        return [
            await transport.apost_json(REMOTE + PATH, body),
            await transport.apost_json(local.url + PATH, body),
            await transport.apost_json(REMOTE + PATH, body),
        ]

    answers = [transport.post_json(url + PATH, body) for url in (REMOTE, local.url, REMOTE)]
    answers += asyncio.run(both())
    transport.close()

    texts = [answer["choices"][0]["message"]["content"] for answer in answers]
    assert texts == ["via proxy", "direct", "via proxy"] * 2
    # absolute form: a request to a proxy
    assert [raw.split(b" ")[1] for raw in ours(proxy)] == [(REMOTE + PATH).encode()] * 4
    assert targets(local) == [PATH] * 2
    assert all(b"authorization: bearer " + TOKEN.encode() in raw.lower() for raw in ours(proxy))


@pytest.mark.parametrize("mode", ["invoke", "ainvoke"])
def test_the_deadline_holds_at_the_socket_of_a_proxy_connection(
    raw_servers: Any, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    """A status line trickled a byte every 0.2 s never trips httpx's per-read timeout; only the
    deadline backend, installed in the proxy's pool too, ends the call on time."""
    head = http_head(Content_Length="100") * 20
    proxy = raw_servers([Trickle(head, 0.2)])
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    model = ChatDatabricksServing(
        endpoint="m", host=REMOTE, token=TOKEN, timeout=1.5, max_retries=0,
        allow_insecure_http=True,
    )  # fmt: skip
    started = time.monotonic()
    with pytest.raises(ServingTimeoutError, match=r"timeout=1\.5s"):
        model.invoke("hi") if mode == "invoke" else asyncio.run(model.ainvoke("hi"))
    assert time.monotonic() - started < 1.5 + SLACK
    assert [raw.split(b" ")[1] for raw in ours(proxy)] == [(REMOTE + PATH).encode()]


def test_httpx_request_log_line_is_still_written(
    raw_servers: Any, caplog: pytest.LogCaptureFixture
) -> None:
    srv = raw_servers([reply("fine")])
    model = ChatDatabricksServing(endpoint="m", host=srv.url, token=TOKEN, max_retries=0)
    with caplog.at_level(logging.INFO, logger="httpx"):
        assert model.invoke("hi").text == "fine"
        assert asyncio.run(model.ainvoke("hi")).text == "fine"

    lines = [r.getMessage() for r in caplog.records if r.name == "httpx"]
    assert lines == [f'HTTP Request: POST {srv.url}{PATH} "HTTP/1.1 200 OK"'] * 2


def test_an_injected_clients_hooks_cookies_and_mounts_apply(raw_servers: Any) -> None:
    proxy = raw_servers([reply("mounted")])
    seen: list[str] = []

    def hook(request: httpx.Request) -> None:
        seen.append(f"sync {request.url}")

    async def ahook(request: httpx.Request) -> None:
        seen.append(f"async {request.url}")

    def options(hooks: list[Any], transport: Any) -> dict[str, Any]:
        return {
            "event_hooks": {"request": hooks},
            "cookies": {"session": "c0ffee"},
            "mounts": {REMOTE: transport},
        }

    sync_client = httpx.Client(**options([hook], httpx.HTTPTransport(proxy=proxy.url)))
    async_client = httpx.AsyncClient(**options([ahook], httpx.AsyncHTTPTransport(proxy=proxy.url)))
    model = ChatDatabricksServing(
        endpoint="m", host=REMOTE, token=TOKEN, max_retries=0, allow_insecure_http=True,
        http_client=sync_client, http_async_client=async_client,
    )  # fmt: skip

    async def ainvoke() -> str:
        try:
            return (await model.ainvoke("hi")).text
        finally:
            await async_client.aclose()

    with sync_client:
        assert model.invoke("hi").text == "mounted"
    assert asyncio.run(ainvoke()) == "mounted"

    assert seen == [f"sync {REMOTE}{PATH}", f"async {REMOTE}{PATH}"]
    assert targets(proxy) == [REMOTE + PATH] * 2
    assert all(b"cookie: session=c0ffee" in raw.lower() for raw in proxy.requests)
