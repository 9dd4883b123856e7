"""Against the real thing: databricks-ai-bridge's ``LongRunningAgentServer`` over PostgreSQL.

The server runs in a subprocess on loopback (``tests.support.long_running_app``: the server's
own code, its database opened on a PostgreSQL that ``tests.support.postgres`` started on
127.0.0.1 instead of Lakebase). The same wire checks run against the local endpoint's
long-running mode, so that the two cannot drift apart; then a LangChain user drives the real
server: background invoke with progress, handles, cursor streams, a stream dropped at every
position and resumed, and a crash (the server's own ``/_debug/kill_task``) resumed as attempt 2.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from langchain_core.callbacks import BaseCallbackHandler

from langchain_dbx_serving import ChatDatabricksResponses
from langchain_dbx_serving.background import PROGRESS_EVENT
from langchain_dbx_serving.errors import RunNotFoundError, UnsupportedOperationError
from langchain_dbx_serving.testing import Delta, FunctionBackend, LocalEndpoint
from tests.support.calls import aggregate
from tests.support.cutting import ACutAfterFrames, CutAfterFrames
from tests.support.postgres import postgres_available

pytest.importorskip(
    "databricks_ai_bridge.long_running", reason="pip install databricks-ai-bridge[agent-server]"
)
pytest.importorskip("psycopg", reason="pip install 'psycopg[binary,pool]' greenlet")
if (why := postgres_available()) is not None:
    pytest.skip(why, allow_module_level=True)

from tests.support.agentserver import start_agent_server
from tests.support.long_running_app import RECOVERED, WORDS
from tests.support.postgres import start_postgres

FULL = "".join(WORDS)
HI = [{"role": "user", "content": "hi"}]  # MLflow's request type wants a list (400 for a str)
RESP_ID = re.compile(r"resp_[0-9a-f]{24}")


@pytest.fixture(scope="module")
def real_dsn() -> Iterator[str]:
    with start_postgres() as dsn:
        yield dsn


@pytest.fixture(scope="module")
def real_server(tmp_path_factory: pytest.TempPathFactory, real_dsn: str) -> Iterator[str]:
    tracking = tmp_path_factory.mktemp("long-running") / "mlruns"
    env = {
        "LONG_RUNNING_TEST_DSN": real_dsn,
        "AGENTSERVER_LIFESPAN": "on",
        "LONG_RUNNING_ENABLE_DEBUG_KILL": "1",
        "LAKEBASE_INSTANCE_NAME": "local-postgres",
    }
    app = "tests.support.long_running_app:app"
    # Importing mlflow and the bridge takes a while on a loaded machine.
    with start_agent_server(app, tracking_dir=tracking, env=env, startup_timeout=180) as server:
        yield server.url


def _local_backend(request: Any) -> Iterator[Delta]:
    for word in WORDS:
        yield Delta(text=word)


@pytest.fixture(scope="module")
def local_server() -> Iterator[LocalEndpoint]:
    with LocalEndpoint(FunctionBackend(_local_backend), token=None, long_running=True) as ep:
        yield ep


@pytest.fixture(params=["real", "local"])
def server(request: pytest.FixtureRequest) -> str:
    if request.param == "real":
        return request.getfixturevalue("real_server")
    return request.getfixturevalue("local_server").host


def _events(text: str) -> list[Any]:
    out = []
    for block in filter(None, (b.strip() for b in text.split("\n\n"))):
        assert block.startswith("data: "), block
        payload = block[6:]
        out.append(payload if payload == "[DONE]" else json.loads(payload))
    return out


# -- the wire, on both servers -------------------------------------------------------------------
def test_background_submit_poll_and_feed(server: str) -> None:
    with httpx.Client(base_url=server, timeout=30) as http:
        submitted = http.post("/responses", json={"input": HI, "background": True}).json()
        assert RESP_ID.fullmatch(submitted["id"])
        assert {k: submitted[k] for k in ("object", "status", "output", "error", "metadata")} == {
            "object": "response",
            "status": "in_progress",
            "output": [],
            "error": None,
            "metadata": {},
        }
        run_id = submitted["id"]
        feed = _events(http.get(f"/responses/{run_id}?stream=true&starting_after=0").text)
        polled = http.get(f"/responses/{run_id}").json()
        missing = http.get("/responses/resp_000000000000000000000000")
        cursor = http.get(f"/responses/{run_id}?starting_after=2")
        cancel = http.post(f"/responses/{run_id}/cancel")
    # An invoke-style run: one done frame per output item, then [DONE].
    assert [(f["type"], f["sequence_number"], f["response_id"]) for f in feed[:-1]] == [
        ("response.output_item.done", 0, run_id)
    ]
    assert feed[-1] == "[DONE]"
    assert polled["status"] == "completed" and polled["attempt_number"] == 1
    assert polled["output"][0]["content"][0]["text"] == FULL
    assert (missing.status_code, missing.json()) == (404, {"detail": "Response not found"})
    assert cursor.status_code == 400
    assert cursor.json() == {"detail": "starting_after is only supported when stream=true."}
    assert (cancel.status_code, cancel.json()) == (
        501,
        {"detail": "Cancellation is not yet implemented."},
    )


def test_streamed_background_feed_and_cursor(server: str) -> None:
    with httpx.Client(base_url=server, timeout=30) as http:
        body = {"input": HI, "background": True, "stream": True}
        events = _events(http.post("/responses", json=body).text)
        run_id = events[0]["response_id"]
        zero = _events(http.get(f"/responses/{run_id}?stream=true&starting_after=0").text)
        after = _events(http.get(f"/responses/{run_id}?stream=true&starting_after=5").text)
    *frames, done = events
    assert done == "[DONE]"
    seqs = [f["sequence_number"] for f in frames]
    assert seqs == list(range(len(frames))) and {f["response_id"] for f in frames} == {run_id}
    text = "".join(f["delta"] for f in frames if f["type"] == "response.output_text.delta")
    assert text == FULL
    assert zero[0]["sequence_number"] == 0  # starting_after=0: everything, seq 0 included
    assert [f["sequence_number"] for f in after[:-1]] == seqs[6:]


# -- a LangChain user on the real server ----------------------------------------------------------
def chat_for(url: str, **kwargs: Any) -> ChatDatabricksResponses:
    return ChatDatabricksResponses(endpoint="agent", base_url=url, token="unused", **kwargs)


class Progress(BaseCallbackHandler):
    def __init__(self) -> None:
        self.seen: list[Any] = []

    def on_custom_event(self, name: str, data: Any, **kwargs: Any) -> None:
        if name == PROGRESS_EVENT:
            self.seen.append(data)


@pytest.mark.parametrize("asynchronous", [False, True])
async def test_background_invoke_on_the_real_server(real_server: str, asynchronous: bool) -> None:
    handler = Progress()
    slow = chat_for(real_server).bind(background=True)
    config = {"callbacks": [handler]}
    if asynchronous:
        message = await slow.ainvoke("slow please", config=config)
    else:
        message = slow.invoke("slow please", config=config)
    assert message.text == FULL
    assert RESP_ID.fullmatch(message.id or "")
    assert handler.seen and handler.seen[0]["status"] == "in_progress"
    # The submit answer carries no attempt number; the polls do.
    assert 1 in [p["attempt_number"] for p in handler.seen[1:]]


def test_handles_on_the_real_server(real_server: str) -> None:
    chat = chat_for(real_server)
    run = chat.submit("hi")
    saved = json.dumps(run.to_dict())
    collected = chat_for(real_server).background_run(json.loads(saved)["id"])
    assert collected.result(timeout=60).text == FULL
    assert aggregate(list(collected.stream())).text == FULL
    with pytest.raises(UnsupportedOperationError) as caught:
        collected.cancel()
    assert caught.value.status_code == 501
    with pytest.raises(RunNotFoundError):
        chat.background_run("resp_000000000000000000000000").poll()


@pytest.mark.parametrize("mode", ["stream", "astream"])
@pytest.mark.parametrize("cut", range(1, 21))
async def test_a_dropped_stream_resumes_at_every_position_on_the_real_server(
    real_server: str, mode: str, cut: int
) -> None:
    """The connection dies after ``cut`` frames (of the 20-event run, then ``[DONE]``)."""
    if mode == "stream":
        with httpx.Client(transport=CutAfterFrames(cut)) as sync_client:
            chat = chat_for(real_server, http_client=sync_client)
            chunks = list(chat.stream("hi", background=True))
    else:
        client = httpx.AsyncClient(transport=ACutAfterFrames(cut))
        chat = chat_for(real_server, http_async_client=client)
        chunks = [c async for c in chat.astream("hi", background=True)]
        await client.aclose()
    resumed = aggregate(chunks)
    with chat_for(real_server) as plain:
        reference = aggregate(list(plain.background_run(resumed.id).stream()))
    assert resumed.response_metadata.pop("resumes") == 1
    assert resumed.text == FULL
    assert resumed.content == reference.content
    assert resumed.response_metadata == reference.response_metadata
    assert [c.text for c in chunks if c.text] == WORDS  # none twice, none missing


@pytest.mark.parametrize("mode", ["stream", "astream"])
async def test_a_crash_is_resumed_by_the_real_server(
    real_server: str, real_dsn: str, mode: str
) -> None:
    """The server's own debug route kills the running attempt; the open stream sees the
    server claim the run again (stale heartbeat) and carry on as attempt 2."""
    chat = chat_for(real_server).bind(context={"conversation_id": "conv-7"})
    chunks: list[Any] = []
    killed = threading.Event()

    def kill(run_id: str) -> None:
        with httpx.Client(base_url=real_server) as http:
            answer = http.post(f"/_debug/kill_task/{run_id}")
        assert answer.status_code == 200, answer.text
        killed.set()

    if mode == "stream":
        for chunk in chat.stream("slow please", background=True):
            chunks.append(chunk)
            if len(chunks) == 3 and not killed.is_set():
                kill(_running(real_dsn))
    else:
        async for chunk in chat.astream("slow please", background=True):
            chunks.append(chunk)
            if len(chunks) == 3 and not killed.is_set():
                kill(_running(real_dsn))
    message = aggregate(chunks)
    assert message.response_metadata["conversation_id"] == "conv-7::attempt-2"
    resumed = message.response_metadata["resumed"]
    assert [r["attempt"] for r in resumed] == [2]
    assert message.text.endswith(RECOVERED)
    polled = chat_for(real_server).background_run(message.id)
    assert polled.poll() == "completed" and polled.attempt_number == 2


def _running(dsn: str) -> str:
    """The newest in-progress run (this test's), read in the server's own database."""
    import psycopg

    with psycopg.connect(dsn.replace("postgresql+psycopg://", "postgresql://")) as conn:
        row = conn.execute(
            "select response_id from agent_server.responses where status = 'in_progress' "
            "order by created_at desc limit 1"
        ).fetchone()
    assert row is not None, "no run in progress"
    return row[0]
