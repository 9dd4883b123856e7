"""The local endpoint's fault plan, seen by a plain httpx client: each fault does what its
docstring says, in plan order, and the endpoint keeps serving afterwards."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from langchain_dbx_serving.testing import Fault, FaultPlan, LocalEndpoint, Reply
from tests.support.serving import queue

BODY = {"messages": [{"role": "user", "content": "hi"}]}
STREAM = {**BODY, "stream": True}


@pytest.fixture
def http(faulty: LocalEndpoint) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {faulty.token}"}
    with httpx.Client(base_url=faulty.host, headers=headers, timeout=httpx.Timeout(0.5)) as client:
        yield client


URL = "/serving-endpoints/chat/invocations"


def data_lines(response: httpx.Response, into: list[str] | None = None) -> list[str]:
    """The ``data:`` payloads, appended to ``into`` as they arrive (kept if the read fails)."""
    into = [] if into is None else into
    for line in response.iter_lines():
        if line.startswith("data: "):
            into.append(line[6:])
    return into


def test_entries_apply_to_the_next_requests_in_order(faulty: LocalEndpoint, http: httpx.Client):
    faulty.faults.add(Reply.error(503, "TEMPORARILY_UNAVAILABLE", "busy"), None, Fault.reset())
    queue(faulty, "second", "fourth")

    statuses = [http.post(URL, json=BODY).status_code]
    statuses.append(http.post(URL, json=BODY).status_code)
    with pytest.raises(httpx.ReadError):  # a reset: no status line at all
        http.post(URL, json=BODY)
    statuses.append(http.post(URL, json=BODY).status_code)

    assert statuses == [503, 200, 200]
    assert faulty.faults.applied == 2
    assert faulty.faults.remaining == 0
    assert len(faulty.requests) == 4  # every request is still recorded


def test_an_error_entry_answers_before_auth_like_a_gateway(faulty: LocalEndpoint) -> None:
    faulty.faults.add(Reply.error(429, "REQUEST_LIMIT_EXCEEDED", "slow", retry_after=3))
    response = httpx.post(faulty.host + URL, json=BODY)  # no token at all
    assert response.status_code == 429
    assert response.headers["retry-after"] == "3"


def test_a_stall_holds_the_connection_silent_until_the_client_gives_up(
    faulty: LocalEndpoint, http: httpx.Client
) -> None:
    queue(faulty, Reply.text(["a ", "b ", "c"]), "after the stall")
    faulty.faults.add(Fault.stall(after=2))
    received: list[str] = []

    with pytest.raises(httpx.ReadTimeout), http.stream("POST", URL, json=STREAM) as response:
        data_lines(response, received)

    assert len(received) == 2
    assert http.post(URL, json=BODY).json()["choices"][0]["message"]["content"] == (
        "after the stall"
    )


def test_a_stall_of_a_whole_reply_sends_nothing(faulty: LocalEndpoint, http: httpx.Client):
    queue(faulty, "never sent")
    faulty.faults.add(Fault.stall())
    with pytest.raises(httpx.ReadTimeout):
        http.post(URL, json=BODY)


def test_garbage_is_inserted_at_its_position_and_the_stream_goes_on(
    faulty: LocalEndpoint, http: httpx.Client
) -> None:
    queue(faulty, Reply.text(["a ", "b"]))
    faulty.faults.add(Fault.garbage("<oops>", after=1))

    with http.stream("POST", URL, json=STREAM) as response:
        events = data_lines(response)

    assert events[1] == "<oops>"
    assert events[-1] == "[DONE]"


def test_garbage_replaces_a_whole_body(faulty: LocalEndpoint, http: httpx.Client) -> None:
    queue(faulty, "never sent")
    faulty.faults.add(Fault.garbage("{truncated"))
    response = http.post(URL, json=BODY)
    assert (response.status_code, response.text) == (200, "{truncated")
    assert response.headers["content-type"] == "application/json"


def test_drop_cuts_a_stream_after_n_events(faulty: LocalEndpoint, http: httpx.Client) -> None:
    queue(faulty, Reply.text(["a ", "b ", "c"]))
    faulty.faults.add(Fault.drop(after=2))
    received: list[str] = []
    with (
        pytest.raises(httpx.RemoteProtocolError),
        http.stream("POST", URL, json=STREAM) as response,
    ):
        data_lines(response, received)
    assert len(received) == 2


def test_oversized_adds_that_many_bytes_as_one_event(
    faulty: LocalEndpoint, http: httpx.Client
) -> None:
    queue(faulty, Reply.text(["a"]), Reply.text(["a"]))
    faulty.faults.add(Fault.oversized(3_000_000), Fault.oversized(3_000_000))

    with http.stream("POST", URL, json=STREAM) as response:
        events = data_lines(response)
    whole = http.post(URL, json=BODY).json()

    assert max(len(event) for event in events) > 3_000_000
    assert whole["choices"][0]["message"]["content"] == "a" + "x" * 3_000_000


def test_a_repeating_plan_cycles_forever() -> None:
    plan = FaultPlan([None, Reply.error(503, "TEMPORARILY_UNAVAILABLE", "busy")], repeat=True)
    with LocalEndpoint("echo", faults=plan, token=None) as ep:
        statuses = [httpx.post(ep.invocations_url("e"), json=BODY).status_code for _ in range(6)]
    assert statuses == [200, 503] * 3
    assert plan.applied == 3
    with pytest.raises(RuntimeError):
        plan.add(None)
