"""A tool-calling agent loop: model -> tool calls -> ToolMessages -> model, until it answers.

``ChatDatabricksServing.bind_tools`` sends two ``@tool`` functions to a chat endpoint. The loop
runs each tool call the model asks for, appends the ``ToolMessage`` results and asks again,
until a reply has no tool calls; every step is printed.

Offline by default: a local serving endpoint on 127.0.0.1 plays a model that asks for a tool
when the last message is the user's question and answers from the tool results once it has
them. Live: set DATABRICKS_HOST and DATABRICKS_TOKEN (and optionally DBX_CHAT_ENDPOINT, a chat
model that supports tool calling).

    python cookbook/04_tool_agent_loop.py
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from langchain_core.tools import tool

from langchain_dbx_serving import ChatDatabricksServing
from langchain_dbx_serving.testing import BackendRequest, LocalEndpoint, Reply

WEATHER = {"paris": 18.0, "tokyo": 24.0, "oslo": 7.0}


@tool
def get_weather(city: str) -> str:
    """Current temperature in a city, in degrees Celsius."""
    celsius = WEATHER.get(city.lower())
    return f"{celsius:g} C in {city}" if celsius is not None else f"no data for {city}"


@tool
def celsius_to_fahrenheit(celsius: float) -> str:
    """Convert a temperature from degrees Celsius to degrees Fahrenheit."""
    return f"{celsius * 9 / 5 + 32:g} F"


TOOLS = {t.name: t for t in (get_weather, celsius_to_fahrenheit)}


def weather_model(request: BackendRequest) -> Reply:
    """A deterministic stand-in for a tool-calling chat model."""
    offered = {t["function"]["name"] for t in request.tools}
    question = next(m.text for m in request.messages if m.type == "human")
    results = [m.text for m in request.messages if m.type == "tool"]
    if request.messages[-1].type == "human":
        city = next((c for c in WEATHER if c in question.lower()), "paris")
        return Reply.tool_call("get_weather", {"city": city.title()}, usage=(40, 8))
    wants_f = "fahrenheit" in question.lower() and "celsius_to_fahrenheit" in offered
    if wants_f and not any(r.endswith(" F") for r in results):
        celsius = float(results[-1].split()[0])  # "24 C in Tokyo"
        return Reply.tool_call("celsius_to_fahrenheit", {"celsius": celsius}, usage=(60, 9))
    return Reply.text(f"It is {' = '.join(results)}.", usage=(80, 12))


@contextlib.contextmanager
def chat_model() -> Iterator[ChatDatabricksServing]:
    if os.environ.get("DATABRICKS_HOST") and os.environ.get("DATABRICKS_TOKEN"):
        endpoint = os.environ.get("DBX_CHAT_ENDPOINT", "databricks-claude-sonnet-4")
        yield ChatDatabricksServing(endpoint=endpoint, max_tokens=300, temperature=0)
        return
    with LocalEndpoint(weather_model) as local:
        print(f"(offline: local serving endpoint at {local.base_url})\n")
        yield ChatDatabricksServing(endpoint="weather-model", host=local.host, token=local.token)


def run_agent(llm: ChatDatabricksServing, question: str, max_steps: int = 5) -> str:
    """Ask, run the requested tools, feed their results back, until the model answers."""
    model = llm.bind_tools(list(TOOLS.values()))
    messages: list[BaseMessage] = [
        SystemMessage("Answer weather questions with the tools. Be brief."),
        HumanMessage(question),
    ]
    print("question:", question)
    for step in range(1, max_steps + 1):
        reply = model.invoke(messages)
        messages.append(reply)
        if not reply.tool_calls:
            print("answer:", reply.text)
            print()
            return reply.text
        for call in reply.tool_calls:
            result = TOOLS[call["name"]].invoke(call)  # a ToolMessage with the call's id
            print(f"step {step}: {call['name']}({call['args']}) -> {result.content}")
            messages.append(result)
    raise RuntimeError(f"no answer after {max_steps} steps")


def main() -> None:
    with chat_model() as llm:
        run_agent(llm, "What's the weather in Paris?")
        run_agent(llm, "How warm is it in Tokyo, in Fahrenheit?")


if __name__ == "__main__":
    main()
