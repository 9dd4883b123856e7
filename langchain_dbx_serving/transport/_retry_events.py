"""Retries made observable: a LangChain custom event and a structured log record per retry.

Each retry dispatches the custom event ``databricks_retry`` on the call's run (visible to
callback handlers' ``on_custom_event`` and in ``astream_events`` as ``on_custom_event``), and
logs one DEBUG record on the ``langchain_dbx_serving`` logger whose ``databricks_retry``
attribute holds the same dict, so retries can be counted without parsing log text::

    {"endpoint": "chat", "attempt": 1, "max_retries": 3, "wait": 0.31, "status": 429,
     "error": "RateLimitError"}

``attempt`` counts retries (1 for the first re-send); ``status`` is ``None`` for a connection
that failed before any reply.
"""

from __future__ import annotations

import logging
from typing import Any

from langchain_core.callbacks import adispatch_custom_event, dispatch_custom_event

from langchain_dbx_serving.errors import DatabricksServingError

__all__ = ["RETRY_EVENT", "aemit", "emit", "retry_data"]

RETRY_EVENT = "databricks_retry"
logger = logging.getLogger("langchain_dbx_serving")


def retry_data(
    error: DatabricksServingError, delay: float, attempt: int, max_retries: int
) -> dict[str, Any]:
    return {
        "endpoint": error.endpoint,
        "attempt": attempt + 1,
        "max_retries": max_retries,
        "wait": round(delay, 3),
        "status": error.status_code,
        "error": type(error).__name__,
    }


def _config(info: Any, endpoint: str | None) -> dict[str, Any] | None:
    from langchain_dbx_serving.tracing import _runs
    from langchain_dbx_serving.tracing._surface import TraceSurfacer

    run = getattr(info, "run", None) or _runs.run_of(None)
    if run is None:
        return None
    return TraceSurfacer(endpoint or "", run, merge=False)._config()


def log(error: DatabricksServingError, data: dict[str, Any]) -> None:
    logger.debug(
        "%s; retrying in %.2fs (retry %d of %d)",
        error.message,
        data["wait"],
        data["attempt"],
        data["max_retries"],
        extra={"databricks_retry": data},
    )


def emit(data: dict[str, Any], info: Any) -> None:
    config = _config(info, data["endpoint"])
    if config is not None:
        dispatch_custom_event(RETRY_EVENT, data, config=config)  # type: ignore[arg-type]


async def aemit(data: dict[str, Any], info: Any) -> None:
    config = _config(info, data["endpoint"])
    if config is not None:
        await adispatch_custom_event(RETRY_EVENT, data, config=config)  # type: ignore[arg-type]
