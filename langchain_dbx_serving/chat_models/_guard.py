"""Typed errors at the edge where a reply enters, and ``partial`` on every error mid-stream.

Protocol decoders raise :class:`MalformedResponseError` for the shapes they check; anything
else a hostile or broken endpoint can send (a list where a string belongs, nesting that
exhausts the stack, ...) surfaces here as a bare ``TypeError``, ``KeyError``,
``RecursionError``. :class:`Decoding` turns those into ``MalformedResponseError`` naming the
endpoint, the request id and the offending event, and fills ``endpoint``/``request_id`` on our
own errors that lack them. :class:`KeepPartial` attaches what a stream delivered to any error
raised after it began. :func:`until_complete` ends a stream whose reply was already complete
when its connection broke (the answer is whole; there is nothing to report).

Example:
    >>> guard = Decoding("chat")
    >>> with guard.event('{"choices": 7}'):
    ...     {}["choices"]
    Traceback (most recent call last):
    ...
    langchain_dbx_serving.errors.MalformedResponseError: endpoint 'chat' sent a stream event of an unexpected shape (KeyError: 'choices'): '{"choices": 7}'
"""  # noqa: E501

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from functools import reduce
from operator import add
from typing import Any

from langchain_dbx_serving.errors import (
    DatabricksServingError,
    MalformedResponseError,
    ServingTimeoutError,
    StreamInterruptedError,
)
from langchain_dbx_serving.protocols._common import preview

__all__ = ["Decoding", "KeepPartial", "auntil_complete", "until_complete"]

_AFTER_END = (StreamInterruptedError, ServingTimeoutError)
_FOREIGN = (TypeError, KeyError, AttributeError, IndexError, ValueError, RecursionError)


class Decoding:
    """Where a call's reply is decoded: its endpoint and (once known) its request id."""

    __slots__ = ("endpoint", "request_id", "run")

    def __init__(
        self, endpoint: str | None, request_id: str | None = None, run: Any = None
    ) -> None:
        self.endpoint = endpoint
        self.request_id = request_id
        self.run = run  # the callback run retries are reported on (default: the current one)

    def event(self, data: Any, what: str = "a stream event") -> _EventScope:
        """A ``with`` block decoding ``data``: its errors come out typed (see the module)."""
        return _EventScope(self, data, what)

    def typed(
        self, exc: BaseException, data: Any, what: str = "a stream event"
    ) -> MalformedResponseError | None:
        """What decoding ``data`` raising ``exc`` becomes: ``None`` when ``exc`` is to be
        re-raised as it is (our own errors, their endpoint and request id filled here;
        anything not a decoding failure), else the typed error to raise ``from None``.

        For the per-event loops, where a ``try``/``except`` costs nothing until it fires::

            try:
                chunks = decoder.feed(data)
            except Exception as exc:
                if (typed := guard.typed(exc, data)) is None:
                    raise
                raise typed from None
        """
        if isinstance(exc, DatabricksServingError):
            exc.endpoint = exc.endpoint or self.endpoint
            exc.request_id = exc.request_id or self.request_id
            return None
        if not isinstance(exc, _FOREIGN):
            return None
        who = f"endpoint {self.endpoint!r}" if self.endpoint else "the endpoint"
        detail = f"{type(exc).__name__}: {str(exc)[:200]}"
        if isinstance(exc, RecursionError):
            detail = "nested too deeply to decode"
        return MalformedResponseError(
            f"{who} sent {what} of an unexpected shape ({detail}): {preview(data)!r}",
            event=preview(data),
            endpoint=self.endpoint,
            request_id=self.request_id,
        )

    def reply(self, decode: Callable[..., Any], body: Any, **options: Any) -> Any:
        """``decode(body, **options)`` with typed errors."""
        with self.event(body, "a reply"):
            return decode(body, **options)


class _EventScope:
    """The context manager of :meth:`Decoding.event`: a class, not a generator, since it is
    entered once per streamed event."""

    __slots__ = ("data", "guard", "what")

    def __init__(self, guard: Decoding, data: Any, what: str) -> None:
        self.guard = guard
        self.data = data
        self.what = what

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is not None and (typed := self.guard.typed(exc, self.data, self.what)) is not None:
            raise typed from None


class KeepPartial:
    """Attach what a stream delivered (``combine(received)``) to any error of ours raised
    after the stream began, and fill the endpoint it lacks."""

    def __init__(
        self,
        received: list[Any],
        endpoint: str | None = None,
        combine: Callable[[list[Any]], Any] | None = None,
    ) -> None:
        self.received = received
        self.endpoint = endpoint
        self.combine = combine or (lambda items: reduce(add, items))

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if not isinstance(exc, DatabricksServingError):
            return
        exc.endpoint = exc.endpoint or self.endpoint
        if exc.partial is None and self.received:
            exc.partial = self.combine(self.received)


def _complete(decoder: Any) -> bool:
    flag = getattr(decoder, "_complete", False)
    return bool(flag() if callable(flag) else flag)


def until_complete(events: Iterator[str], decoder: Any) -> Iterator[str]:
    """``events``, ending quietly when the connection breaks or stalls after the reply was
    complete (the answer is whole). The stream is still read to its end, not closed at
    ``[DONE]``: an agent server may still be finishing (writing its trace) until then."""
    try:
        yield from events
    except _AFTER_END:
        if not _complete(decoder):
            raise
    finally:
        close = getattr(events, "close", None)
        if close is not None:
            close()


async def auntil_complete(events: AsyncIterator[str], decoder: Any) -> AsyncIterator[str]:
    """Async :func:`until_complete`; closing it closes ``events`` (its connection)."""
    try:
        async for data in events:
            yield data
    except _AFTER_END:
        if not _complete(decoder):
            raise
    finally:
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()
