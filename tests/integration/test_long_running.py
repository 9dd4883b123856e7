"""Background runs and resumable streams against the local endpoint's long-running mode.

The local endpoint speaks the durable agent server's wire contract (checked frame by frame in
tests/testing/test_endpoint_long_running.py); here a LangChain user drives it through
``ChatDatabricksResponses`` and ``AgentEndpoint``.
"""

from __future__ import annotations

import json
import pickle
import threading
from collections.abc import Iterator
from typing import Any
from uuid import UUID

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessageChunk

from langchain_dbx_serving import AgentEndpoint, ChatDatabricksResponses
from langchain_dbx_serving.background import PROGRESS_EVENT, RESUMED_EVENT
from langchain_dbx_serving.errors import (
    BackgroundTimeoutError,
    RunNotFoundError,
    StreamInterruptedError,
    UnsupportedOperationError,
)
from langchain_dbx_serving.testing import (
    Delta,
    Fault,
    FaultPlan,
    FunctionBackend,
    LocalEndpoint,
    Reply,
)
from langchain_dbx_serving.testing.backends import BackendRequest
from tests.support.calls import aggregate

PIECES = [f"w{i} " for i in range(16)]  # 16 deltas: a 20-event run
FULL = "".join(PIECES)


class Events(BaseCallbackHandler):
    """Records custom events; opens ``gate`` on the first progress event."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.seen: list[tuple[str, Any]] = []
        self.gate = gate

    def on_custom_event(self, name: str, data: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self.seen.append((name, data))
        if name == PROGRESS_EVENT and self.gate is not None:
            self.gate.set()


def gated(gate: threading.Event) -> FunctionBackend:
    """A slow agent: half the answer, then it waits for ``gate`` (the test opens it)."""

    def respond(request: BackendRequest) -> Iterator[Delta]:
        for piece in PIECES[:8]:
            yield Delta(text=piece)
        assert gate.wait(60), "the test never opened the gate"
        for piece in PIECES[8:]:
            yield Delta(text=piece)

    return FunctionBackend(respond)


@pytest.fixture
def ep() -> Iterator[LocalEndpoint]:
    with LocalEndpoint([Reply.text(PIECES)] * 200, long_running=True) as endpoint:
        yield endpoint


def chat_for(ep: LocalEndpoint, **kwargs: Any) -> ChatDatabricksResponses:
    return ChatDatabricksResponses(endpoint="agent", base_url=ep.host, token=ep.token, **kwargs)


async def streamed(llm: Any, mode: str, prompt: Any = "hi", **kwargs: Any) -> list[AIMessageChunk]:
    if mode == "stream":
        return list(llm.stream(prompt, **kwargs))
    return [chunk async for chunk in llm.astream(prompt, **kwargs)]


# -- invoke(background=True) ----------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["invoke", "ainvoke"])
async def test_invoke_in_background_submits_waits_and_reports_progress(mode: str) -> None:
    gate = threading.Event()
    with LocalEndpoint(gated(gate), long_running=True) as ep:
        handler = Events(gate)
        slow = chat_for(ep).bind(background=True)
        config = {"callbacks": [handler]}
        if mode == "invoke":
            message = slow.invoke("research this", config=config)
        else:
            message = await slow.ainvoke("research this", config=config)
        assert ep.requests[0].body["background"] is True
        assert [r.method for r in ep.requests[1:]] == ["GET"] * (len(ep.requests) - 1)
    assert message.text == FULL
    progress = [data for name, data in handler.seen if name == PROGRESS_EVENT]
    assert progress, "no progress event while the run was going on"
    assert progress[0]["status"] == "in_progress" and progress[0]["id"] == message.id
    assert progress[0]["endpoint"] == "agent"


@pytest.mark.parametrize("asynchronous", [False, True])
async def test_background_timeout_hands_back_a_run_that_can_be_collected_later(
    asynchronous: bool,
) -> None:
    gate = threading.Event()
    with LocalEndpoint(gated(gate), long_running=True) as ep:
        slow = chat_for(ep, background_timeout=0.3)
        with pytest.raises(BackgroundTimeoutError) as caught:
            if asynchronous:
                await slow.ainvoke("hi", background=True)
            else:
                slow.invoke("hi", background=True)
        run = caught.value.run
        assert run.status == "in_progress"
        assert run.id in str(caught.value) and "collect it later" in str(caught.value)
        gate.set()
        result = await run.aresult(timeout=30) if asynchronous else run.result(timeout=30)
    assert result.text == FULL


def test_a_server_that_ignores_background_still_answers() -> None:
    with LocalEndpoint([Reply.text("whole")] * 3) as ep:  # a plain AgentServer
        chat = chat_for(ep)
        assert chat.invoke("hi", background=True).text == "whole"
        run = chat.submit("hi")
        assert run.done and run.result().text == "whole"
        assert len(ep.requests) == 2  # nothing was polled


# -- handles --------------------------------------------------------------------------------------
def test_a_handle_is_its_id_and_endpoint_and_collects_in_another_process(
    ep: LocalEndpoint,
) -> None:
    run = chat_for(ep).submit("hi")
    saved = json.dumps(run.to_dict())
    assert json.loads(saved) == {"id": run.id, "endpoint": "agent"}
    assert ep.token not in saved and ep.token not in repr(run)

    elsewhere = chat_for(ep)  # e.g. the web request that collects
    again = elsewhere.background_run(json.loads(saved)["id"])
    assert again.result(timeout=30).text == FULL
    assert again.status == "completed" and again.attempt_number == 1
    revived = pickle.loads(pickle.dumps(run))
    assert revived.id == run.id and revived.result(timeout=30).text == FULL


async def test_handle_poll_stream_and_async_twins(ep: LocalEndpoint) -> None:
    chat = chat_for(ep)
    run = await chat.asubmit("hi")
    assert run.status == "in_progress"
    assert [c.text for c in run.stream()][:1] == [FULL]  # invoke-style feed: one done item
    assert await run.apoll() == "completed"
    chunks = [chunk async for chunk in run.astream()]
    assert aggregate(chunks).text == FULL
    assert aggregate(chunks).id == run.id


async def test_cancel_says_clearly_that_the_server_cannot(ep: LocalEndpoint) -> None:
    run = chat_for(ep).submit("hi")
    with pytest.raises(UnsupportedOperationError) as caught:
        run.cancel()
    assert caught.value.status_code == 501
    assert "does not support cancelling" in str(caught.value)
    with pytest.raises(UnsupportedOperationError):
        await run.acancel()


def test_an_unknown_run_is_a_typed_error(ep: LocalEndpoint) -> None:
    run = chat_for(ep).background_run("resp_000000000000000000000000")
    with pytest.raises(RunNotFoundError) as caught:
        run.poll()
    assert "resp_000000000000000000000000" in str(caught.value)


def test_agent_endpoint_submits_and_collects_an_agent_response(ep: LocalEndpoint) -> None:
    agent = AgentEndpoint(chat=chat_for(ep))
    run = agent.submit({"input": [{"role": "user", "content": "hi"}]})
    response = run.result(timeout=30)
    assert response.text == FULL and response.id == run.id
    assert agent.background_run(run.id).result(timeout=30).text == FULL
    assert agent.invoke("hi", background=True).text == FULL


# -- resumable streams ----------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["stream", "astream"])
@pytest.mark.parametrize("cut", range(20))
async def test_a_stream_cut_at_any_frame_resumes_to_the_same_message(
    ep: LocalEndpoint, mode: str, cut: int
) -> None:
    chat = chat_for(ep)
    ep.long_running.cut_stream(after_seq=cut)
    chunks = await streamed(chat, mode, background=True)
    resumed = aggregate(chunks)
    reconnects = [r for r in ep.requests if r.method == "GET"]
    # The same run's uninterrupted feed (same ids) is the reference.
    reference = list(chat.background_run(resumed.id).stream())
    whole = aggregate(reference)
    assert resumed.response_metadata.pop("resumes") == 1
    assert resumed.text == FULL
    assert resumed.content == whole.content
    assert resumed.response_metadata == whole.response_metadata
    assert resumed.usage_metadata == whole.usage_metadata
    # No duplicate and no missing chunk: the same text deltas, in order.
    assert [c.text for c in chunks if c.text] == PIECES
    assert [r.path for r in reconnects] == [f"/responses/{resumed.id}"]  # one reconnect


@pytest.mark.parametrize("mode", ["stream", "astream"])
@pytest.mark.parametrize("cut", [0, 9, 19])
async def test_a_stream_timeout_frame_is_resumed(ep: LocalEndpoint, mode: str, cut: int) -> None:
    ep.long_running.time_out_stream(after_seq=cut)
    message = aggregate(await streamed(chat_for(ep), mode, background=True))
    assert message.text == FULL and message.response_metadata["resumes"] == 1


@pytest.mark.parametrize("mode", ["stream", "astream"])
async def test_the_resume_budget_bounds_reconnections(ep: LocalEndpoint, mode: str) -> None:
    for seq in (2, 4, 6):
        ep.long_running.cut_stream(after_seq=seq)
    with pytest.raises(StreamInterruptedError) as caught:
        await streamed(chat_for(ep, max_resumes=2), mode, background=True)
    assert "resume budget" in str(caught.value)
    assert caught.value.partial.text == "".join(PIECES[:5])  # seq 2..6 hold deltas 0..4


@pytest.mark.parametrize("mode", ["stream", "astream"])
async def test_a_drop_without_server_support_stays_an_interruption(mode: str) -> None:
    plan = FaultPlan([Fault.drop(after=5)])
    with LocalEndpoint([Reply.text(PIECES)], faults=plan) as ep:
        with pytest.raises(StreamInterruptedError) as caught:
            await streamed(chat_for(ep), mode)
        assert [r.method for r in ep.requests] == ["POST"]  # no attempt to resume
    assert caught.value.partial is not None


@pytest.mark.parametrize("mode", ["stream", "astream"])
async def test_a_run_forgotten_mid_stream_is_run_not_found(mode: str) -> None:
    gate = threading.Event()
    with LocalEndpoint(gated(gate), long_running=True) as ep:
        chat = chat_for(ep)

        def forget_the_run() -> None:
            for run_id in list(ep.long_running.runs):
                ep.long_running.forget(run_id)

        async def consume() -> None:
            if mode == "stream":
                for _ in chat.stream("hi", background=True):
                    forget_the_run()
            else:
                async for _ in chat.astream("hi", background=True):
                    forget_the_run()

        with pytest.raises(RunNotFoundError):
            await consume()
        gate.set()


@pytest.mark.parametrize("mode", ["stream", "astream"])
async def test_a_crash_resume_rotates_the_conversation_for_later_calls(mode: str) -> None:
    replies = [Reply.text(PIECES), Reply.text(["resumed answer"]), Reply.text("next turn")]
    with LocalEndpoint(replies, long_running=True) as ep:
        ep.long_running.crash_run(at_seq=6)
        handler = Events()
        chat = chat_for(ep).bind(context={"conversation_id": "conv-1"})
        chunks = await streamed(chat, mode, background=True, config={"callbacks": [handler]})
        message = aggregate(chunks)
        chat.invoke("and then?")
        later = ep.last_request.body
    assert message.response_metadata["conversation_id"] == "conv-1::attempt-2"
    assert message.response_metadata["resumed"] == [
        {"attempt": 2, "from_seq": 6, "conversation_id": "conv-1::attempt-2"}
    ]
    assert message.text.endswith("resumed answer")
    events = [data for name, data in handler.seen if name == RESUMED_EVENT]
    assert events and events[0]["conversation_id"] == "conv-1::attempt-2"
    assert events[0]["attempt"] == 2 and events[0]["response_id"] == message.id
    assert later["context"]["conversation_id"] == "conv-1::attempt-2"


@pytest.mark.parametrize("asynchronous", [False, True])
async def test_agent_endpoint_background_invoke_reports_progress(asynchronous: bool) -> None:
    gate = threading.Event()
    with LocalEndpoint(gated(gate), long_running=True) as ep:
        handler = Events(gate)
        agent = AgentEndpoint(chat=chat_for(ep))
        config = {"callbacks": [handler]}
        if asynchronous:
            response = await agent.ainvoke("hi", config=config, background=True)
        else:
            response = agent.invoke("hi", config=config, background=True)
    assert response.text == FULL
    progress = [data for name, data in handler.seen if name == PROGRESS_EVENT]
    assert progress and progress[0]["id"] == response.id


@pytest.mark.parametrize("asynchronous", [False, True])
@pytest.mark.parametrize("cut", [0, 7, 19])
async def test_agent_endpoint_streams_resume_too(
    ep: LocalEndpoint, asynchronous: bool, cut: int
) -> None:
    ep.long_running.cut_stream(after_seq=cut)
    agent = AgentEndpoint(chat=chat_for(ep))
    if asynchronous:
        events = [e async for e in agent.astream("hi", background=True)]
    else:
        events = list(agent.stream("hi", background=True))
    deltas = [e.delta for e in events if e.type == "text_delta"]
    assert deltas == PIECES  # each once, in order
    final = events[-1].response
    assert final is not None and final.text == FULL
    assert final.message is not None and final.message.response_metadata["resumes"] == 1


# -- a plain MLflow AgentServer (no database): background is ignored ------------------------------
def test_a_plain_agent_server_ignores_background_and_the_client_copes(agent_server: Any) -> None:
    chat = ChatDatabricksResponses(endpoint="agent", base_url=agent_server.url, token="unused")
    assert chat.invoke("hello there", background=True).text == "hello there"
    run = chat.submit("hello again")
    assert run.done and run.result().text == "hello again"  # nothing to poll: already whole
    with pytest.raises(UnsupportedOperationError):
        run.cancel()  # no such route: 404, reported as unsupported
    streamed = aggregate(list(chat.stream("hello stream", background=True)))
    assert streamed.text == "hello stream" and "resumes" not in streamed.response_metadata
