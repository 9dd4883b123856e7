"""``as_responses_agent`` in process and behind ``LocalEndpoint``: stream ids, the request
mapping (context, custom_inputs, checkpointer threads), several agents on one endpoint, and
the graph's MLflow spans in the trace a caller asks for."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.runnables import RunnableConfig

from langchain_dbx_serving import AgentEndpoint, ChatDatabricksResponses, as_responses_agent
from langchain_dbx_serving.testing import LocalEndpoint
from tests.support.graphs import GRAPHS, CustomState, RuleModel, get_weather


@pytest.fixture(autouse=True)
def mlflow_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A throwaway MLflow store: ResponsesAgent methods are traced (never into ./mlflow.db)."""
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "mlruns").as_uri())
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.setenv("MLFLOW_ENABLE_ASYNC_TRACE_LOGGING", "false")
    mlflow.tracing.reset()
    yield mlflow
    mlflow.tracing.reset()


def _request(text: str, **extra: Any) -> dict[str, Any]:
    return {"input": [{"role": "user", "content": text}], **extra}


def _events(agent: Any, request: dict[str, Any]) -> list[dict[str, Any]]:
    return [e.model_dump(exclude_none=True) for e in agent.predict_stream(request)]


def _without_ids(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in item.items() if k != "id"} for item in items]


@pytest.mark.parametrize(
    ("name", "text"),
    [("chat", "think about it"), ("react", "weather in Oslo"), ("supervisor", "tea")],
)
def test_every_delta_names_an_item_that_is_done_exactly_once(name: str, text: str) -> None:
    agent = as_responses_agent(GRAPHS[name]())
    events = _events(agent, _request(text))
    done = [e["item"] for e in events if e["type"] == "response.output_item.done"]
    done_ids = [item["id"] for item in done if "id" in item]
    assert len(done_ids) == len(set(done_ids)), done_ids
    deltas = [e for e in events if e["type"].endswith(".delta")]
    assert deltas, "the graph's model streams, so must the agent"
    assert {d["item_id"] for d in deltas} <= set(done_ids)
    for delta in deltas:  # deltas come before their item is done
        position = events.index(delta)
        item_done = next(
            i
            for i, e in enumerate(events)
            if e.get("item", {}).get("id") == delta["item_id"]
            and e["type"] == "response.output_item.done"
        )
        assert position < item_done
    # Text deltas add up to the text of their item; argument deltas to its arguments.
    for item in done:
        pieces = "".join(d["delta"] for d in deltas if d["item_id"] == item.get("id"))
        if item["type"] == "message":
            assert pieces == "".join(p["text"] for p in item["content"])
        if item["type"] == "function_call":
            assert pieces == item["arguments"]
        if item["type"] == "reasoning":
            assert pieces == "".join(part["text"] for part in item["summary"])
    assert events[-1]["type"] == "response.completed"
    # The whole reply holds the same items as the stream.
    whole = agent.predict(_request(text)).model_dump(exclude_none=True)
    assert _without_ids(whole["output"]) == _without_ids(done)
    assert whole["usage"] == events[-1]["response"]["usage"]


def test_a_function_call_is_announced_before_its_argument_deltas() -> None:
    events = _events(as_responses_agent(GRAPHS["react"]()), _request("weather in Oslo"))
    kinds = [e["type"] for e in events]
    added = kinds.index("response.output_item.added")
    assert events[added]["item"]["name"] == "get_weather"
    assert kinds[added + 1] == "response.function_call_arguments.delta"


def _config_graph() -> Any:
    """A graph that answers with what reached its config and state."""
    from langgraph.graph import END, START, StateGraph

    def respond(state: CustomState, config: RunnableConfig) -> dict[str, Any]:
        c = config["configurable"]
        text = (
            f"thread={c.get('thread_id')} user={c.get('user_id')} "
            f"config_inputs={c.get('custom_inputs')} state_inputs={state.get('custom_inputs')}"
        )
        return {"messages": [AIMessage(text)]}

    graph = StateGraph(CustomState)
    graph.add_node("respond", respond)
    graph.add_edge(START, "respond")
    graph.add_edge("respond", END)
    return graph.compile()


