"""The workflows recorded into cassettes: streaming chat, streaming responses, a tool loop and a
multi-step chain, each in a sync and an async version that make the same requests.

A workflow takes a :class:`ServingTarget` (live or replaying) and returns everything a user
would look at (texts, stream pieces, tool calls, usage, metadata), so a live run and a replay
can be compared with ``==``. They run against the endpoints of ``cassettes/backends.py``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import reduce
from operator import add
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable
from langchain_core.tools import tool

from langchain_dbx_serving.testing.plugin import ServingTarget

ROOT = Path(__file__).resolve().parents[2]
BACKENDS_FILE = ROOT / "cassettes" / "backends.py"


def dump(message: BaseMessage) -> dict[str, Any]:
    """A message as data, without the id LangChain generates per run for stream chunks."""
    return message.model_dump(exclude={"id"})


def stream_result(chunks: Sequence[AIMessageChunk]) -> dict[str, Any]:
    total = reduce(add, chunks)
    return {"pieces": [c.text for c in chunks if c.text], "chunks": len(chunks), **dump(total)}


# -- streaming chat ------------------------------------------------------------------------------
SPEED = "What is the speed of light?"


def chat_stream(target: ServingTarget) -> dict[str, Any]:
    return stream_result(list(target.chat("faq-model").stream(SPEED)))


async def achat_stream(target: ServingTarget) -> dict[str, Any]:
    return stream_result([chunk async for chunk in target.chat("faq-model").astream(SPEED)])


# -- streaming responses (an agent with its own tool step and custom outputs) --------------------
ORDER = "Where is order 42?"


def _support(target: ServingTarget) -> Any:
    return target.responses("support-agent", custom_inputs={"team": "support"})


def responses_stream(target: ServingTarget) -> dict[str, Any]:
    return stream_result(list(_support(target).stream(ORDER)))


async def aresponses_stream(target: ServingTarget) -> dict[str, Any]:
    return stream_result([chunk async for chunk in _support(target).astream(ORDER)])


# -- a tool loop ---------------------------------------------------------------------------------
@tool
def get_weather(city: str) -> str:
    """The current weather in a city."""
    return {"Paris": "18C and sunny"}.get(city, "unknown")


WEATHER = "What is the weather in Paris?"


def _weather_model(target: ServingTarget) -> Runnable[Any, BaseMessage]:
    return target.chat("weather-model").bind_tools([get_weather])


def _loop_result(messages: list[BaseMessage]) -> dict[str, Any]:
    final = messages[-1]
    assert isinstance(final, AIMessage)
    return {"answer": final.text, "turns": [m.type for m in messages], "final": dump(final)}


def tool_loop(target: ServingTarget) -> dict[str, Any]:
    model = _weather_model(target)
    messages: list[BaseMessage] = [HumanMessage(WEATHER)]
    messages.append(model.invoke(messages))
    while isinstance(messages[-1], AIMessage) and messages[-1].tool_calls:
        messages += [get_weather.invoke(call) for call in messages[-1].tool_calls]
        messages.append(model.invoke(messages))
    return _loop_result(messages)


async def atool_loop(target: ServingTarget) -> dict[str, Any]:
    model = _weather_model(target)
    messages: list[BaseMessage] = [HumanMessage(WEATHER)]
    messages.append(await model.ainvoke(messages))
    while isinstance(messages[-1], AIMessage) and messages[-1].tool_calls:
        messages += [await get_weather.ainvoke(call) for call in messages[-1].tool_calls]
        messages.append(await model.ainvoke(messages))
    return _loop_result(messages)


# -- a multi-step chain: answer, then rewrite the answer (two calls per question) ---------------
QUESTIONS = [{"question": "What is the largest planet?"}, {"question": "Capital of France?"}]


def _chain(target: ServingTarget) -> Runnable[dict[str, str], str]:
    llm = target.chat("faq-model", temperature=0.0)
    answer = ChatPromptTemplate.from_messages(
        [("system", "Answer briefly."), ("human", "{question}")]
    )
    cheer = ChatPromptTemplate.from_messages([("human", "Make this enthusiastic: {answer}")])
    return (
        answer
        | llm
        | StrOutputParser()
        | (lambda text: {"answer": text})
        | cheer
        | llm
        | StrOutputParser()
    )


def chain(target: ServingTarget) -> dict[str, Any]:
    return {"answers": _chain(target).batch(QUESTIONS)}


async def achain(target: ServingTarget) -> dict[str, Any]:
    return {"answers": await _chain(target).abatch(QUESTIONS)}


@dataclass(frozen=True)
class Workflow:
    name: str
    run: Callable[[ServingTarget], dict[str, Any]]
    arun: Callable[[ServingTarget], Awaitable[dict[str, Any]]]
    requests: int
    streams: bool


WORKFLOWS = [
    Workflow("streaming_chat", chat_stream, achat_stream, 1, True),
    Workflow("streaming_responses", responses_stream, aresponses_stream, 1, True),
    Workflow("tool_loop", tool_loop, atool_loop, 2, False),
    Workflow("multi_step_chain", chain, achain, 4, False),
]
