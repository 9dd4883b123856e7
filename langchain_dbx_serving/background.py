"""Background runs on durable agent servers: submit now, poll, wait, stream, collect later.

A durable agent server (databricks-ai-bridge's ``LongRunningAgentServer``; wire facts in
``protocols/_responses_background.py``) runs a request with ``"background": true`` detached
from the HTTP connection. :class:`BackgroundRun` is the client's handle on such a run, made by
``ChatDatabricksResponses.submit()`` / ``AgentEndpoint.submit()`` (and their ``asubmit``).

A handle is only its id and endpoint (``to_dict()``): a web request can submit, store the
dict, and another request (another process) can collect the run with
``model.background_run(run_id)``.

Example:
    .. code-block:: python

        from langchain_dbx_serving import ChatDatabricksResponses

        agent = ChatDatabricksResponses(endpoint="research", base_url=APP_URL)
        run = agent.submit("Survey the literature on X")
        saved = run.to_dict()  # {"id": "resp_...", "endpoint": "research"}

        # later, anywhere
        run = agent.background_run(saved["id"])
        run.poll()                       # "in_progress" / "completed" / "failed"
        message = run.result(timeout=600)  # waits, then the AIMessage
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from langchain_dbx_serving.errors import (
    APIStatusError,
    BackgroundTimeoutError,
    UnsupportedOperationError,
)
from langchain_dbx_serving.protocols import _responses_background as wire
from langchain_dbx_serving.protocols import _supervisor_echo as echo
from langchain_dbx_serving.protocols import responses
from langchain_dbx_serving.transport._get import aget_json, aget_stream, get_json, get_stream
from langchain_dbx_serving.transport._resume import ResumeState, aresumable, resumable

if TYPE_CHECKING:
    from langchain_dbx_serving.transport.client import Transport

__all__ = ["PROGRESS_EVENT", "RESUMED_EVENT", "BackgroundRun", "RunHost", "RunReader"]

PROGRESS_EVENT = "databricks_background_progress"
"""Custom callback event sent while ``invoke(..., background=True)`` waits (one per poll)."""
RESUMED_EVENT = "databricks_response_resumed"
"""Custom callback event sent when the server restarted a run (``response.resumed``)."""

_FIRST_POLL = 0.2
_MAX_POLL = 2.0

Progress = Callable[[wire.RunState], Any]


class RunHost(Protocol):
    """What a handle needs of the model that submitted its run
    (:class:`~langchain_dbx_serving.ChatDatabricksResponses` is one): the endpoint, the
    transport, how often a dropped stream is resumed, and where runs are retrieved."""

    @property
    def endpoint(self) -> str: ...

    @property
    def transport(self) -> Transport: ...

    @property
    def max_resumes(self) -> int: ...

    def _responses_url(self) -> str: ...


class RunReader(Protocol):
    """How a handle reads its run: the answer of the finished run, and a feed of its stream
    (``feed(data)`` and ``finish()``, each giving what :meth:`BackgroundRun.stream` yields).
    The default reads messages (``AIMessage``, ``AIMessageChunk``); ``AgentEndpoint`` gives
    its own (``AgentResponse``, ``AgentEvent``)."""

    def answer(self, body: Mapping[str, Any]) -> Any: ...

    def events(self, state: ResumeState) -> Any: ...


class _Messages:
    """The reader of a ``ChatDatabricksResponses`` handle."""

    def answer(self, body: Mapping[str, Any]) -> Any:
        return responses.decode_reply(body).generations[0].message

    def events(self, state: ResumeState) -> Any:
        return wire.ResumeAwareDecoder(responses.StreamDecoder(), state)


_MESSAGES = _Messages()


class BackgroundRun:
    """A handle on a run going on in the background on a durable agent server.

    ``id`` and ``status`` (as last seen) describe it; :meth:`poll` refreshes the status,
    :meth:`wait` waits for the end (``BackgroundTimeoutError`` carries this handle when it
    does not come in time), :meth:`result` returns the answer (an ``AIMessage``, or an
    ``AgentResponse`` for a handle made by ``AgentEndpoint``), :meth:`stream` follows the run's
    events (resuming transparently if the connection drops), :meth:`cancel` asks the server to
    stop it. Every method has an ``a``-prefixed async twin.

    Example:
        .. code-block:: python

            run = agent.submit("long task")
            while run.poll() == "in_progress":
                print("still working, attempt", run.attempt_number)
                time.sleep(5)
            print(run.result().text)
    """

    def __init__(
        self,
        chat: RunHost,
        run_id: str,
        *,
        state: wire.RunState | None = None,
        reader: RunReader | None = None,
        echoed: int = 0,
    ) -> None:
        if not isinstance(run_id, str) or not run_id:
            raise ValueError("a background run id must be a non-empty string")
        self._chat = chat
        self._reader = reader or _MESSAGES
        self.id = run_id
        self._state = state
        self.status: str = state.status if state is not None else "in_progress"
        self.attempt_number: int | None = state.attempt_number if state else None
        self.echoed = max(0, int(echoed))
        """Leading output items that echo the input history, skipped (Supervisor API)."""

    # -- identity ---------------------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        return self._chat.endpoint

    def to_dict(self) -> dict[str, Any]:
        """``{"id", "endpoint"}``: all another process needs to collect the run (plus
        ``"echoed"``, to pass to ``background_run``, for a run whose output echoes history)."""
        saved: dict[str, Any] = {"id": self.id, "endpoint": self.endpoint}
        if self.echoed:
            saved["echoed"] = self.echoed
        return saved

    def __repr__(self) -> str:
        return f"BackgroundRun(id={self.id!r}, endpoint={self.endpoint!r}, status={self.status!r})"

    @property
    def done(self) -> bool:
        return self.status in wire.TERMINAL_STATUSES

    def _url(self) -> str:
        return wire.retrieve_url(self._chat._responses_url(), self.id)

    def _update(self, body: Any) -> wire.RunState:
        state = wire.parse_run(body, fallback_id=self.id)
        self._state = state
        self.status = state.status
        self.attempt_number = state.attempt_number or self.attempt_number
        return state

    def _poll_error(self, error: APIStatusError) -> Exception:
        if error.status_code == 404:
            return wire.not_found(self.id, self.endpoint)
        if error.status_code == 501:
            return UnsupportedOperationError(
                f"endpoint {self.endpoint!r} cannot retrieve background runs (HTTP 501: "
                f"{error.message}); the server needs its database configured",
                status_code=501,
                endpoint=self.endpoint,
            )
        return error

    # -- poll -------------------------------------------------------------------------------
    def poll(self) -> str:
        """Ask the server once; returns (and stores) the run's status."""
        if self.done and self._state is not None:
            return self.status
        try:
            body = get_json(self._chat.transport, self._url(), endpoint=self.endpoint)
        except APIStatusError as exc:
            raise self._poll_error(exc) from exc
        return self._update(body).status

    async def apoll(self) -> str:
        """Async :meth:`poll`."""
        if self.done and self._state is not None:
            return self.status
        try:
            body = await aget_json(self._chat.transport, self._url(), endpoint=self.endpoint)
        except APIStatusError as exc:
            raise self._poll_error(exc) from exc
        return self._update(body).status

    # -- wait -------------------------------------------------------------------------------
    def _timed_out(self, timeout: float) -> BackgroundTimeoutError:
        return BackgroundTimeoutError(
            f"background run {self.id!r} on endpoint {self.endpoint!r} was still "
            f"{self.status} after {timeout:g}s; it goes on on the server: collect it later "
            "with run.wait() / run.result(), or model.background_run(run_id)",
            endpoint=self.endpoint,
            run=self,
        )

    def wait(self, timeout: float | None = None, *, on_progress: Progress | None = None) -> str:
        """Poll until the run ends (or ``timeout`` seconds pass: ``BackgroundTimeoutError``).

        ``on_progress`` is called with each state seen while the run is not finished.
        """
        start = time.monotonic()
        interval = _FIRST_POLL
        while True:
            self.poll()
            if self.done:
                return self.status
            if on_progress is not None and self._state is not None:
                on_progress(self._state)
            left = None if timeout is None else timeout - (time.monotonic() - start)
            if left is not None and left <= 0:
                raise self._timed_out(timeout or 0)
            time.sleep(interval if left is None else min(interval, left))
            interval = min(_MAX_POLL, interval * 1.5)

    async def await_(
        self, timeout: float | None = None, *, on_progress: Progress | None = None
    ) -> str:
        """Async :meth:`wait` (``on_progress`` may be a coroutine function)."""
        start = time.monotonic()
        interval = _FIRST_POLL
        while True:
            await self.apoll()
            if self.done:
                return self.status
            if on_progress is not None and self._state is not None:
                maybe = on_progress(self._state)
                if asyncio.iscoroutine(maybe):
                    await maybe
            left = None if timeout is None else timeout - (time.monotonic() - start)
            if left is not None and left <= 0:
                raise self._timed_out(timeout or 0)
            await asyncio.sleep(interval if left is None else min(interval, left))
            interval = min(_MAX_POLL, interval * 1.5)

    # -- result -----------------------------------------------------------------------------
    def _body(self) -> Mapping[str, Any]:
        """The finished run's answer, as a responses reply."""
        assert self._state is not None
        body = self._state.body
        if self._state.status == "completed" and "output" not in body:
            body = {**body, "output": []}  # the server lists no output when nothing was stored
        if self.echoed and isinstance(body.get("output"), list):  # the Supervisor API's echo
            body = {**body, "output": echo.strip_echo(body["output"], self.echoed)}
        return body

    def _decode(self) -> Any:
        return self._reader.answer(self._body())

    def result(self, timeout: float | None = None) -> Any:
        """Wait for the end and return the answer; a failed run raises ``AgentError``."""
        self.wait(timeout)
        return self._decode()

    async def aresult(self, timeout: float | None = None) -> Any:
        """Async :meth:`result`."""
        await self.await_(timeout)
        return self._decode()

    # -- stream -----------------------------------------------------------------------------
    def _resume_state(self, starting_after: int | None) -> tuple[str, ResumeState]:
        base = self._chat._responses_url()
        state = ResumeState(
            base,
            endpoint=self.endpoint,
            max_resumes=self._chat.max_resumes,
            response_id=self.id,
            starting_after=starting_after,
        )
        return wire.stream_url(base, self.id, starting_after or 0), state

    def stream(self, starting_after: int | None = None) -> Iterator[Any]:
        """Follow the run's events from the cursor ``starting_after`` (``None``: from the
        start): ``AIMessageChunk``s (``AgentEvent``s for an ``AgentEndpoint`` handle).

        A dropped connection or a ``stream_timeout`` is resumed from the last sequence number
        (at most the model's ``max_resumes`` times), without duplicate or missing chunks.
        """
        url, state = self._resume_state(starting_after)
        transport = self._chat.transport
        builder = self._reader.events(state)
        first = get_stream(transport, url, endpoint=self.endpoint)
        for data in resumable(transport, first, state):
            yield from builder.feed(data)
        yield from builder.finish()

    async def astream(self, starting_after: int | None = None) -> AsyncIterator[Any]:
        """Async :meth:`stream`."""
        url, state = self._resume_state(starting_after)
        transport = self._chat.transport
        builder = self._reader.events(state)
        first = aget_stream(transport, url, endpoint=self.endpoint)
        async for data in aresumable(transport, first, state):
            for item in builder.feed(data):
                yield item
        for item in builder.finish():
            yield item

    # -- cancel -----------------------------------------------------------------------------
    def _cancel_error(self, error: APIStatusError) -> Exception:
        if error.status_code in (404, 405, 501):
            return UnsupportedOperationError(
                f"endpoint {self.endpoint!r} does not support cancelling background runs "
                f"(HTTP {error.status_code}: {error.message}); run {self.id!r} goes on until "
                "it finishes or the server's task timeout ends it",
                status_code=error.status_code,
                endpoint=self.endpoint,
            )
        return error

    def cancel(self) -> str:
        """Ask the server to stop the run. Servers that cannot (``LongRunningAgentServer``
        answers 501) raise ``UnsupportedOperationError``."""
        url = wire.cancel_url(self._chat._responses_url(), self.id)
        try:
            body = self._chat.transport.post_json(url, {}, endpoint=self.endpoint)
        except APIStatusError as exc:
            raise self._cancel_error(exc) from exc
        return self._update(body).status

    async def acancel(self) -> str:
        """Async :meth:`cancel`."""
        url = wire.cancel_url(self._chat._responses_url(), self.id)
        try:
            body = await self._chat.transport.apost_json(url, {}, endpoint=self.endpoint)
        except APIStatusError as exc:
            raise self._cancel_error(exc) from exc
        return self._update(body).status


def handle_from_reply(
    chat: RunHost, reply: Any, *, reader: RunReader | None = None, echoed: int = 0
) -> BackgroundRun:
    """The handle of a submit answer (a whole reply from a server ignoring ``background`` is
    a handle that is already ``completed``); ``echoed``: see ``BackgroundRun.echoed``."""
    local = None
    if isinstance(reply, Mapping) and not reply.get("id") and isinstance(reply.get("output"), list):
        local = f"local_{uuid.uuid4().hex}"  # a whole reply without id: nothing to retrieve
    state = wire.parse_run(reply, fallback_id=local)
    return BackgroundRun(chat, state.id, state=state, reader=reader, echoed=echoed)