def test_context_and_custom_inputs_reach_the_graphs_config_and_state() -> None:
    with LocalEndpoint({"agent": _config_graph()}, token=None) as ep:
        reply = AgentEndpoint("agent", host=ep.host, token="t").invoke(
            {
                "input": "hi",
                "custom_inputs": {"tier": "gold"},
                "context": {"conversation_id": "conv-7", "user_id": "ana"},
            }
        )
    assert reply.text == (
        "thread=conv-7 user=ana config_inputs={'tier': 'gold'} state_inputs={'tier': 'gold'}"
    )


def test_history_the_checkpointer_holds_is_not_appended_twice() -> None:
    from langchain.agents import create_agent
    from langgraph.checkpoint.memory import InMemorySaver

    graph = create_agent(RuleModel(rule="react"), tools=[get_weather], checkpointer=InMemorySaver())
    with LocalEndpoint({"agent": graph}, token=None) as ep:
        chat = ChatDatabricksResponses(
            endpoint="agent", host=ep.host, token="t", context={"conversation_id": "conv-1"}
        )
        history: list[Any] = [HumanMessage("hello there")]
        history.append(chat.invoke(history))
        history.append(HumanMessage("weather in Rome"))
        # A chat UI re-sends the whole conversation, the agent's turn included.
        last = chat.invoke(history)
    assert last.text == "The weather: 18 C and sunny in Rome."
    state = graph.get_state({"configurable": {"thread_id": "conv-1"}}).values["messages"]
    assert [m.type for m in state] == ["human", "ai", "human", "ai", "tool", "ai"]
    assert [m.text for m in state if m.type == "human"] == ["hello there", "weather in Rome"]


def test_without_a_conversation_id_the_whole_input_is_the_graphs_input() -> None:
    agent = as_responses_agent(GRAPHS["chat"]())
    history = [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "earlier answer"},
        {"role": "user", "content": "second"},
    ]
    reply = agent.predict({"input": history}).model_dump()
    assert reply["output"][-1]["content"][0]["text"] == "You said: second"
    assert reply["usage"]["input_tokens"] == 4  # every word of the three messages


def test_one_local_endpoint_hosts_several_graphs_by_name() -> None:
    with LocalEndpoint({name: build() for name, build in GRAPHS.items()}, token=None) as ep:
        weather = AgentEndpoint("react", host=ep.host, token="t").invoke("weather in Lima")
        echo = AgentEndpoint("custom", host=ep.host, token="t").invoke(
            {"input": "hi", "custom_inputs": {"a": 1}}
        )
    assert weather.text == "The weather: 18 C and sunny in Lima."
    assert [(c.name, c.output) for c in weather.tool_calls] == [
        ("get_weather", "18 C and sunny in Lima")
    ]
    assert echo.custom_outputs == {"seen_inputs": {"a": 1}, "words": 3}


def test_a_caller_asking_for_the_trace_gets_the_graphs_spans() -> None:
    with LocalEndpoint({"react": GRAPHS["react"]()}, token=None) as ep:
        reply = AgentEndpoint("react", host=ep.host, token="t", return_trace=True).invoke(
            "weather in Kyiv"
        )
    assert reply.trace is not None
    names = [span["name"] for span in reply.trace["data"]["spans"]]
    assert "get_weather" in names, names
    assert any("RuleModel" in name for name in names), names


@pytest.mark.parametrize("way", ["stream", "predict"])
def test_a_chain_ending_in_a_string_parser_streams_its_text(way: str) -> None:
    from langchain_core.output_parsers import StrOutputParser

    agent = as_responses_agent(RuleModel(rule="echo") | StrOutputParser())
    if way == "predict":
        output = agent.predict(_request("a b c")).model_dump()["output"]
    else:
        events = _events(agent, _request("a b c"))
        deltas = [e["delta"] for e in events if e["type"] == "response.output_text.delta"]
        assert deltas == ["You ", "said: ", "a ", "b ", "c"]
        output = [e["item"] for e in events if e["type"] == "response.output_item.done"]
    assert [part["text"] for part in output[0]["content"]] == ["You said: a b c"]
    assert len(output) == 1


