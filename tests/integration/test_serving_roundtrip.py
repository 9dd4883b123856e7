"""Round trip: a graph served by ``as_responses_agent`` under MLflow's real AgentServer.

Each graph of ``tests.support.graphs`` runs in an AgentServer subprocess on loopback; it is
called with ``ChatDatabricksResponses`` and ``AgentEndpoint``, whole and streamed, and what
comes back must equal what the same graph produces in this process: answer text, the graph's
own tool calls with their outputs, reasoning, ``custom_outputs``, usage, and for a graph that
fails mid-stream the error and the text streamed before it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.callbacks import get_usage_metadata_callback
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage

from langchain_dbx_serving import AgentEndpoint, AgentError, ChatDatabricksResponses, ServerError
from tests.support.agentserver import AgentServerProcess, start_agent_server
from tests.support.calls import aggregate
from tests.support.graphs import ERROR_MESSAGE, GRAPHS, PARTIAL

APP = "tests.support.graph_app:app"
PROMPTS = {
    "chat": "please think about tea",
    "react": "What is the weather in Paris?",
    "supervisor": "green tea",
    "custom": "hello custom graph",
}
CUSTOM_INPUTS = {"tier": "gold", "n": 2}
CLIENTS = ["chat_model", "agent_endpoint"]
MODES = ["invoke", "stream"]


# ---- what the graph produces in process --------------------------------------------------


def _summary(
    text: str,
    calls: list[tuple[str, dict[str, Any], Any]],
    reasoning: list[str],
    custom_outputs: Any,
    usage: Any,
) -> dict[str, Any]:
    keys = ("input_tokens", "output_tokens", "total_tokens")
    return {
        "text": text,
        "tool_calls": calls,
        "reasoning": reasoning,
        "custom_outputs": custom_outputs,
        "usage": {k: usage[k] for k in keys} if usage else None,
    }


def in_process(name: str, prompt: str) -> dict[str, Any]:
    runnable = GRAPHS[name]()
    question = HumanMessage(prompt)
    # Usage is what every model call of the run cost (the supervisor's sub-agents included).
    with get_usage_metadata_callback() as counted:
        if name == "chat":
            new: list[BaseMessage] = [runnable.invoke([question])]
            custom = None
        else:
            state = runnable.invoke({"messages": [question], "custom_inputs": CUSTOM_INPUTS})
            new, custom = state["messages"][1:], state.get("custom_outputs")
    ai = [m for m in new if isinstance(m, AIMessage)]
    outputs = {m.tool_call_id: m.content for m in new if isinstance(m, ToolMessage)}
    calls = [(c["name"], c["args"], outputs.get(c["id"])) for m in ai for c in m.tool_calls]
    reasoning = [
        b["reasoning"]
        for m in ai
        if isinstance(m.content, list)
        for b in m.content
        if isinstance(b, dict) and b.get("type") == "reasoning"
    ]
    usage = {
        key: sum(u[key] for u in counted.usage_metadata.values())
        for key in ("input_tokens", "output_tokens", "total_tokens")
    }
    return _summary("".join(m.text for m in ai), calls, reasoning, custom, usage)


# ---- what a client gets back -------------------------------------------------------------


def _blocks(message: AIMessage, kind: str) -> list[dict[str, Any]]:
    content = message.content if isinstance(message.content, list) else []
    return [b for b in content if isinstance(b, dict) and b.get("type") == kind]


def from_message(message: AIMessage) -> dict[str, Any]:
    results = {b["tool_call_id"]: b.get("output") for b in _blocks(message, "server_tool_result")}
    calls = [
        (b["name"], b["args"], results.get(b["id"])) for b in _blocks(message, "server_tool_call")
    ]
    reasoning = [b["reasoning"] for b in _blocks(message, "reasoning")]
    return _summary(
        message.text,
        calls,
        reasoning,
        message.response_metadata.get("custom_outputs"),
        message.usage_metadata,
    )


def call(server: AgentServerProcess, client: str, mode: str, prompt: str, **kw: Any) -> Any:
    settings: dict[str, Any] = {"base_url": server.url, "token": "unused-local-token", **kw}
    if client == "chat_model":
        model = ChatDatabricksResponses(endpoint="graph", **settings)
        if mode == "invoke":
            return from_message(model.invoke(prompt))
        return from_message(aggregate(list(model.stream(prompt))))
    agent = AgentEndpoint("graph", **settings)
    reply = agent.invoke(prompt) if mode == "invoke" else list(agent.stream(prompt))[-1].response
    assert reply is not None
    assert reply.text == reply.to_message().text
    return from_message(reply.to_message())


@pytest.fixture(scope="module", params=sorted(PROMPTS))
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    name = request.param
    tracking = tmp_path_factory.mktemp(f"graph-{name}") / "mlruns"
    with start_agent_server(APP, tracking_dir=tracking, env={"SERVED_GRAPH": name}) as server:
        yield name, server


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("client", CLIENTS)
def test_served_graph_answers_as_it_does_in_process(served, client: str, mode: str) -> None:
    name, server = served
    prompt = PROMPTS[name]
    expected = in_process(name, prompt)
    kwargs = {"custom_inputs": CUSTOM_INPUTS} if name == "custom" else {}
    assert call(server, client, mode, prompt, **kwargs) == expected
    # Each graph exercises what it is for (so the equality above is not vacuous).
    if name == "react":
        assert expected["tool_calls"] == [
            ("get_weather", {"city": "Paris"}, "18 C and sunny in Paris")
        ]
    if name == "supervisor":
        assert [c[0] for c in expected["tool_calls"]] == ["research", "write"]
        # Three supervisor model calls and one per sub-agent, each at least one token out.
        assert expected["usage"]["output_tokens"] > sum(
            len(c[2].split()) for c in expected["tool_calls"]
        )
        assert expected["text"].endswith("Final: Written: Facts about green tea: it is well known.")
    if name == "chat":
        assert expected["reasoning"] == ["Thinking about: please think about tea"]
    if name == "custom":
        assert expected["custom_outputs"] == {"seen_inputs": CUSTOM_INPUTS, "words": 5}
    assert expected["usage"]["total_tokens"] > 0


@pytest.fixture(scope="module")
def exploding(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentServerProcess]:
    tracking = tmp_path_factory.mktemp("graph-explode") / "mlruns"
    with start_agent_server(APP, tracking_dir=tracking, env={"SERVED_GRAPH": "explode"}) as s:
        yield s


def test_graph_raising_mid_stream_in_process() -> None:
    received = []
    with pytest.raises(RuntimeError, match=ERROR_MESSAGE):
        for message, _meta in GRAPHS["explode"]().stream(
            {"messages": [HumanMessage("explode now")]}, stream_mode="messages"
        ):
            received.append(message.text)
    assert "".join(received) == "".join(PARTIAL)


@pytest.mark.parametrize("client", CLIENTS)
def test_graph_raising_mid_stream_streams_the_text_then_the_error(exploding, client) -> None:
    received: list[str] = []
    settings = {"base_url": exploding.url, "token": "unused-local-token"}
    with pytest.raises(AgentError) as info:
        if client == "chat_model":
            for chunk in ChatDatabricksResponses(endpoint="graph", **settings).stream("explode"):
                received.append(chunk.text)
        else:
            for event in AgentEndpoint("graph", **settings).stream("explode"):
                received.append(event.delta or "" if event.type == "text_delta" else "")
    assert ERROR_MESSAGE in str(info.value)
    assert "".join(received) == "".join(PARTIAL)


@pytest.mark.parametrize("client", CLIENTS)
def test_graph_raising_on_invoke_is_a_server_error_with_the_message(exploding, client) -> None:
    settings = {"base_url": exploding.url, "token": "unused-local-token"}
    runnable = (
        ChatDatabricksResponses(endpoint="graph", **settings)
        if client == "chat_model"
        else AgentEndpoint("graph", **settings)
    )
    with pytest.raises(ServerError) as info:
        runnable.invoke("explode")
    assert info.value.status_code == 500
    assert ERROR_MESSAGE in str(info.value)


def test_the_trace_id_names_a_trace_with_the_graphs_spans(
    served, monkeypatch: pytest.MonkeyPatch
) -> None:
    name, server = served
    agent = AgentEndpoint("graph", base_url=server.url, token="t", return_trace=True)
    reply = agent.invoke(PROMPTS[name])
    assert reply.trace_id and reply.trace_id.startswith("tr-")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=server.tracking_dir.resolve().as_uri())
    names = [span.name for span in client.get_trace(reply.trace_id).data.spans]
    # The AgentServer's span first, then the graph's own runs: every graph calls its model.
    assert names[0] == "handle"
    assert "RuleModel" in names, names
    if name == "react":
        assert {"model", "tools", "get_weather"} <= set(names), names
    if name == "supervisor":  # the sub-agents run inside the tools, traced there too
        assert {"research", "write", "research_agent", "write_agent"} <= set(names), names
