"""Sub-agents as tools: ``AgentEndpoint.as_tool`` and ``ChatDatabricksResponses.as_tool``.

The sub-agents are LangGraph graphs served by ``LocalEndpoint`` (through
``as_responses_agent``); the tools are used directly, from ``astream_events``, from LangGraph's
``ToolNode`` and from a ``langchain.agents.create_agent`` supervisor.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.callbacks import get_usage_metadata_callback
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from langchain_dbx_serving import AgentEndpoint, AgentResponse, ChatDatabricksResponses
from langchain_dbx_serving.agent_tool import ITEM_EVENT, TEXT_EVENT, AgentTool
from langchain_dbx_serving.testing import LocalEndpoint
from tests.support.graphs import GRAPHS, RuleModel, sub_agent


@pytest.fixture(autouse=True)
def mlflow_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The served agents are MLflow ResponsesAgents, whose methods MLflow traces."""
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "mlruns").as_uri())
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.setenv("MLFLOW_ENABLE_ASYNC_TRACE_LOGGING", "false")
    mlflow.tracing.reset()
    yield
    mlflow.tracing.reset()


@pytest.fixture
def ep() -> Iterator[LocalEndpoint]:
    agents = {
        "weather-agent": GRAPHS["react"](),
        "custom-agent": GRAPHS["custom"](),
        "research": sub_agent("research"),
        "write": sub_agent("write"),
    }
    with LocalEndpoint(agents, token=None) as endpoint:
        yield endpoint


def _tool_call(name: str, request: str, call_id: str = "c1") -> dict[str, Any]:
    return {"type": "tool_call", "id": call_id, "name": name, "args": {"request": request}}


def test_content_is_the_answer_and_the_artifact_the_whole_reply(ep: LocalEndpoint) -> None:
    tool = AgentEndpoint("weather-agent", host=ep.host, token="t").as_tool(
        name="weather", description="Knows the weather."
    )
    assert isinstance(tool, AgentTool)
    assert tool.tool_call_schema.model_json_schema()["required"] == ["request"]
    message = tool.invoke(_tool_call("weather", "weather in Oslo"))
    assert isinstance(message, ToolMessage)
    assert message.content == "The weather: 18 C and sunny in Oslo."
    reply = message.artifact
    assert isinstance(reply, AgentResponse)
    assert [(c.name, c.args, c.output) for c in reply.tool_calls] == [
        ("get_weather", {"city": "Oslo"}, "18 C and sunny in Oslo")
    ]
    assert reply.usage and reply.usage["total_tokens"] > 0
    assert [item["type"] for item in reply.output] == [
        "function_call",
        "function_call_output",
        "message",
    ]


async def test_context_and_chosen_custom_inputs_are_passed_on(ep: LocalEndpoint) -> None:
    tool = AgentEndpoint("custom-agent", host=ep.host, token="t").as_tool(
        name="custom", custom_inputs={"team": "support"}, forward_custom_inputs=["tier"]
    )
    config = {
        "configurable": {
            "thread_id": "thread-9",
            "user_id": "ana",
            "custom_inputs": {"tier": "gold", "secret_flag": True},
        }
    }
    message = await tool.ainvoke(_tool_call("custom", "hello"), config)
    body = ep.last_request.body
    assert body["context"] == {"conversation_id": "thread-9", "user_id": "ana"}
    assert body["custom_inputs"] == {"team": "support", "tier": "gold"}
    assert message.artifact.custom_outputs == {
        "seen_inputs": {"team": "support", "tier": "gold"},
        "words": 3,
    }


@pytest.mark.parametrize("way", ["sync", "async"])
async def test_progress_streams_as_custom_events(ep: LocalEndpoint, way: str) -> None:
    tool = AgentEndpoint("weather-agent", host=ep.host, token="t").as_tool(name="weather")
    call = _tool_call("weather", "weather in Rome")
    if way == "async":
        events = [e async for e in tool.astream_events(call, version="v2")]
    else:
        # A sync tool inside an async stream: run_in_executor keeps the callbacks.
        from langchain_core.runnables import RunnableLambda

        wrapper = RunnableLambda(lambda c, config: tool.invoke(c, config))
        events = [e async for e in wrapper.astream_events(call, version="v2")]
    custom = [e for e in events if e["event"] == "on_custom_event"]
    text = "".join(e["data"]["delta"] for e in custom if e["name"] == TEXT_EVENT)
    assert text == "The weather: 18 C and sunny in Rome."
    items = [e["data"]["item"]["type"] for e in custom if e["name"] == ITEM_EVENT]
    assert items == ["function_call", "function_call_output", "message"]
    assert {e["data"]["tool"] for e in custom} == {"weather"}
    assert {e["data"]["endpoint"] for e in custom} == {"weather-agent"}