def test_usage_counts_model_calls_made_inside_tools() -> None:
    events = _events(as_responses_agent(GRAPHS["supervisor"]()), _request("tea"))
    usage = events[-1]["response"]["usage"]
    # The two sub-agents run inside the supervisor's tools: their model calls are part of
    # what the turn cost, though their messages are not in the supervisor's state.
    whole = as_responses_agent(GRAPHS["supervisor"]()).predict(_request("tea")).model_dump()
    state = GRAPHS["supervisor"]().invoke({"messages": [HumanMessage("tea")]})
    own = sum(m.usage_metadata["total_tokens"] for m in state["messages"] if m.type == "ai")
    assert whole["usage"]["total_tokens"] == usage["total_tokens"] > own


async def test_the_async_api_gives_the_same_turn_and_uses_the_async_checkpointer() -> None:
    from langchain.agents import create_agent
    from langgraph.checkpoint.memory import InMemorySaver

    graph = create_agent(RuleModel(rule="react"), tools=[get_weather], checkpointer=InMemorySaver())
    agent = as_responses_agent(graph)
    context = {"conversation_id": "conv-async"}
    first = await agent.apredict(_request("hello", context=context))
    history = [
        {"role": "user", "content": "hello"},
        *first.model_dump(exclude_none=True)["output"],
        {"role": "user", "content": "weather in Bern"},
    ]
    events = [
        e.model_dump(exclude_none=True)
        async for e in agent.apredict_stream({"input": history, "context": context})
    ]
    done = [e["item"] for e in events if e["type"] == "response.output_item.done"]
    assert [i["type"] for i in done] == ["function_call", "function_call_output", "message"]
    assert done[-1]["content"][0]["text"] == "The weather: 18 C and sunny in Bern."
    state = (await graph.aget_state({"configurable": {"thread_id": "conv-async"}})).values
    assert [m.type for m in state["messages"]] == ["human", "ai", "human", "ai", "tool", "ai"]


def test_a_checkpointed_graph_without_a_conversation_id_runs_on_a_new_thread() -> None:
    from langchain.agents import create_agent
    from langgraph.checkpoint.memory import InMemorySaver

    graph = create_agent(RuleModel(rule="echo"), tools=[], checkpointer=InMemorySaver())
    agent = as_responses_agent(graph)
    texts = [
        agent.predict(_request(text)).model_dump()["output"][-1]["content"][0]["text"]
        for text in ("one", "two")
    ]
    assert texts == ["You said: one", "You said: two"]
    assert agent.predict(_request("three")).usage.input_tokens == 1  # no earlier turn in it


def test_a_model_called_inside_a_tool_does_not_stream_into_the_answer() -> None:
    from langchain.agents import create_agent
    from langchain_core.tools import tool

    inner = RuleModel(rule="research")

    @tool
    def research(topic: str) -> str:
        """Research a topic with a model of its own."""
        return inner.invoke([HumanMessage(topic)]).text

    graph = create_agent(RuleModel(rule="supervisor"), tools=[research])
    agent = as_responses_agent(graph)
    events = _events(agent, _request("tea"))
    deltas = [e for e in events if e["type"] == "response.output_text.delta"]
    done = [e["item"] for e in events if e["type"] == "response.output_item.done"]
    assert {d["item_id"] for d in deltas} <= {i.get("id") for i in done}
    streamed = "".join(d["delta"] for d in deltas)
    assert "Facts about tea" not in streamed.split("Writing it up.")[0]
    whole = agent.predict(_request("tea")).model_dump()["output"]
    assert _without_ids(whole) == _without_ids(done)
