"""``model.check()``: host, credentials and the endpoint's existence in one cheap request.

It asks the serving-endpoints GET API (``GET {host}/api/2.0/serving-endpoints/{name}``), which
runs no model, within the model's ``timeout``. A ``base_url`` that is not a workspace (an App,
an MLflow AgentServer) has no such API: its ``/health`` is asked instead. Failures are the same
typed errors a call would raise (``ServingConnectionError``, ``AuthenticationError``,
``EndpointNotFoundError``, ``ServingTimeoutError``, ``ConfigurationError``).

Example:
    .. code-block:: python

        report = ChatDatabricksServing(endpoint="databricks-claude-sonnet-4").check()
        print(report)  # endpoint 'databricks-claude-sonnet-4' on https://...: READY (312 ms)
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

__all__ = ["CheckReport", "acheck", "check"]

_SERVING = "/serving-endpoints"


@dataclass(frozen=True)
class CheckReport:
    """What ``check()`` found: the endpoint answered and its state."""

    endpoint: str | None
    url: str
    state: str
    ready: bool
    seconds: float

    def __str__(self) -> str:
        who = f"endpoint {self.endpoint!r}" if self.endpoint else "the server"
        return f"{who} at {self.url}: {self.state} ({self.seconds * 1000:.0f} ms)"


def _url(model: Any) -> tuple[str, bool]:
    root = model._root_url()
    endpoint = getattr(model, "endpoint", None)
    if root.endswith(_SERVING) and endpoint:
        api = root[: -len(_SERVING)] + "/api/2.0/serving-endpoints/" + quote(endpoint, safe="")
        return api, True
    return root + "/health", False


def _report(model: Any, url: str, api: bool, reply: Any, start: float) -> CheckReport:
    state = reply.get("state") if isinstance(reply, dict) else None
    if api and isinstance(state, dict):
        ready = state.get("ready") == "READY"
        text = str(state.get("ready") or "unknown state")
        if state.get("config_update") not in (None, "NOT_UPDATING"):
            text += f", config update {state['config_update']}"
    else:
        ready, text = True, "reachable"
    endpoint = getattr(model, "endpoint", None)
    return CheckReport(endpoint, url, text, ready, time.monotonic() - start)


def check(model: Any) -> CheckReport:
    """Validate host, credentials and endpoint of ``model`` (see the module docstring)."""
    start = time.monotonic()
    url, api = _url(model)
    reply = model.transport.get_json(url, endpoint=getattr(model, "endpoint", None))
    return _report(model, url, api, reply, start)


async def acheck(model: Any) -> CheckReport:
    """Async :func:`check`."""
    start = time.monotonic()
    url, api = _url(model)
    reply = await model.transport.aget_json(url, endpoint=getattr(model, "endpoint", None))
    return _report(model, url, api, reply, start)
