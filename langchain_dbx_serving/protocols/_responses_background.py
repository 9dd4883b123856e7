"""Wire facts of durable agent servers: background runs, retrieval, cursor streams, resume.

The one owner of these facts (docs/notes/long-running-wire.md has the sources), as read in
databricks-ai-bridge's ``LongRunningAgentServer``:

- ``"background": true`` on ``POST /responses`` (or ``/invocations``) answers at once with
  ``{"id": "resp_...", "object": "response", "status": "in_progress", "output": [], ...}``;
  with ``"stream": true`` as well, the POST streams the retrieve feed from the start.
- ``GET /responses/{id}`` answers ``{"id", "status": "in_progress", "attempt_number"}``, the
  completed run (``output``: every ``response.output_item.done`` item, ``metadata.trace_id``
  when known) or ``{"status": "failed", "error": {...}}``; 404 when the id is unknown, 501
  when the server has no database.
- ``GET /responses/{id}?stream=true&starting_after=N`` streams ``data:`` frames, each tagged
  with ``sequence_number`` and ``response_id``, then ``data: [DONE]`` when the run completed
  (nothing when it failed). ``starting_after=0`` means *everything, seq 0 included*, so a
  client resuming after seq 0 sees seq 0 again: frames at or below the cursor are skipped.
- ``{"error": {"message", "type", "code": "stream_timeout"}}`` (no top-level ``type``, no
  ``sequence_number``: the server's ``_sse_event`` drops its event name) ends a retrieve
  stream that stayed open too long (the run goes on: reconnect from the cursor);
  ``"code": "response_not_found"`` in the same shape means the run is gone. A run that fails
  stores a typed ``{"type": "error", "error": {"code": "task_failed" | "task_timeout"}}``.
- After a crash the run restarts as a new attempt and a ``{"type": "response.resumed",
  "attempt": N, "from_seq": K, "conversation_id": "<base>::attempt-N"}`` frame marks it;
  later turns must use that rotated conversation id.
- ``POST /responses/{id}/cancel`` answers 501 (not implemented).

Example:
    >>> frame = parse_frame('{"type": "response.output_text.delta", "delta": "hi", '
    ...                     '"sequence_number": 3, "response_id": "resp_1"}')
    >>> frame.sequence_number, frame.response_id, frame.resumable
    (3, 'resp_1', True)
    >>> run = parse_run({"id": "resp_1", "status": "in_progress", "attempt_number": 1})
    >>> run.status, run.done
    ('in_progress', False)
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from langchain_dbx_serving._error_body import error_fields
from langchain_dbx_serving._json import loads
from langchain_dbx_serving.errors import MalformedResponseError, RunNotFoundError

__all__ = [
    "BACKGROUND_KEY",
    "RESUMED",
    "TERMINAL_STATUSES",
    "Frame",
    "RunState",
    "cancel_url",
    "parse_frame",
    "parse_run",
    "retrieve_url",
    "stream_url",
]

BACKGROUND_KEY = "background"
RESUMED = "response.resumed"
STREAM_TIMEOUT = "stream_timeout"
RESPONSE_NOT_FOUND = "response_not_found"
TERMINAL_STATUSES = frozenset({"completed", "failed", "cancelled", "incomplete"})


def _segment(response_id: str) -> str:
    if not isinstance(response_id, str) or not response_id:
        raise ValueError("a background run id must be a non-empty string")
    return quote(response_id, safe="")


def retrieve_url(responses_url: str, response_id: str) -> str:
    """``{responses_url}/{id}`` (``responses_url`` is the ``.../responses`` the POST used)."""
    return f"{responses_url.rstrip('/')}/{_segment(response_id)}"


def stream_url(responses_url: str, response_id: str, starting_after: int) -> str:
    """The retrieve feed from the cursor ``starting_after`` (``0``: from the start)."""
    cursor = max(0, int(starting_after))
    return f"{retrieve_url(responses_url, response_id)}?stream=true&starting_after={cursor}"


def cancel_url(responses_url: str, response_id: str) -> str:
    return f"{retrieve_url(responses_url, response_id)}/cancel"


@dataclass(frozen=True)
class Frame:
    """What the resume logic needs to know about one stream frame."""

    type: str | None
    sequence_number: int | None
    response_id: str | None
    error_code: str | None
    event: Mapping[str, Any] | None

    @property
    def resumable(self) -> bool:
        """Whether the server tags frames for cursor retrieval (a durable server's stream)."""
        return self.sequence_number is not None and self.response_id is not None

    @property
    def resumed(self) -> bool:
        return self.type == RESUMED

    # The server writes these two frames itself, as ``{"error": {...}}`` with no ``type``.
    @property
    def stream_timed_out(self) -> bool:
        return self.type in (None, "error") and self.error_code == STREAM_TIMEOUT

    @property
    def run_not_found(self) -> bool:
        return self.type in (None, "error") and self.error_code == RESPONSE_NOT_FOUND


_NOT_AN_EVENT = Frame(None, None, None, None, None)


def parse_frame(data: str) -> Frame:
    """The cursor facts of one SSE ``data`` payload (``[DONE]`` and non-JSON: none)."""
    text = data.strip()
    if not text.startswith("{") or ('"response_id"' not in text and '"error"' not in text):
        return _NOT_AN_EVENT  # cheap: most frames of most servers carry neither
    try:
        event = loads(text)
    except ValueError:
        return _NOT_AN_EVENT  # the decoder reports it, naming the event
    if not isinstance(event, dict):
        return _NOT_AN_EVENT
    seq = event.get("sequence_number")
    rid = event.get("response_id")
    code = (error_fields(event) or (None, None))[0]
    kind = event.get("type")
    return Frame(
        kind if isinstance(kind, str) else None,
        seq if isinstance(seq, int) and not isinstance(seq, bool) else None,
        rid if isinstance(rid, str) and rid else None,
        code if isinstance(code, str) else None,
        event,
    )


def not_found(response_id: str, endpoint: str | None) -> RunNotFoundError:
    return RunNotFoundError(
        f"the server does not know background run {response_id!r} (wrong id, expired, or "
        "served by another deployment): submit the request again",
        error_code=RESPONSE_NOT_FOUND,
        endpoint=endpoint,
    )


@dataclass(frozen=True)
class RunState:
    """A background run as ``GET /responses/{id}`` (or the submitting POST) reports it."""

    id: str
    status: str
    attempt_number: int | None
    body: Mapping[str, Any]

    @property
    def done(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def background(self) -> bool:
        """Whether this is a run still going on the server (not a whole reply already)."""
        return self.status in ("in_progress", "queued")


def parse_run(body: Any, *, fallback_id: str | None = None) -> RunState:
    """Read a submit or poll answer. A reply with ``output`` and no status is a whole reply
    (a server that ignored ``background``): it counts as ``completed``."""
    if not isinstance(body, Mapping):
        raise MalformedResponseError(
            f"a background run answer that is not a JSON object: {str(body)[:200]!r}"
        )
    rid = body.get("id") if isinstance(body.get("id"), str) and body.get("id") else fallback_id
    status = body.get("status")
    if not isinstance(status, str) or not status:
        if isinstance(body.get("output"), list):
            status = "completed"
        elif body.get("error"):
            status = "failed"
        else:
            raise MalformedResponseError(
                f"a background run answer with no status: {json.dumps(body, default=str)[:200]}"
            )
    if rid is None:
        raise MalformedResponseError("a background run answer with no id: cannot poll it")
    attempt = body.get("attempt_number")
    return RunState(rid, status, attempt if isinstance(attempt, int) else None, body)


class ResumeAwareDecoder:
    """A responses ``StreamDecoder`` that also reports what happened to a resumable stream.

    ``state`` is the stream's resume state (``resumes``, ``resumed_events``,
    ``conversation_id``, ``response_id``). A feed whose frames name the run but carry no
    ``response.created`` gets the run id as message id. When the stream was re-opened or the
    run was restarted on the server, the last chunk's ``response_metadata`` gains ``resumes``
    (reconnections), ``resumed`` (the server's ``response.resumed`` frames) and
    ``conversation_id`` (the rotated id later turns must use). The rest is the wrapped
    decoder's.
    """

    def __init__(self, inner: Any, state: Any) -> None:
        self._inner = inner
        self._state = state

    @property
    def _complete(self) -> Any:
        """The wrapped decoder's: whether the reply was already whole (see chat_models/_guard)."""
        return getattr(self._inner, "_complete", False)

    def feed(self, data: str) -> list[Any]:
        return self._inner.feed(data)

    def finish(self) -> list[Any]:
        chunks = self._inner.finish()
        state = self._state
        if chunks and chunks[-1].id is None and state.response_id is not None:
            # A feed of done items only (an invoke-style run) names the run on every frame.
            last = chunks[-1]
            metadata = {**last.response_metadata, "id": state.response_id}
            update = {"id": state.response_id, "response_metadata": metadata}
            chunks = [*chunks[:-1], last.model_copy(update=update)]
        if not chunks or not (state.resumes or state.resumed_events):
            return chunks
        extra: dict[str, Any] = {"resumes": state.resumes}
        if state.resumed_events:
            extra["resumed"] = [
                {k: e.get(k) for k in ("attempt", "from_seq", "conversation_id")}
                for e in state.resumed_events
            ]
        if state.conversation_id is not None:
            extra["conversation_id"] = state.conversation_id
        last = chunks[-1]
        metadata = {**last.response_metadata, **extra}
        return [*chunks[:-1], last.model_copy(update={"response_metadata": metadata})]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)
