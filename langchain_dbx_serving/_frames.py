"""Errors leave our call paths without the frame locals below them: :func:`clears_frames`.

Those locals hold the raw bytes a server sent (an echoed credential among them); a traceback
formatted with them (pytest ``--showlocals``, error trackers) would show them. The messages and
fields of our errors are redacted where they are built (``errors`` and ``_redact``); this
module clears what the traceback keeps.
"""

from __future__ import annotations

import functools
import inspect
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

from langchain_dbx_serving.errors import DatabricksServingError

__all__ = ["clears_frames"]

_F = TypeVar("_F", bound=Callable[..., Any])


def _cleared(exc: BaseException) -> None:
    """Drop the local variables of the finished frames an error passed through: they hold the
    raw bytes a server sent (an echoed credential among them), and a traceback formatted with
    its frames' locals (pytest ``--showlocals``, error trackers) would show them. File names and
    line numbers stay."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        traceback.clear_frames(exc.__traceback__)
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]


def clears_frames(func: _F) -> _F:
    """Decorate a call path (function, coroutine, generator or async generator) so that a
    :class:`~langchain_dbx_serving.errors.DatabricksServingError` leaving it carries no frame
    locals from below it (see :func:`_cleared`)."""
    if inspect.isasyncgenfunction(func):

        @functools.wraps(func)
        async def agen(*args: Any, **kwargs: Any) -> Any:
            inner = func(*args, **kwargs)
            try:
                async for item in inner:
                    yield item
            except DatabricksServingError as exc:
                _cleared(exc)
                raise
            finally:  # a caller that stops early closes the inner stream now, not at GC
                await inner.aclose()

        return agen  # type: ignore[return-value]
    if inspect.isgeneratorfunction(func):

        @functools.wraps(func)
        def gen(*args: Any, **kwargs: Any) -> Any:
            try:
                yield from func(*args, **kwargs)
            except DatabricksServingError as exc:
                _cleared(exc)
                raise

        return gen  # type: ignore[return-value]
    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def coro(*args: Any, **kwargs: Any) -> Any:
            try:
                return await func(*args, **kwargs)
            except DatabricksServingError as exc:
                _cleared(exc)
                raise

        return coro  # type: ignore[return-value]

    @functools.wraps(func)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except DatabricksServingError as exc:
            _cleared(exc)
            raise

    return call  # type: ignore[return-value]
