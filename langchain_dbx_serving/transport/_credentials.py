"""Getting request headers from credentials within the call's deadline, off the event loop.

A static token gives its headers at once. Anything else (a databricks-sdk ``Config``, which may
probe the host, fetch OIDC metadata or an OAuth token, run a CLI) can block for minutes: it runs
on a worker thread, and the call waits for it at most until its deadline (an async call awaits
it without blocking the event loop). A resolution that does not finish in time raises
:class:`~langchain_dbx_serving.errors.ServingTimeoutError` naming the host and the auth method
tried; the worker thread is left to finish on its own (it is a daemon thread).

Example:
    >>> from langchain_dbx_serving.transport._deadline import Deadline
    >>> headers_within(lambda: {"Authorization": "Bearer t"}, Deadline(1), host="h", fast=True)
    {'Authorization': 'Bearer t'}
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Callable
from typing import Any

from langchain_dbx_serving.errors import ConfigurationError, ServingTimeoutError
from langchain_dbx_serving.transport._deadline import Deadline

__all__ = ["aheaders_within", "auth_method", "headers_within"]

Headers = dict[str, str]


def auth_method(credentials: Any = None) -> str:
    """A short description of the auth method that is (or will be) tried."""
    config = getattr(credentials, "_config", None)
    kind = getattr(config, "auth_type", None) if config is not None else None
    if kind:
        return f"databricks-sdk auth {kind!r}"
    if os.environ.get("DATABRICKS_AUTH_TYPE"):
        return f"databricks-sdk auth {os.environ['DATABRICKS_AUTH_TYPE']!r} (DATABRICKS_AUTH_TYPE)"
    if os.environ.get("DATABRICKS_CLIENT_ID"):
        return "databricks-sdk auth 'oauth-m2m' (DATABRICKS_CLIENT_ID)"
    if os.environ.get("ARM_CLIENT_ID"):
        return "databricks-sdk auth 'azure-client-secret' (ARM_CLIENT_ID)"
    if os.environ.get("DATABRICKS_CONFIG_PROFILE"):
        profile = os.environ["DATABRICKS_CONFIG_PROFILE"]
        return f"databricks-sdk profile {profile!r} (DATABRICKS_CONFIG_PROFILE)"
    return "databricks-sdk default auth (no token given: profiles, OAuth, Azure, CLI)"


def _timeout(deadline: Deadline, host: str, method: str) -> ServingTimeoutError:
    return ServingTimeoutError(
        f"could not get credentials for {host} with {method} within timeout="
        f"{deadline.seconds:g}s (gave up after {deadline.elapsed():.1f}s) — check that the host "
        "is reachable and the auth settings are right, or pass token="
    )


def _named(error: ConfigurationError, host: str, method: str) -> ConfigurationError:
    if host not in error.message:
        error.message = f"{error.message} (host {host}, {method})"
        error.args = (error.message,)
    return error


def _start(fn: Callable[[], Headers], done: Callable[[Any, BaseException | None], None]) -> None:
    def run() -> None:
        try:
            value = fn()
        except BaseException as exc:
            done(None, exc)
        else:
            done(value, None)

    threading.Thread(target=run, name="langchain-dbx-serving-credentials", daemon=True).start()


def headers_within(
    fn: Callable[[], Headers],
    deadline: Deadline,
    *,
    host: str,
    fast: bool,
    describe: Callable[[], str] = auth_method,
) -> Headers:
    """``fn()`` (the credentials' headers), within ``deadline``; ``fast`` runs it inline."""
    if fast or deadline.remaining() is None:
        return fn()
    box: dict[str, Any] = {}
    finished = threading.Event()

    def done(value: Any, error: BaseException | None) -> None:
        box["value"], box["error"] = value, error
        finished.set()

    _start(fn, done)
    if not finished.wait(max(deadline.remaining() or 0.0, 0.001)):
        raise _timeout(deadline, host, describe())
    if box["error"] is not None:
        error = box["error"]
        if isinstance(error, ConfigurationError):
            raise _named(error, host, describe()) from None
        raise error
    return box["value"]


async def aheaders_within(
    fn: Callable[[], Headers],
    deadline: Deadline,
    *,
    host: str,
    fast: bool,
    describe: Callable[[], str] = auth_method,
) -> Headers:
    """Async :func:`headers_within`: the event loop keeps running while credentials resolve."""
    if fast:
        return fn()
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Headers] = loop.create_future()

    def settle(value: Any, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)

    def done(value: Any, error: BaseException | None) -> None:
        # The loop may have closed while credentials were resolving.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, value, error)

    _start(fn, done)
    left = deadline.remaining()
    try:
        return await asyncio.wait_for(future, None if left is None else max(left, 0.001))
    except TimeoutError:
        raise _timeout(deadline, host, describe()) from None
    except ConfigurationError as error:
        raise _named(error, host, describe()) from None