def test_chat_model_as_tool_is_the_same_tool(ep: LocalEndpoint) -> None:
    chat = ChatDatabricksResponses(endpoint="weather-agent", host=ep.host, token="t")
    tool = chat.as_tool(name="weather", description="Knows the weather.")
    assert isinstance(tool, AgentTool) and tool.agent.chat is chat
    message = tool.invoke(_tool_call("weather", "weather in Lima"))
    assert message.content == "The weather: 18 C and sunny in Lima."
    assert message.artifact.tool_calls[0].output == "18 C and sunny in Lima"


def test_tool_node_runs_it(ep: LocalEndpoint) -> None:
    from langgraph.graph import END, START, MessagesState, StateGraph
    from langgraph.prebuilt import ToolNode

    tool = AgentEndpoint("research", host=ep.host, token="t").as_tool(name="research")
    graph = StateGraph(MessagesState)
    graph.add_node("tools", ToolNode([tool]))
    graph.add_edge(START, "tools")
    graph.add_edge("tools", END)
    asked = AIMessage("", tool_calls=[_tool_call("research", "tea")])
    _asked, message = graph.compile().invoke({"messages": [asked]})["messages"]
    assert message.content == "Facts about tea: it is well known."
    assert message.artifact.text == message.content


def test_a_create_agent_supervisor_with_two_sub_agents(ep: LocalEndpoint) -> None:
    from langchain.agents import create_agent

    auth = {"host": ep.host, "token": "t"}
    tools = [
        AgentEndpoint("research", **auth).as_tool(name="research"),
        AgentEndpoint("write", **auth).as_tool(name="write"),
    ]
    supervisor = create_agent(RuleModel(rule="supervisor"), tools=tools)
    state = supervisor.invoke({"messages": [HumanMessage("green tea")]})
    results = [m for m in state["messages"] if isinstance(m, ToolMessage)]
    assert [m.name for m in results] == ["research", "write"]
    assert [m.artifact.text for m in results] == [
        "Facts about green tea: it is well known.",
        "Written: Facts about green tea: it is well known.",
    ]
    assert state["messages"][-1].text == "Final: Written: Facts about green tea: it is well known."
    # Each request went to its own agent, by name.
    assert [r.body["model"] for r in ep.requests] == ["research", "write"]


def test_a_failing_sub_agent_raises_a_typed_error(ep: LocalEndpoint) -> None:
    from langchain_dbx_serving import AgentError

    tool = AgentEndpoint("research", host=ep.host, token="t").as_tool(name="research")
    with pytest.raises(AgentError, match="exploded on purpose"):
        tool.invoke(_tool_call("research", "explode"))


def test_the_sub_agents_tokens_count_in_the_usage_callback(ep: LocalEndpoint) -> None:
    tool = AgentEndpoint("research", host=ep.host, token="t").as_tool(name="research")
    with get_usage_metadata_callback() as usage:
        message = tool.invoke(_tool_call("research", "tea"))
    total = sum(u["total_tokens"] for u in usage.usage_metadata.values())
    assert total == message.artifact.usage["total_tokens"] > 0


def test_a_stream_that_ends_without_a_response_is_a_typed_error() -> None:
    from langchain_dbx_serving import MalformedResponseError
    from langchain_dbx_serving.agent_tool import agent_tool

    class Silent:
        endpoint = "silent-agent"

        def stream(self, value: Any, config: Any = None) -> Iterator[Any]:
            return iter(())

    tool = agent_tool(Silent(), name="silent")  # type: ignore[arg-type]
    with pytest.raises(MalformedResponseError, match="'silent-agent' ended without a response"):
        tool.invoke(_tool_call("silent", "hi"))


async def test_a_supervisors_event_stream_shows_each_sub_agent_as_it_answers(
    ep: LocalEndpoint,
) -> None:
    from langchain.agents import create_agent

    auth = {"host": ep.host, "token": "t"}
    tools = [
        AgentEndpoint("research", **auth).as_tool(name="research"),
        AgentEndpoint("write", **auth).as_tool(name="write"),
    ]
    supervisor = create_agent(RuleModel(rule="supervisor"), tools=tools)
    texts: dict[str, str] = {}
    async for event in supervisor.astream_events(
        {"messages": [HumanMessage("green tea")]}, version="v2"
    ):
        if event["event"] == "on_custom_event" and event["name"] == TEXT_EVENT:
            tool = event["data"]["tool"]
            texts[tool] = texts.get(tool, "") + event["data"]["delta"]
    assert texts == {
        "research": "Facts about green tea: it is well known.",
        "write": "Written: Facts about green tea: it is well known.",
    }
