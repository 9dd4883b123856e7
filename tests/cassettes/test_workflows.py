"""The committed cassettes in ``cassettes/workflows/`` replay through the plugin's fixtures.

Run as a user runs them: ``dbx_serving`` replays (no ``DATABRICKS_HOST``, record mode ``none``).
They also pin what we send: if request encoding changes, the body matcher fails with a diff.
Re-record (see ``cassettes/README.md``)::

    python -m langchain_dbx_serving.testing.record cassettes/backends.py \
        -- tests/cassettes/test_workflows.py
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from langchain_dbx_serving.testing.plugin import ServingTarget
from tests.cassettes.workflows import ROOT, WORKFLOWS, Workflow


@pytest.fixture(scope="module")
def vcr_cassette_dir() -> str:
    return str(ROOT / "cassettes" / "workflows")


@pytest.fixture
def default_cassette_name(request: pytest.FixtureRequest) -> str:
    flavour = "async" if "async" in request.node.originalname else "sync"
    return f"{request.node.callspec.params['workflow'].name}-{flavour}"


def _streaming_chat(result: dict[str, Any]) -> None:
    assert result["pieces"] == ["About ", "299,792 ", "km ", "per ", "second."]
    assert result["usage_metadata"] == {"input_tokens": 6, "output_tokens": 5, "total_tokens": 11}
    assert result["response_metadata"]["finish_reason"] == "stop"


def _streaming_responses(result: dict[str, Any]) -> None:
    assert "".join(result["pieces"]) == "Order 42 is packed and ships tomorrow."
    call, output = result["content"][:2]
    assert (call["type"], call["name"], call["args"]) == (
        "server_tool_call",
        "lookup_order",
        {"order_id": "42"},
    )
    assert output["output"] == '{"status": "packed"}'
    assert result["response_metadata"]["custom_outputs"] == {"order_id": "42", "team": "support"}
    assert result["usage_metadata"]["total_tokens"] == 51


def _tool_loop(result: dict[str, Any]) -> None:
    assert result["turns"] == ["human", "ai", "tool", "ai"]
    assert result["answer"] == "It is 18C and sunny in Paris right now."


def _multi_step_chain(result: dict[str, Any]) -> None:
    assert result["answers"] == [
        "Jupiter is the largest planet! Isn't that amazing?",
        "Paris is the capital of France! Isn't that amazing?",
    ]


CHECKS: dict[str, Callable[[dict[str, Any]], None]] = {
    "streaming_chat": _streaming_chat,
    "streaming_responses": _streaming_responses,
    "tool_loop": _tool_loop,
    "multi_step_chain": _multi_step_chain,
}


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda w: w.name)
def test_workflow_sync(workflow: Workflow, dbx_serving: ServingTarget) -> None:
    CHECKS[workflow.name](workflow.run(dbx_serving))
    if not dbx_serving.live:
        assert dbx_serving.cassette.all_played


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda w: w.name)
async def test_workflow_async(workflow: Workflow, dbx_serving: ServingTarget) -> None:
    CHECKS[workflow.name](await workflow.arun(dbx_serving))
    if not dbx_serving.live:
        assert dbx_serving.cassette.all_played
