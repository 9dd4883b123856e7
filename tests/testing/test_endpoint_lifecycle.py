"""Starting, stopping, root routes, recorded requests, lazy imports and the CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from langchain_dbx_serving.testing import LocalEndpoint, Reply
from tests.testing.helpers import chat, responses, script

ROOT = Path(__file__).resolve().parents[2]


def _refused(host: str) -> bool:
    try:
        httpx.get(host + "/health", timeout=2)
    except httpx.ConnectError:
        return True
    return False


def test_port_is_released_after_the_with_block() -> None:
    with LocalEndpoint() as ep:
        host = ep.host
        assert httpx.get(host + "/health").json() == {"status": "healthy"}

    assert _refused(host)


def test_stops_cleanly_when_the_with_body_raises() -> None:
    with pytest.raises(RuntimeError, match="test failure"), LocalEndpoint() as ep:
        host = ep.host
        raise RuntimeError("test failure")

    assert _refused(host)


def test_two_endpoints_run_at_once_with_their_own_replies() -> None:
    with (
        LocalEndpoint([Reply.text("one")], token=None) as a,
        LocalEndpoint([Reply.text("two")], token=None) as b,
    ):
        first = httpx.post(a.invocations_url("x"), json=chat()).json()
        second = httpx.post(b.invocations_url("x"), json=chat()).json()

    assert a.port != b.port
    assert first["choices"][0]["message"]["content"] == "one"
    assert second["choices"][0]["message"]["content"] == "two"


def test_explicit_start_and_stop() -> None:
    ep = LocalEndpoint(token=None).start()
    try:
        assert ep.host == f"http://127.0.0.1:{ep.port}"
        assert ep.base_url == ep.host + "/serving-endpoints"
        with pytest.raises(RuntimeError, match="already running"):
            ep.start()
    finally:
        ep.stop()
        ep.stop()  # idempotent

    assert _refused(ep.host)


async def test_async_with() -> None:
    async with LocalEndpoint(token=None) as ep, httpx.AsyncClient() as http:
        body = {"messages": [{"role": "user", "content": "async echo"}]}
        reply = (await http.post(ep.invocations_url("e"), json=body)).json()

    assert reply["choices"][0]["message"]["content"] == "async echo"


def test_agent_server_root_routes(ep: LocalEndpoint, client: httpx.Client) -> None:
    script(ep, Reply.text("from root"), Reply.text("from responses"))

    health = client.get("/health")
    invocations = client.post("/invocations", json={"input": [{"role": "user", "content": "hi"}]})
    root_responses = client.post("/responses", json=responses())
    bad = client.post("/invocations", json={"prompt": "hi"})

    assert health.json() == {"status": "healthy"}
    assert invocations.json()["output"][0]["content"][0]["text"] == "from root"
    assert root_responses.json()["output"][0]["content"][0]["text"] == "from responses"
    assert bad.status_code == 400 and "neither" in bad.json()["detail"]


def test_requests_are_recorded_with_the_token_redacted(
    ep: LocalEndpoint, client: httpx.Client
) -> None:
    script(ep, Reply.text("ok"))

    client.post(
        "/serving-endpoints/chat/invocations",
        json=chat(custom_inputs={"a": 1}),
        headers={"x-extra": "1"},
    )
    client.post("/serving-endpoints/chat/invocations", content=b"not json")

    first, second = ep.requests
    assert (first.method, first.path) == ("POST", "/serving-endpoints/chat/invocations")
    assert first.body == chat(custom_inputs={"a": 1})
    assert first.headers["authorization"] == "Bearer ***"
    assert first.headers["x-extra"] == "1"
    assert ep.token not in str(ep.requests)
    assert second.body is None


def test_importing_the_package_loads_no_server_modules() -> None:
    code = (
        "import sys, langchain_dbx_serving.testing as t\n"
        "assert 'starlette' not in sys.modules and 'uvicorn' not in sys.modules, 'eager'\n"
        "t.Reply\n"
        "assert 'uvicorn' not in sys.modules, 'replies pulled uvicorn'\n"
        "t.LocalEndpoint\n"
        "assert 'uvicorn' in sys.modules\n"
    )

    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False
    )

    assert result.returncode == 0, result.stderr


def test_cli_prints_its_url_answers_and_stops_on_ctrl_c() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [
        sys.executable,
        "-m",
        "langchain_dbx_serving.testing.endpoint",
        "--port",
        "0",
        "--token",
        "T",
    ]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("Local Databricks serving endpoint: http://127.0.0.1:"), line
        host = line.split(": ", 1)[1].strip()
        body = {"messages": [{"role": "user", "content": "cli works"}]}
        reply = httpx.post(
            host + "/serving-endpoints/any/invocations",
            json=body,
            headers={"Authorization": "Bearer T"},
        )
        denied = httpx.post(host + "/serving-endpoints/any/invocations", json=body)
    finally:
        process.send_signal(signal.SIGINT)
        returncode = process.wait(timeout=10)
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()

    assert reply.json()["choices"][0]["message"]["content"] == "cli works"
    assert denied.status_code == 401
    assert returncode == 0
