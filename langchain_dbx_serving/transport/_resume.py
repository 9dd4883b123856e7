"""Resumable event streams: a stream from a durable agent server that drops is re-opened.

A durable agent server (databricks-ai-bridge's ``LongRunningAgentServer``) tags every frame
with ``sequence_number`` and ``response_id`` and serves the run's feed again from a cursor
(``GET /responses/{id}?stream=true&starting_after=N``). :func:`resumable` and
:func:`aresumable` wrap a stream of SSE ``data`` payloads so that when it drops (or the server
ends it with a ``stream_timeout`` frame) it continues from the last sequence number seen, at
most ``max_resumes`` times: the caller sees every frame exactly once, in order. A stream whose
frames are not tagged (any other server) is passed through untouched, and a drop stays a
:class:`~langchain_dbx_serving.errors.StreamInterruptedError`.

Example:
    .. code-block:: python

        state = ResumeState(responses_url, endpoint="agent", max_resumes=3)
        for data in resumable(transport, transport.stream(url, body), state):
            decoder.feed(data)
        state.conversation_id  # the rotated id after a server-side crash, else None
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from typing import Any

from langchain_dbx_serving.errors import APIStatusError, StreamInterruptedError
from langchain_dbx_serving.protocols import _responses_background as wire
from langchain_dbx_serving.transport._get import aget_stream, get_stream
from langchain_dbx_serving.transport.client import Transport

__all__ = ["ResumeState", "aresumable", "resumable"]

_PASS, _SKIP, _RECONNECT = "pass", "skip", "reconnect"


class ResumeState:
    """The cursor of one resumable stream and what happened to it.

    ``last_sequence`` and ``response_id`` are the cursor; ``resumes`` counts reconnections;
    ``resumed_events`` are the server's ``response.resumed`` frames (one per crash-restart of
    the run) and ``conversation_id`` the rotated conversation id of the latest one.
    """

    def __init__(
        self,
        responses_url: str,
        *,
        endpoint: str | None = None,
        max_resumes: int = 3,
        response_id: str | None = None,
        starting_after: int | None = None,
    ) -> None:
        self.responses_url = responses_url
        self.endpoint = endpoint
        self.max_resumes = max(0, max_resumes)
        self.response_id = response_id
        self.last_sequence = starting_after
        self.resumes = 0
        self.resumed_events: list[dict[str, Any]] = []

    @property
    def conversation_id(self) -> str | None:
        for event in reversed(self.resumed_events):
            if isinstance(event.get("conversation_id"), str):
                return event["conversation_id"]
        return None

    @property
    def can_resume(self) -> bool:
        return self.response_id is not None

    def admit(self, data: str) -> tuple[str, wire.Frame]:
        """What to do with one payload: pass it on, skip it (already seen), or reconnect."""
        frame = wire.parse_frame(data)
        if not frame.resumable:
            if frame.stream_timed_out and self.can_resume:
                return _RECONNECT, frame
            if frame.run_not_found and self.response_id is not None:
                raise wire.not_found(self.response_id, self.endpoint)
            return _PASS, frame
        assert frame.sequence_number is not None
        if self.response_id is None:
            self.response_id = frame.response_id
        if frame.stream_timed_out:
            return _RECONNECT, frame
        if frame.run_not_found:
            raise wire.not_found(frame.response_id or "", self.endpoint)
        if self.last_sequence is not None and frame.sequence_number <= self.last_sequence:
            return _SKIP, frame  # starting_after=0 replays seq 0; a feed may overlap
        self.last_sequence = frame.sequence_number
        if frame.resumed and frame.event is not None:
            self.resumed_events.append(dict(frame.event))
        return _PASS, frame

    def next_url(self, cause: BaseException) -> str:
        """The URL to re-open the feed at, or raise ``cause`` (typed) when that is not possible."""
        if not self.can_resume:
            raise cause
        assert self.response_id is not None
        if self.resumes >= self.max_resumes:
            raise StreamInterruptedError(
                f"the stream of background run {self.response_id!r} dropped again after "
                f"{self.resumes} resume(s), the resume budget (max_resumes={self.max_resumes}); "
                f"collect it later with its id, or raise max_resumes ({cause})",
                endpoint=self.endpoint,
            ) from cause
        self.resumes += 1
        # starting_after=0 is "from the start"; with no frame seen yet every frame is new.
        return wire.stream_url(self.responses_url, self.response_id, self.last_sequence or 0)

    def failed_resume(self, error: APIStatusError) -> StreamInterruptedError:
        return StreamInterruptedError(
            f"the stream of background run {self.response_id!r} dropped and could not be "
            f"resumed from sequence number {self.last_sequence}: {error.message}",
            status_code=error.status_code,
            endpoint=self.endpoint,
        )


def _timeout_cause(state: ResumeState) -> StreamInterruptedError:
    return StreamInterruptedError(
        f"the server ended the stream of background run {state.response_id!r} "
        "(stream_timeout) before the run finished",
        endpoint=state.endpoint,
    )


def resumable(
    transport: Transport,
    first: Iterator[str],
    state: ResumeState,
    on_resumed: Callable[[Mapping[str, Any]], None] | None = None,
) -> Iterator[str]:
    """Yield the payloads of ``first``, then of re-opened feeds while the stream drops."""
    source, reopened = first, False
    while True:
        cause: BaseException
        try:
            for data in source:
                action, frame = state.admit(data)
                if action == _SKIP:
                    continue
                if action == _RECONNECT:
                    break
                if frame.resumed and on_resumed is not None and frame.event is not None:
                    on_resumed(frame.event)
                yield data
            else:
                return
            cause = _timeout_cause(state)
        except StreamInterruptedError as exc:
            cause = exc
        except APIStatusError as exc:
            if not reopened:
                raise
            raise state.failed_resume(exc) from exc
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()
        source = get_stream(transport, state.next_url(cause), endpoint=state.endpoint)
        reopened = True


async def aresumable(
    transport: Transport,
    first: AsyncIterator[str],
    state: ResumeState,
    on_resumed: Callable[[Mapping[str, Any]], Awaitable[None]] | None = None,
) -> AsyncIterator[str]:
    """Async :func:`resumable`."""
    source, reopened = first, False
    while True:
        cause: BaseException
        try:
            async for data in source:
                action, frame = state.admit(data)
                if action == _SKIP:
                    continue
                if action == _RECONNECT:
                    break
                if frame.resumed and on_resumed is not None and frame.event is not None:
                    await on_resumed(frame.event)
                yield data
            else:
                return
            cause = _timeout_cause(state)
        except StreamInterruptedError as exc:
            cause = exc
        except APIStatusError as exc:
            if not reopened:
                raise
            raise state.failed_resume(exc) from exc
        finally:
            aclose = getattr(source, "aclose", None)
            if aclose is not None:
                await aclose()
        source = aget_stream(transport, state.next_url(cause), endpoint=state.endpoint)
        reopened = True
