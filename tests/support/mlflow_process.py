"""Traces made (or read back) by real MLflow in a separate Python process, for merge tests.

The test process's own MLflow state is never touched: each helper runs
``python -m tests.support.mlflow_process ...`` with the tracking URI of the store it is given
(a file store or SQLite, PROTOCOLS.md section 8) and returns what the child printed.

- :func:`make_trace` records an agent call (AGENT root, CHAT_MODEL with token usage, a TOOL
  under it) and returns its ``Trace.to_dict()`` as read back from that store, so the tags the
  store adds (``mlflow.artifactLocation``, ``mlflow.trace.spansLocation``) are there.
- :func:`read_trace` returns ``Trace.to_dict()`` of a trace someone else stored (an
  AgentServer's), or ``None`` when the store has no readable trace of that id.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

_REPO_ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 120.0


def store_env(uri: str) -> dict[str, str]:
    """The variables that make MLflow trace synchronously to the store at ``uri``."""
    env = {"MLFLOW_TRACKING_URI": uri, "MLFLOW_ENABLE_ASYNC_TRACE_LOGGING": "false"}
    if uri.startswith("file:"):
        env["MLFLOW_ALLOW_FILE_STORE"] = "true"
    return env


def sqlite_uri(path: Path) -> str:
    return f"sqlite:///{path.resolve()}"


def _run(args: list[str], uri: str, cwd: Path) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABRICKS_", "MLFLOW_"))}
    python_path = [str(_REPO_ROOT), *filter(None, [env.get("PYTHONPATH")])]
    env |= {"PYTHONPATH": os.pathsep.join(python_path)} | store_env(uri)
    cwd.mkdir(parents=True, exist_ok=True)  # MLflow puts a SQL store's artifacts in ./mlruns
    done = subprocess.run(
        [sys.executable, "-m", __name__, *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"MLflow child failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return done.stdout.strip().splitlines()[-1]


def make_trace(uri: str, cwd: Path) -> dict[str, Any]:
    """``Trace.to_dict()`` of an agent call traced by MLflow into the store at ``uri``."""
    return json.loads(_run(["make"], uri, cwd))


def read_trace(uri: str, trace_id: str, cwd: Path) -> dict[str, Any] | None:
    """``Trace.to_dict()`` of ``trace_id`` read from the store at ``uri`` (``None``: unreadable)."""
    return json.loads(_run(["read", trace_id], uri, cwd))


# -- child side ---------------------------------------------------------------------------------
def _make() -> dict[str, Any]:
    import mlflow

    @mlflow.trace(name="lookup_order", span_type="TOOL")
    def lookup_order(order_id: int) -> str:
        return "shipped"

    @mlflow.trace(name="support-agent", span_type="AGENT")
    def agent(question: str) -> str:
        with mlflow.start_span("chat_model", span_type="CHAT_MODEL") as span:
            span.set_inputs({"messages": [{"role": "user", "content": question}]})
            usage = {"input_tokens": 12, "output_tokens": 5, "total_tokens": 17}
            span.set_attribute("mlflow.chat.tokenUsage", usage)
            lookup_order(42)
            span.set_outputs("It shipped.")
        return "It shipped."

    agent("where is order 42?")
    trace = mlflow.get_trace(mlflow.get_last_active_trace_id())
    assert trace is not None, "MLflow did not record the trace"
    return trace.to_dict()


def _read(trace_id: str) -> dict[str, Any] | None:
    import mlflow

    trace = mlflow.get_trace(trace_id)
    return trace.to_dict() if trace is not None else None


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Make or read an MLflow trace; print its JSON.")
    parser.add_argument("action", choices=["make", "read"])
    parser.add_argument("trace_id", nargs="?")
    arguments = parser.parse_args()
    result = _make() if arguments.action == "make" else _read(arguments.trace_id)
    print(json.dumps(result))
