"""Deterministic LangChain runnables and LangGraph graphs to serve through ``as_responses_agent``.

``RuleModel`` is a chat model whose reply follows from the conversation (so a graph gives the
same turn in the test process and in an AgentServer subprocess). It streams word by word,
tool-call arguments in two pieces, puts a reasoning block first when the user's text contains
``think``, reports usage (one token per word in, one per word or argument out) and, when the
text contains ``explode``, streams two deltas and raises ``RuntimeError(ERROR_MESSAGE)``.

``GRAPHS`` maps a name to a builder: ``chat`` (the chat model alone), ``react`` (a
``create_agent`` ReAct agent with a weather tool), ``supervisor`` (``create_agent`` whose two
tools are sub-agents, themselves ``create_agent`` graphs), ``custom`` (a graph that reads
``custom_inputs`` from its state and sets ``custom_outputs``) and ``explode`` (a graph whose
model fails mid-stream).
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Iterator, Sequence
from typing import Annotated, Any, TypedDict

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    AnyMessage,
    BaseMessage,
    HumanMessage,
    ToolMessage,
)
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.tools import tool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import Field

ERROR_MESSAGE = "graph exploded on purpose"
PARTIAL = ("Partial ", "answer ")


def _last_human(messages: Sequence[BaseMessage]) -> str:
    return next((m.text for m in reversed(messages) if isinstance(m, HumanMessage)), "")


def _tool_results(messages: Sequence[BaseMessage]) -> list[ToolMessage]:
    """Tool results after the last human message."""
    found: list[ToolMessage] = []
    for message in reversed(messages):
        if isinstance(message, HumanMessage):
            break
        if isinstance(message, ToolMessage):
            found.insert(0, message)
    return found


def _words(messages: Sequence[BaseMessage]) -> int:
    return sum(len(m.text.split()) for m in messages)


class RuleModel(BaseChatModel):
    """A chat model whose reply is a function of the conversation (``rule`` names which)."""

    rule: str = "echo"
    tool_names: tuple[str, ...] = ()
    tool_args: dict[str, str] = Field(default_factory=dict)
    """The first argument of each bound tool (the supervisor fills it with its request)."""

    @property
    def _llm_type(self) -> str:
        return "rule-model"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> RuleModel:  # type: ignore[override]
        functions = [convert_to_openai_tool(t)["function"] for t in tools]
        names = tuple(f["name"] for f in functions)
        args = {f["name"]: next(iter(f["parameters"]["properties"]), "") for f in functions}
        return self.model_copy(update={"tool_names": names, "tool_args": args})

    # -- the reply ----------------------------------------------------------------------------
    def _text_and_calls(self, messages: Sequence[BaseMessage]) -> tuple[str, list[dict]]:
        text = _last_human(messages)
        results = _tool_results(messages)
        if self.rule == "react":
            if results:
                return f"The weather: {results[-1].text}.", []
            if "weather" in text and "get_weather" in self.tool_names:
                city = text.rstrip("?").split()[-1]
                return "", [{"name": "get_weather", "args": {"city": city}, "id": "call_w1"}]
        if self.rule == "supervisor":
            if not results:
                args = {self.tool_args.get("research", "topic"): text}
                return "", [{"name": "research", "args": args, "id": "call_r1"}]
            if len(results) == 1:
                facts = results[0].text
                args = {self.tool_args.get("write", "facts"): facts}
                write = {"name": "write", "args": args, "id": "call_w1"}
                return "Writing it up.", [write]
            return f"Final: {results[-1].text}", []
        if self.rule == "research":
            return f"Facts about {text}: it is well known.", []
        if self.rule == "write":
            return f"Written: {text}", []
        return f"You said: {text}", []

    def _reasoning(self, messages: Sequence[BaseMessage]) -> str | None:
        text = _last_human(messages)
        return f"Thinking about: {text}" if "think" in text else None

    def _usage(self, messages: Sequence[BaseMessage], text: str, calls: list[dict]) -> Any:
        out = len(text.split()) + sum(len(json.dumps(c["args"]).split()) for c in calls)
        prompt = _words(messages)
        return {"input_tokens": prompt, "output_tokens": out, "total_tokens": prompt + out}

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> ChatResult:
        if "explode" in _last_human(messages):
            raise RuntimeError(ERROR_MESSAGE)
        text, calls = self._text_and_calls(messages)
        reasoning = self._reasoning(messages)
        content: Any = text
        if reasoning:
            content = [
                {"type": "reasoning", "reasoning": reasoning},
                {"type": "text", "text": text},
            ]
        message = AIMessage(
            content=content,
            tool_calls=calls,
            usage_metadata=self._usage(messages, text, calls),
            response_metadata={"model_name": f"rule-{self.rule}"},
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> Iterator[ChatGenerationChunk]:
        for chunk in self._chunks(messages):
            piece = ChatGenerationChunk(message=chunk)
            if run_manager is not None:
                run_manager.on_llm_new_token(chunk.text, chunk=piece)
            yield piece

    def _chunks(self, messages: list[BaseMessage]) -> Iterator[AIMessageChunk]:
        if "explode" in _last_human(messages):
            for word in PARTIAL:
                yield AIMessageChunk(content=word)
            raise RuntimeError(ERROR_MESSAGE)
        text, calls = self._text_and_calls(messages)
        reasoning = self._reasoning(messages)
        if reasoning:
            block = {"type": "reasoning", "reasoning": reasoning, "index": 0}
            yield AIMessageChunk(content=[block])
        for word in text.split(" ") if text else []:
            piece = word if word == text.split(" ")[-1] else f"{word} "
            content: Any = [{"type": "text", "text": piece, "index": 1}] if reasoning else piece
            yield AIMessageChunk(content=content)
        for index, call in enumerate(calls):
            arguments = json.dumps(call["args"])
            half = len(arguments) // 2
            first = {
                "name": call["name"],
                "args": arguments[:half],
                "id": call["id"],
                "index": index,
            }
            yield AIMessageChunk(content="", tool_call_chunks=[first])
            rest = {"name": None, "args": arguments[half:], "id": None, "index": index}
            yield AIMessageChunk(content="", tool_call_chunks=[rest])
        usage = self._usage(messages, text, calls)
        yield AIMessageChunk(
            content="",
            usage_metadata=usage,
            response_metadata={"model_name": f"rule-{self.rule}"},
            chunk_position="last",
        )


# ---- graphs ------------------------------------------------------------------------------


@tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"18 C and sunny in {city}"


def chat() -> Any:
    return RuleModel(rule="echo")


def react() -> Any:
    from langchain.agents import create_agent

    return create_agent(RuleModel(rule="react"), tools=[get_weather])


def sub_agent(rule: str) -> Any:
    from langchain.agents import create_agent

    return create_agent(RuleModel(rule=rule), tools=[], name=f"{rule}_agent")


def supervisor() -> Any:
    from langchain.agents import create_agent

    researcher, writer = sub_agent("research"), sub_agent("write")

    @tool
    def research(topic: str) -> str:
        """Ask the research sub-agent about a topic."""
        return researcher.invoke({"messages": [HumanMessage(topic)]})["messages"][-1].text

    @tool
    def write(facts: str) -> str:
        """Ask the writer sub-agent to write the facts up."""
        return writer.invoke({"messages": [HumanMessage(facts)]})["messages"][-1].text

    return create_agent(RuleModel(rule="supervisor"), tools=[research, write])


class CustomState(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], operator.add]
    custom_inputs: dict[str, Any]
    custom_outputs: dict[str, Any]


def custom() -> Any:
    from langgraph.graph import END, START, StateGraph

    model = RuleModel(rule="echo")

    def respond(state: CustomState) -> dict[str, Any]:
        reply = model.invoke(state["messages"])
        inputs = state.get("custom_inputs") or {}
        outputs = {"seen_inputs": inputs, "words": len(reply.text.split())}
        return {"messages": [reply], "custom_outputs": outputs}

    graph = StateGraph(CustomState)
    graph.add_node("respond", respond)
    graph.add_edge(START, "respond")
    graph.add_edge("respond", END)
    return graph.compile()


def explode() -> Any:
    from langchain.agents import create_agent

    return create_agent(RuleModel(rule="echo"), tools=[])


GRAPHS: dict[str, Callable[[], Any]] = {
    "chat": chat,
    "react": react,
    "supervisor": supervisor,
    "custom": custom,
    "explode": explode,
}
