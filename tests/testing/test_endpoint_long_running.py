"""The local endpoint's long-running mode speaks the durable agent server's wire contract.

Each fact checked here was read in databricks-ai-bridge's ``LongRunningAgentServer``
(docs/notes/long-running-wire.md), and is checked over real HTTP with a raw client so that the
client library cannot paper over a difference.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from langchain_dbx_serving.testing import FunctionBackend, LocalEndpoint, Reply
from langchain_dbx_serving.testing.backends import BackendRequest

PIECES = [f"w{i} " for i in range(16)]  # 16 deltas: a 20-event run
RESP_ID = re.compile(r"resp_[0-9a-f]{24}")


def _events(text: str) -> list[Any]:
    out = []
    for block in text.split("\n\n"):
        block = block.strip()
        if not block:
            continue
        assert block.startswith("data: "), block  # data-only frames, no event: lines
        payload = block[len("data: ") :]
        out.append(payload if payload == "[DONE]" else json.loads(payload))
    return out


@pytest.fixture
def ep() -> Iterator[LocalEndpoint]:
    with LocalEndpoint([Reply.text(PIECES)] * 50, long_running=True) as endpoint:
        yield endpoint


@pytest.fixture
def http(ep: LocalEndpoint) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {ep.token}"}
    with httpx.Client(base_url=ep.host, headers=headers, timeout=30) as client:
        yield client


def _submit(http: httpx.Client, stream: bool = False, **extra: Any) -> httpx.Response:
    body = {"input": [{"role": "user", "content": "hi"}], "background": True, **extra}
    if stream:
        body["stream"] = True
    return http.post("/responses", json=body)


def _feed(http: httpx.Client, run_id: str, after: int = 0) -> list[Any]:
    reply = http.get(f"/responses/{run_id}", params={"stream": "true", "starting_after": after})
    assert reply.headers["content-type"].startswith("text/event-stream")
    return _events(reply.text)


def test_background_post_answers_at_once_with_an_in_progress_response(
    ep: LocalEndpoint, http: httpx.Client
) -> None:
    reply = _submit(http)
    body = reply.json()
    assert reply.status_code == 200
    assert RESP_ID.fullmatch(body["id"])
    assert body["object"] == "response"
    assert body["status"] == "in_progress"
    assert body["output"] == [] and body["error"] is None and body["metadata"] == {}


def test_stream_feed_tags_every_frame_and_ends_with_done(http: httpx.Client) -> None:
    with http.stream(
        "POST",
        "/responses",
        json={"input": "hi", "background": True, "stream": True},
    ) as reply:
        events = _events(reply.read().decode())
    *frames, done = events
    assert done == "[DONE]"
    assert [f["sequence_number"] for f in frames] == list(range(20))
    run_id = frames[0]["response_id"]
    assert RESP_ID.fullmatch(run_id) and {f["response_id"] for f in frames} == {run_id}
    assert frames[0]["type"] == "response.created" and frames[-1]["type"] == "response.completed"
    text = "".join(f["delta"] for f in frames if f["type"] == "response.output_text.delta")
    assert text == "".join(PIECES)


def test_cursor_zero_means_everything_and_n_means_after_n(http: httpx.Client) -> None:
    run_id = _submit(http, stream=False).json()["id"]
    _wait_completed(http, run_id)
    everything = _feed(http, run_id, 0)  # starting_after=0 includes seq 0
    # A background run without stream runs the invoke handler: one done event per item.
    assert [(f["sequence_number"], f["type"]) for f in everything[:-1]] == [
        (0, "response.output_item.done")
    ]
    streamed = _submit(http, stream=True)
    stream_id = _events(streamed.text)[0]["response_id"]
    after = _feed(http, stream_id, 7)
    assert [f["sequence_number"] for f in after[:-1]] == list(range(8, 20))
    assert after[-1] == "[DONE]"


def _wait_completed(http: httpx.Client, run_id: str) -> dict[str, Any]:
    # The feed returns only when the run has ended: no sleeping.
    _feed(http, run_id)
    return http.get(f"/responses/{run_id}").json()


def test_poll_answers_as_the_real_server(ep: LocalEndpoint, http: httpx.Client) -> None:
    run_id = _submit(http).json()["id"]
    body = _wait_completed(http, run_id)
    assert body["id"] == run_id and body["status"] == "completed"
    assert body["attempt_number"] == 1
    assert body["output"][0]["type"] == "message"
    assert body["output"][0]["content"][0]["text"] == "".join(PIECES)
    assert "metadata" not in body  # no trace id unless asked for

    missing = http.get("/responses/resp_000000000000000000000000")
    assert missing.status_code == 404 and missing.json() == {"detail": "Response not found"}
    cursor = http.get(f"/responses/{run_id}", params={"starting_after": 3})
    assert cursor.status_code == 400
    assert cursor.json() == {"detail": "starting_after is only supported when stream=true."}
    cancel = http.post(f"/responses/{run_id}/cancel")
    assert cancel.status_code == 501
    assert cancel.json() == {"detail": "Cancellation is not yet implemented."}


def test_trace_header_puts_the_trace_id_in_the_completed_poll(http: httpx.Client) -> None:
    body = {"input": "hi", "background": True}
    run_id = http.post(
        "/responses", json=body, headers={"x-mlflow-return-trace-id": "true"}
    ).json()["id"]
    polled = _wait_completed(http, run_id)
    assert re.fullmatch(r"tr-[0-9a-f]{32}", polled["metadata"]["trace_id"])


def test_routes_need_the_token(ep: LocalEndpoint) -> None:
    with httpx.Client(base_url=ep.host) as anonymous:
        assert anonymous.get("/responses/resp_x").status_code == 401


def test_a_failing_handler_fails_the_run(http: httpx.Client) -> None:
    def explode(request: BackendRequest) -> Any:
        raise RuntimeError("tool crashed")

    with LocalEndpoint(FunctionBackend(explode), long_running=True) as ep:
        headers = {"Authorization": f"Bearer {ep.token}"}
        with httpx.Client(base_url=ep.host, headers=headers) as client:
            run_id = _submit(client, stream=False).json()["id"]
            feed = _feed(client, run_id)
            assert "[DONE]" not in feed  # nothing after the error on failure
            polled = client.get(f"/responses/{run_id}").json()
    assert feed[-1]["type"] == "error" and feed[-1]["error"]["code"] == "task_failed"
    assert polled["status"] == "failed"
    assert polled["error"]["code"] == "task_failed" and "tool crashed" in polled["error"]["message"]


def test_cut_stream_drops_the_connection_after_the_chosen_frame(
    ep: LocalEndpoint, http: httpx.Client
) -> None:
    ep.long_running.cut_stream(after_seq=4)
    seen: list[Any] = []
    with (
        pytest.raises(httpx.HTTPError),
        http.stream(
            "POST", "/responses", json={"input": "hi", "background": True, "stream": True}
        ) as reply,
    ):
        for line in reply.iter_lines():
            if line.startswith("data: "):
                seen.append(json.loads(line[6:]))
    assert [f["sequence_number"] for f in seen] == [0, 1, 2, 3, 4]
    rest = _feed(http, seen[0]["response_id"], 4)  # the run went on: the rest is there
    assert [f["sequence_number"] for f in rest[:-1]] == list(range(5, 20))


def test_time_out_stream_sends_a_stream_timeout_frame(
    ep: LocalEndpoint, http: httpx.Client
) -> None:
    ep.long_running.time_out_stream(after_seq=2)
    events = _events(_submit(http, stream=True).text)
    assert [f.get("sequence_number") for f in events] == [0, 1, 2, None]
    assert events[-1] == {  # written by the server itself: no "type", no sequence_number
        "error": {
            "message": "Stream retrieve timed out",
            "type": "server_error",
            "code": "stream_timeout",
        },
    }


def test_a_forgotten_run_is_not_found(ep: LocalEndpoint, http: httpx.Client) -> None:
    run_id = _submit(http).json()["id"]
    _wait_completed(http, run_id)
    ep.long_running.forget(run_id)
    assert http.get(f"/responses/{run_id}").status_code == 404


def test_a_crashed_run_is_resumed_as_attempt_two_with_a_rotated_conversation(
    http: httpx.Client,
) -> None:
    seen: list[BackendRequest] = []
    gate = threading.Lock()

    def respond(request: BackendRequest) -> Reply:
        with gate:
            seen.append(request)
        return Reply.text(PIECES if len(seen) == 1 else ["again"])

    with LocalEndpoint(FunctionBackend(respond), long_running=True) as ep:
        ep.long_running.crash_run(at_seq=6)
        headers = {"Authorization": f"Bearer {ep.token}"}
        with httpx.Client(base_url=ep.host, headers=headers, timeout=30) as client:
            body = {
                "input": "hi",
                "background": True,
                "stream": True,
                "context": {"conversation_id": "conv-1"},
                "custom_inputs": {"thread_id": "thread-9", "keep": 1},
            }
            events = _events(client.post("/responses", json=body).text)
            polled = client.get(f"/responses/{events[0]['response_id']}").json()
    seqs = [e["sequence_number"] for e in events[:-1]]
    assert seqs == list(range(len(seqs)))  # numbering continues across attempts
    resumed = events[6]
    assert resumed["type"] == "response.resumed"
    assert resumed["attempt"] == 2 and resumed["from_seq"] == 6
    assert resumed["conversation_id"] == "thread-9::attempt-2"  # thread_id is the anchor
    assert events[-1] == "[DONE]"
    retry = seen[1]
    assert retry.context == {"conversation_id": "thread-9::attempt-2"}
    assert retry.custom_inputs == {"keep": 1}  # thread_id/session_id dropped
    recovery = retry.messages[-1].text
    assert recovery.startswith("[RECOVERY]")
    logged = json.loads(recovery.split("Events:\n", 1)[1])
    assert [e["type"] for e in logged][:2] == ["response.created", "response.output_item.added"]
    assert len(logged) == 6
    assert polled["status"] == "completed" and polled["attempt_number"] == 2
    assert polled["output"][-1]["content"][0]["text"] == "again"


def test_debug_kill_crashes_the_running_attempt_and_a_retrieve_resumes_it() -> None:
    gate = threading.Event()
    calls: list[BackendRequest] = []

    def respond(request: BackendRequest) -> Iterator[Any]:
        from langchain_dbx_serving.testing import Delta

        calls.append(request)
        yield Delta(text="first ")
        if len(calls) == 1:
            assert gate.wait(60)
        yield Delta(text="done")

    with LocalEndpoint(FunctionBackend(respond), long_running=True) as ep:
        headers = {"Authorization": f"Bearer {ep.token}"}
        with httpx.Client(base_url=ep.host, headers=headers, timeout=30) as client:
            body = {"input": "hi", "background": True}
            run_id = client.post("/responses", json={**body, "stream": False}).json()["id"]
            killed = client.post(f"/_debug/kill_task/{run_id}")
            gate.set()
            feed = _feed(client, run_id)
            again = client.post(f"/_debug/kill_task/{run_id}")
    assert killed.json() == {"response_id": run_id, "pod_id": "local", "status": "task_cancelled"}
    resumed = [e for e in feed[:-1] if e["type"] == "response.resumed"]
    assert resumed and resumed[0]["attempt"] == 2
    assert resumed[0]["conversation_id"] == f"{run_id}::attempt-2"  # no anchor: the run id
    assert feed[-1] == "[DONE]" and len(calls) == 2
    assert again.status_code == 404
