"""databricks-ai-bridge's real ``LongRunningAgentServer`` over a local PostgreSQL, for tests.

The server's database layer opens Lakebase (a Databricks workspace mints the credentials); here
``init_db`` alone is replaced by one that opens ``$LONG_RUNNING_TEST_DSN`` (a PostgreSQL that
``tests.support.postgres`` started on loopback) and creates the server's own tables from its own
models. Everything else (routes, background tasks, heartbeats, the claim CAS, cursor
retrieval, crash resume, the ``/_debug/kill_task`` route) is the server's code.

The agent streams ``WORDS`` (one ``response.output_text.delta`` per word, then the done item);
input containing ``slow`` waits ``SLOW_DELAY`` seconds between words; ``explode`` raises; on a
resumed attempt (the input ends with the server's ``[RECOVERY]`` message) it answers
``RECOVERED``.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

WORDS = [f"w{i} " for i in range(19)]  # 19 deltas + the done item: a 20-event run
RECOVERED = "recovered"
SLOW_DELAY = 0.15
MESSAGE_ID = "msg_lr"
DSN_VARIABLE = "LONG_RUNNING_TEST_DSN"


def _last_user_text(request: Any) -> str:
    for item in reversed([i.model_dump(exclude_none=True) for i in request.input]):
        if item.get("role") == "user":
            content = item.get("content")
            if isinstance(content, str):
                return content
            return "".join(p.get("text", "") for p in content or [])
    return ""


def _words(request: Any) -> list[str]:
    said = _last_user_text(request)
    if said.startswith("[RECOVERY]"):
        return [RECOVERED]
    if "explode" in said:
        raise RuntimeError("agent exploded on purpose")
    return WORDS


def build_app() -> Any:
    """The server's FastAPI app, its database on ``$LONG_RUNNING_TEST_DSN``, its agent
    registered with MLflow's ``@stream()`` / ``@invoke()`` (once per process: MLflow allows
    one of each, so this runs only in the server's process)."""
    from databricks_ai_bridge.long_running import db
    from databricks_ai_bridge.long_running import server as long_running_server
    from databricks_ai_bridge.long_running.models import AGENT_DB_SCHEMA, Base
    from mlflow.genai.agent_server import invoke, stream
    from mlflow.pyfunc import ResponsesAgent
    from mlflow.types.responses import (
        ResponsesAgentRequest,
        ResponsesAgentResponse,
        ResponsesAgentStreamEvent,
    )
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

    async def init_local_db(**_: Any) -> None:
        if db._initialized:
            return
        engine = create_async_engine(os.environ[DSN_VARIABLE], pool_size=10)
        async with engine.begin() as conn:
            await conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {AGENT_DB_SCHEMA}"))
            await conn.run_sync(Base.metadata.create_all)
        db._engine = engine
        db._session_factory = async_sessionmaker(
            engine, class_=AsyncSession, expire_on_commit=False, autoflush=False
        )
        db._initialized = True

    long_running_server.init_db = init_local_db
    os.environ.setdefault("LAKEBASE_INSTANCE_NAME", "local-postgres")  # is_db_configured()
    server = long_running_server.LongRunningAgentServer(
        "ResponsesAgent",
        poll_interval_seconds=0.05,
        heartbeat_interval_seconds=0.2,
        heartbeat_stale_threshold_seconds=0.8,
        db_statement_timeout_ms=2000,
        cleanup_timeout_seconds=3.0,
    )

    @stream()
    async def agent_stream(
        request: ResponsesAgentRequest,
    ) -> AsyncIterator[ResponsesAgentStreamEvent]:
        words = _words(request)
        slow = "slow" in _last_user_text(request)
        for word in words:
            if slow:
                await asyncio.sleep(SLOW_DELAY)
            yield ResponsesAgentStreamEvent(
                type="response.output_text.delta", item_id=MESSAGE_ID, delta=word
            )
        item = ResponsesAgent.create_text_output_item("".join(words), MESSAGE_ID)
        yield ResponsesAgentStreamEvent(type="response.output_item.done", item=item)

    @invoke()
    async def agent_invoke(request: ResponsesAgentRequest) -> ResponsesAgentResponse:
        words = _words(request)
        if "slow" in _last_user_text(request):
            await asyncio.sleep(SLOW_DELAY * len(words))
        item = ResponsesAgent.create_text_output_item("".join(words), MESSAGE_ID)
        return ResponsesAgentResponse(output=[item])

    return server.app


def __getattr__(name: str) -> Any:
    """``app`` is built on first access (uvicorn's ``module:app``), never on import, so that
    pytest's doctest collection can import this module next to ``agent_app``."""
    if name == "app":
        app = build_app()
        globals()["app"] = app
        return app
    raise AttributeError(name)
