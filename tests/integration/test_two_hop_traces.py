"""One trace for a two-agent run: caller -> first agent -> second agent, on real AgentServers.

The first agent (``tests.support.first_agent_app``) is a ``ResponsesAgent`` on MLflow's
``AgentServer`` that calls the second (``tests.support.second_agent_app``, another
AgentServer) through ``ChatDatabricksResponses``. Both are traced like Databricks endpoints
(``tests.support.serving_tracing``): they honour ``traceparent`` as MLflow documents, and
return their whole trace when asked and no ``traceparent`` was honoured. The caller and both
servers trace to one SQLite store.

- propagation on: each hop sends ``traceparent``; every process writes its own spans to the
  shared store, and the caller's trace read back from it holds all of them;
- propagation off: each hop returns its trace and the hop above copy-merges it.

Both give the same tree.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import pytest

from langchain_dbx_serving import ChatDatabricksResponses, Trace
from tests.support import mlflow_process
from tests.support.agentserver import start_agent_server
from tests.support.calls import ask

QUESTION = "order 42"
ANSWER = "Found: result for lookup order 42"
FIRST_APP = "tests.support.first_agent_app:app"
SECOND_APP = "tests.support.second_agent_app:app"


@pytest.fixture(scope="module")
def agents(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Both agents on AgentServers tracing to one SQLite store; the first agent twice, with
    propagation on and off: ``{"uri", "root", True: first url, False: first url}``."""
    pytest.importorskip("mlflow")
    pytest.importorskip("sqlalchemy")
    root = tmp_path_factory.mktemp("two-hop")
    uri = mlflow_process.sqlite_uri(root / "shared.db")
    # Created by a child in root, so the store's artifact root is there too.
    mlflow_process.make_trace(uri, root)
    env = mlflow_process.store_env(uri)
    with ExitStack() as stack:
        second = stack.enter_context(
            start_agent_server(SECOND_APP, tracking_dir=root / "second", env=env)
        )
        found: dict[Any, Any] = {"uri": uri, "root": root}
        for propagate in (True, False):
            first_env = env | {
                "SECOND_AGENT_URL": second.url,
                "PROPAGATE_TRACE_CONTEXT": "1" if propagate else "0",
            }
            first = stack.enter_context(
                start_agent_server(
                    FIRST_APP, tracking_dir=root / f"first-{propagate}", env=first_env
                )
            )
            found[propagate] = first.url
        yield found


@pytest.fixture
def shared_store(agents: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The mlflow module, tracing in this process to the store the agents share."""
    import mlflow

    monkeypatch.chdir(agents["root"])
    for name, value in mlflow_process.store_env(agents["uri"]).items():
        monkeypatch.setenv(name, value)
    mlflow.tracing.reset()
    yield mlflow
    mlflow.tracing.reset()


def expected_tree(first_entry: str) -> list[tuple[int, str, str]]:
    return [
        (0, "caller", "UNKNOWN"),
        (1, "first-agent", "AGENT"),
        (2, first_entry, "UNKNOWN"),
        (3, "delegate", "CHAIN"),
        (4, "second-agent", "AGENT"),
        (5, "invoke_turn", "UNKNOWN"),
        (6, "plan", "CHAIN"),
        (7, "lookup", "TOOL"),
        (6, "respond", "LLM"),
    ]


async def two_hop(mlflow: Any, agents: dict[str, Any], *, propagate: bool, mode: str) -> Any:
    """Ask the first agent inside a ``caller`` span; returns (that span, the answer)."""
    llm = ChatDatabricksResponses(
        endpoint="first-agent",
        base_url=agents[propagate],
        token="unused-local-token",
        return_trace=True,
        propagate_trace_context=propagate,
    )
    with mlflow.start_span("caller") as caller:
        answer = await ask(llm, QUESTION, mode)
    return caller, answer


def read_back(mlflow: Any, caller: Any) -> Trace:
    stored = mlflow.get_trace(caller.trace_id)
    assert stored is not None, "the caller's trace cannot be read back from the shared store"
    assert {span.trace_id for span in stored.data.spans} == {caller.trace_id}
    return Trace.from_dict(stored.to_dict())


def tree(trace: Trace) -> list[tuple[int, str, str]]:
    return [(depth, span.name, span.span_type) for depth, span in trace.walk()]


@pytest.mark.parametrize("mode", ["invoke", "astream"])
async def test_traceparent_makes_one_trace_across_both_agents(
    agents: dict[str, Any], shared_store: Any, mode: str
) -> None:
    mlflow = shared_store
    caller, answer = await two_hop(mlflow, agents, propagate=True, mode=mode)
    assert answer.text == ANSWER
    # The first agent joined our trace: it returned our trace id, and nothing was merged.
    assert answer.response_metadata["trace_id"] == caller.trace_id
    trace = read_back(mlflow, caller)
    entry = "invoke_turn" if mode == "invoke" else "stream_turn"
    assert tree(trace) == expected_tree(entry)
    assert not [s for s in trace.spans if "databricks.remote.trace_id" in s.attributes]


@pytest.mark.parametrize("mode", ["invoke", "astream"])
async def test_copy_merge_without_propagation_gives_the_same_tree(
    agents: dict[str, Any], shared_store: Any, mode: str
) -> None:
    mlflow = shared_store
    caller, answer = await two_hop(mlflow, agents, propagate=False, mode=mode)
    assert answer.text == ANSWER
    returned = answer.response_metadata["trace"]
    assert returned["info"]["trace_id"] != caller.trace_id  # the first agent's own trace
    trace = read_back(mlflow, caller)
    assert tree(trace) == expected_tree("invoke_turn" if mode == "invoke" else "stream_turn")
    merged_roots = [s.name for s in trace.spans if "databricks.remote.trace_id" in s.attributes]
    assert merged_roots == ["first-agent", "second-agent"]
