"""No credential travels in clear text to a machine that is not this one, whichever way the
request is routed: proxies from the environment, an injected client's proxy, redirects."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from langchain_dbx_serving import (
    APIStatusError,
    ChatDatabricksServing,
    ConfigurationError,
    DatabricksServingError,
)
from langchain_dbx_serving.transport._proxy import check_first_hop
from tests.security.echoes import dapi
from tests.security.rawserver import RawRequest, RawServer, response
from tests.security.workspace import Workspace

REMOTE_PROXY = "http://proxy.example:3128"


@pytest.fixture
def workspace() -> Iterator[tuple[Workspace, RawServer]]:
    ws = Workspace(pat=dapi())
    with RawServer(ws) as server:
        ws.url = server.url
        yield ws, server


@pytest.mark.parametrize("variable", ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"])
@pytest.mark.parametrize("loopback", ["127.0.0.1", "localhost"])
async def test_loopback_is_never_proxied(
    workspace: tuple[Workspace, RawServer],
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
    loopback: str,
) -> None:
    ws, server = workspace
    monkeypatch.setenv(variable, REMOTE_PROXY)
    host = f"http://{loopback}:{server.port}"
    llm = ChatDatabricksServing(endpoint="ep", host=host, token=ws.pat, max_retries=0)

    assert llm.invoke("hi").text == "fine"
    assert (await llm.ainvoke("hi")).text == "fine"
    assert [r.target for r in server.requests] == ["/serving-endpoints/ep/invocations"] * 2


@pytest.mark.parametrize("variable", ["HTTP_PROXY", "ALL_PROXY"])
async def test_plain_http_through_a_remote_proxy_is_refused(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    """127.0.0.2 is loopback, so the token may go there over http; but not via the proxy."""
    monkeypatch.setenv(variable, REMOTE_PROXY)
    llm = ChatDatabricksServing(
        endpoint="ep", host="http://127.0.0.2:9", token=dapi(), max_retries=0
    )

    for call in (lambda: llm.invoke("hi"), lambda: list(llm.stream("hi"))):
        with pytest.raises(ConfigurationError, match=r"through the proxy 'proxy\.example:3128'"):
            call()
    with pytest.raises(ConfigurationError, match="NO_PROXY"):
        await llm.ainvoke("hi")


def test_an_injected_clients_proxy_is_the_first_hop(workspace: tuple[Workspace, RawServer]) -> None:
    ws, server = workspace
    proxied = httpx.Client(proxy=REMOTE_PROXY)
    llm = ChatDatabricksServing(
        endpoint="ep", host=server.url, token=ws.pat, http_client=proxied, max_retries=0
    )

    with pytest.raises(ConfigurationError, match="proxy"):
        llm.invoke("hi")
    assert server.requests == []


def test_https_through_a_proxy_is_a_tunnel_that_never_shows_the_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[RawRequest] = []

    def proxy(request: RawRequest) -> bytes:
        seen.append(request)
        return response(502, "no upstream", content_type="text/plain")

    token = dapi()
    with RawServer(proxy) as server:
        monkeypatch.setenv("HTTPS_PROXY", server.url)
        llm = ChatDatabricksServing(
            endpoint="ep", host="https://workspace.invalid", token=token, max_retries=0
        )
        with pytest.raises(DatabricksServingError) as info:  # the proxy refuses the tunnel
            llm.invoke("hi")

    assert [(r.method, r.target) for r in seen] == [("CONNECT", "workspace.invalid:443")]
    assert token.encode() not in seen[0].raw
    assert token not in str(info.value)


@pytest.mark.parametrize(
    ("url", "proxy", "allowed"),
    [
        ("https://adb-1.azuredatabricks.net/x", REMOTE_PROXY, True),
        ("http://127.0.0.1:8080/x", REMOTE_PROXY, True),  # mounted direct by our clients
        ("http://127.0.0.1:8080/x", "http://127.0.0.1:3128", True),
        ("http://127.0.0.2:8080/x", REMOTE_PROXY, False),
        ("http://127.0.0.2:8080/x", None, True),
    ],
)
def test_the_first_hop_decides(
    url: str, proxy: str | None, allowed: bool, monkeypatch: Any
) -> None:
    from langchain_dbx_serving.transport._proxy import client_options

    if proxy:
        monkeypatch.setenv("ALL_PROXY", proxy)
    client = httpx.Client(**client_options())
    if allowed:
        check_first_hop(client, url)
    else:
        with pytest.raises(ConfigurationError):
            check_first_hop(client, url)
        check_first_hop(client, url, allow_insecure_http=True)


# -- redirects ---------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_not_followed(workspace: tuple[Workspace, RawServer], status: int) -> None:
    # Also #12: a 302 (e.g. to a login page) was reported as "not JSON: ''".
    ws, target = workspace
    location = f"http://localhost:{target.port}/serving-endpoints/ep/invocations?x=1"

    def redirect(request: RawRequest) -> bytes:
        return response(status, "", headers={"Location": location})

    with RawServer(redirect) as server:
        llm = ChatDatabricksServing(endpoint="ep", host=server.url, token=ws.pat, max_retries=0)
        with pytest.raises(APIStatusError) as info:
            llm.invoke("hi")

    assert info.value.status_code == status
    assert "redirects are not followed" in str(info.value)
    assert "http://localhost" in str(info.value) and "x=1" not in str(info.value)
    assert target.requests == []


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_client_that_follows_redirects_never_forwards_the_token(
    workspace: tuple[Workspace, RawServer], status: int
) -> None:
    """An injected client may follow redirects: httpx drops Authorization off-origin."""
    ws, target = workspace
    target.handler = lambda request: response(
        200, f'{{"auth": "{request.headers.get("authorization")}"}}'
    )
    location = f"http://localhost:{target.port}/elsewhere"

    with RawServer(lambda r: response(status, "", headers={"Location": location})) as server:
        llm = ChatDatabricksServing(
            endpoint="ep",
            host=server.url,
            token=ws.pat,
            http_client=httpx.Client(follow_redirects=True),
            max_retries=0,
        )
        with pytest.raises(DatabricksServingError):
            llm.invoke("hi")  # the reply is not a chat completion

    assert len(target.requests) == 1
    assert "authorization" not in target.requests[0].headers


def test_https_to_http_redirects_drop_the_token() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.scheme == "https":
            return httpx.Response(307, headers={"Location": "http://workspace.invalid/x"})
        return httpx.Response(200, json={"choices": []})

    client = httpx.Client(transport=httpx.MockTransport(answer), follow_redirects=True)
    llm = ChatDatabricksServing(
        endpoint="ep", host="https://workspace.invalid", token=dapi(), http_client=client
    )
    with pytest.raises(DatabricksServingError):
        llm.invoke("hi")

    assert [r.url.scheme for r in seen] == ["https", "http"]
    assert "authorization" in seen[0].headers
    assert "authorization" not in seen[1].headers
