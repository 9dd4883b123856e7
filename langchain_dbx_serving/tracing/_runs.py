"""The callback run of a chat model call, for the code paths LangChain does not hand it to.

langchain-core calls ``_stream``/``_astream`` without ``run_manager`` from ``stream()``,
``astream()`` and from ``invoke()`` when it streams under the hood (``streaming=True``,
``astream_events``). A returned trace arrives inside ``_stream``, and its custom event must be
reported on the model's run, so the run travels in a context variable:

- ``_generate_with_cache`` knows its run manager: :func:`current_run` makes it visible;
- ``stream()``/``astream()`` fix the run id in the config (LangChain uses ``config["run_id"]``
  for the model's run) and expose a callback manager for it, set around every step of the
  stream (:func:`step_in_run`/:func:`astep_in_run`) so nothing leaks into the caller's context.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from contextvars import ContextVar
from typing import Any, TypeVar

from langchain_core.callbacks import AsyncCallbackManager, BaseCallbackManager, CallbackManager
from langchain_core.runnables import RunnableConfig, ensure_config
from langchain_core.utils.uuid import uuid7

__all__ = ["astep_in_run", "current_run", "run_of", "step_in_run", "stream_run"]

T = TypeVar("T")

_RUN: ContextVar[Any] = ContextVar("langchain_dbx_serving_run", default=None)


def run_of(run_manager: Any) -> Any:
    """``run_manager`` when LangChain passed one, else the run set by this module (or None)."""
    return run_manager if run_manager is not None else _RUN.get()


@contextlib.contextmanager
def current_run(run: Any) -> Iterator[None]:
    token = _RUN.set(run)
    try:
        yield
    finally:
        _RUN.reset(token)


def stream_run(
    model: Any, config: RunnableConfig | None, *, is_async: bool
) -> tuple[RunnableConfig, BaseCallbackManager]:
    """The config to stream with (its ``run_id`` fixed) and a manager reporting on that run.

    The manager gets the same handlers LangChain's ``stream()`` configures from the config
    and the model; its ``parent_run_id`` is the model's run, which is where
    ``dispatch_custom_event`` reports.
    """
    config = ensure_config(config)
    run_id = config.get("run_id") or uuid7()  # what LangChain would have picked
    config = {**config, "run_id": run_id}
    manager_class = AsyncCallbackManager if is_async else CallbackManager
    manager = manager_class.configure(
        config.get("callbacks"),
        model.callbacks,
        model.verbose,
        config.get("tags"),
        model.tags,
        config.get("metadata"),
        model.metadata,
    )
    manager.parent_run_id = run_id
    return config, manager


def step_in_run(run: Any, iterator: Iterator[T]) -> Iterator[T]:
    """Iterate ``iterator`` with ``run`` as the current run during each step only.

    Closing this iterator (a consumer that stops early) closes ``iterator`` too, so
    LangChain's own stream generator still ends its run.
    """
    try:
        while True:
            token = _RUN.set(run)
            try:
                item = next(iterator)
            except StopIteration:
                return
            finally:
                _RUN.reset(token)
            yield item
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()


async def astep_in_run(run: Any, iterator: AsyncIterator[T]) -> AsyncIterator[T]:
    """The async twin of :func:`step_in_run`."""
    try:
        while True:
            token = _RUN.set(run)
            try:
                item = await iterator.__anext__()
            except StopAsyncIteration:
                return
            finally:
                _RUN.reset(token)
            yield item
    finally:
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            await aclose()
