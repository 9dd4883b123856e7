"""The resume cursor: what passes, what is skipped, when a stream may be re-opened."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from langchain_dbx_serving.errors import RunNotFoundError, StreamInterruptedError
from langchain_dbx_serving.transport._resume import ResumeState, resumable


def frames(*events: dict) -> Iterator[str]:
    for event in events:
        yield json.dumps(event)


def test_untagged_frames_pass_untouched_even_when_numbers_restart() -> None:
    # Model Serving: two response lifecycles in one stream, OpenAI-style numbers from 0 twice.
    events = [{"type": "d", "sequence_number": n} for n in (0, 1, 0, 1)]
    state = ResumeState("http://h/responses")
    assert list(resumable(None, frames(*events), state)) == [json.dumps(e) for e in events]  # type: ignore[arg-type]
    assert state.response_id is None and not state.can_resume


def test_tagged_frames_at_or_below_the_cursor_are_skipped() -> None:
    tagged = [{"type": "d", "sequence_number": n, "response_id": "resp_1"} for n in (0, 1, 1, 0, 2)]
    state = ResumeState("http://h/responses")
    out = [json.loads(d)["sequence_number"] for d in resumable(None, frames(*tagged), state)]  # type: ignore[arg-type]
    assert out == [0, 1, 2] and state.last_sequence == 2


def test_a_drop_before_any_tagged_frame_stays_an_interruption() -> None:
    def dropping() -> Iterator[str]:
        yield json.dumps({"type": "d"})
        raise StreamInterruptedError("dropped")

    with pytest.raises(StreamInterruptedError, match="dropped"):
        list(resumable(None, dropping(), ResumeState("http://h/responses")))  # type: ignore[arg-type]


def test_the_budget_is_checked_before_reconnecting() -> None:
    def dropping() -> Iterator[str]:
        yield json.dumps({"type": "d", "sequence_number": 3, "response_id": "resp_1"})
        raise StreamInterruptedError("dropped")

    state = ResumeState("http://h/responses", max_resumes=0)
    with pytest.raises(StreamInterruptedError, match="resume budget"):
        list(resumable(None, dropping(), state))  # type: ignore[arg-type]


def test_response_not_found_is_a_typed_error() -> None:
    gone = {
        "error": {
            "message": "Response not found",
            "type": "not_found",
            "code": "response_not_found",
        }
    }
    state = ResumeState("http://h/responses", response_id="resp_9")
    with pytest.raises(RunNotFoundError, match="resp_9"):
        list(resumable(None, frames(gone), state))  # type: ignore[arg-type]
