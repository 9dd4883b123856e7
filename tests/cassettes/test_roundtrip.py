"""Record against the local endpoint with a secret token, check the cassette, replay offline.

Each workflow runs live against a :class:`LocalEndpoint` that requires a ``dapi``-shaped token
while a cassette records; the cassette must hold neither the token nor the endpoint's address;
then, with the endpoint stopped and every socket blocked, the replay must give the same results.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import pytest_socket
from vcr.errors import CannotOverwriteExistingCassetteException

from langchain_dbx_serving.testing import LocalEndpoint
from langchain_dbx_serving.testing.plugin import (
    PLACEHOLDER_HOST,
    REPLAY_TOKEN,
    ServingTarget,
    databricks_cassette,
)
from langchain_dbx_serving.testing.record import load_backends
from langchain_dbx_serving.testing.scan import scan_paths
from tests.cassettes.workflows import BACKENDS_FILE, WORKFLOWS, Workflow

BACKENDS = load_backends(str(BACKENDS_FILE))
REPLAY = ServingTarget(live=False, host=PLACEHOLDER_HOST, token=REPLAY_TOKEN)


def secret_token() -> str:
    # Built at run time: a token-shaped literal in a test file would trip the scanner.
    return "dapi" + secrets.token_hex(16)


@contextmanager
def offline() -> Iterator[None]:
    """No socket of any kind can be created (no connect, no DNS) inside the block."""
    pytest_socket.disable_socket()
    try:
        yield
    finally:
        pytest_socket.enable_socket()


@contextmanager
def recording(path: Path, token: str) -> Iterator[tuple[LocalEndpoint, ServingTarget]]:
    """The local endpoint (requiring ``token``) and a live target, inside a recording cassette."""
    with LocalEndpoint(BACKENDS, token=token) as ep:
        target = ServingTarget(live=True, host=ep.host, token=token)
        with databricks_cassette(path, record_mode="once", hosts=[ep.host], secrets=[token]):
            yield ep, target


def assert_clean(path: Path, token: str, ep: LocalEndpoint, workflow: Workflow) -> None:
    text = path.read_text()
    assert token not in text
    assert f"{ep.bind_host}:{ep.port}" not in text
    assert "authorization" not in text.lower()
    assert PLACEHOLDER_HOST in text
    assert scan_paths([path])[0] == []
    if workflow.streams:
        # content-type kept, and the SSE body written verbatim as a literal block.
        assert "text/event-stream" in text
        assert any(line.strip() == "data: [DONE]" for line in text.splitlines())


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda w: w.name)
def test_sync_record_then_replay_offline(workflow: Workflow, tmp_path: Path) -> None:
    path, token = tmp_path / "cassette.yaml", secret_token()
    with recording(path, token) as (ep, target):
        live = workflow.run(target)
    assert len(ep.requests) == workflow.requests
    assert_clean(path, token, ep, workflow)

    with offline(), databricks_cassette(path) as cassette:
        replayed = workflow.run(REPLAY)
    assert replayed == live
    assert cassette.all_played


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda w: w.name)
async def test_async_record_then_replay_offline(workflow: Workflow, tmp_path: Path) -> None:
    path, token = tmp_path / "cassette.yaml", secret_token()
    with recording(path, token) as (ep, target):
        live = await workflow.arun(target)
    assert len(ep.requests) == workflow.requests
    assert_clean(path, token, ep, workflow)

    with offline(), databricks_cassette(path) as cassette:
        replayed = await workflow.arun(REPLAY)
    assert replayed == live
    assert cassette.all_played


def test_agent_endpoint_record_then_replay_offline(tmp_path: Path) -> None:
    path, token = tmp_path / "cassette.yaml", secret_token()
    with recording(path, token) as (_, target):
        live = target.agent("support-agent").invoke("Where is order 42?")
    with offline(), databricks_cassette(path):
        replayed = REPLAY.agent("support-agent").invoke("Where is order 42?")
    assert replayed.model_dump() == live.model_dump()
    assert [call.name for call in replayed.tool_calls] == ["lookup_order"]


def test_sync_and_async_make_the_same_requests(tmp_path: Path) -> None:
    # A cassette recorded by the sync workflow replays the async one: same bodies, same paths.
    path, token = tmp_path / "cassette.yaml", secret_token()
    workflow = WORKFLOWS[0]
    with recording(path, token) as (_, target):
        live = workflow.run(target)
    with offline(), databricks_cassette(path):
        replayed = workflow.run(REPLAY)
    assert replayed["pieces"] == live["pieces"]


def _record_question(path: Path, question: str, **kwargs: object) -> str:
    with recording(path, secret_token()) as (_, target):
        return target.chat("faq-model", **kwargs).invoke(question).text


def test_a_drifted_request_body_fails_loudly(tmp_path: Path) -> None:
    path = tmp_path / "cassette.yaml"
    _record_question(path, "Capital of France?", temperature=0.1)

    with offline(), databricks_cassette(path):
        assert REPLAY.chat("faq-model", temperature=0.1).invoke("Capital of France?").text
    with (
        offline(),
        databricks_cassette(path),
        pytest.raises(CannotOverwriteExistingCassetteException) as failure,
    ):
        REPLAY.chat("faq-model", temperature=0.2).invoke("Capital of France?")
    message = str(failure.value)
    assert "request body differs from the recording" in message
    assert '-  "temperature": 0.1' in message
    assert '+  "temperature": 0.2' in message


def test_a_changed_prompt_does_not_replay_the_stale_answer(tmp_path: Path) -> None:
    path = tmp_path / "cassette.yaml"
    assert "Paris" in _record_question(path, "Capital of France?")
    with (
        offline(),
        databricks_cassette(path),
        pytest.raises(CannotOverwriteExistingCassetteException, match="Largest planet"),
    ):
        REPLAY.chat("faq-model").invoke("Largest planet?")


def test_volatile_fields_and_key_order_do_not_break_a_match(tmp_path: Path) -> None:
    path = tmp_path / "cassette.yaml"
    first = _record_question(path, "Capital of France?", extra_body={"client_request_id": "run-1"})
    assert "client_request_id" in path.read_text()  # kept visible, value normalized
    assert "run-1" not in path.read_text()
    with offline(), databricks_cassette(path):
        replayed = REPLAY.chat("faq-model", extra_body={"client_request_id": "run-2"}).invoke(
            "Capital of France?"
        )
    assert replayed.text == first


def test_an_empty_replay_cassette_refuses_every_request(tmp_path: Path) -> None:
    with (
        offline(),
        databricks_cassette(tmp_path / "missing.yaml"),
        pytest.raises(CannotOverwriteExistingCassetteException),
    ):
        REPLAY.chat("faq-model").invoke("Capital of France?")
