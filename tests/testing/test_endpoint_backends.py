"""Backends: ChatAgent replies, echo, LangChain chat models, MLflow ResponsesAgents, scripts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from langchain_core.language_models import BaseChatModel, GenericFakeChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import Field

from langchain_dbx_serving.testing import (
    BackendRequest,
    Delta,
    LocalEndpoint,
    Reply,
    ScriptedBackend,
    ToolCallDelta,
    ToolStep,
    Usage,
)
from tests.testing.helpers import capture, chat, parse_sse, responses, script

AGENT_URL = "/serving-endpoints/agent/invocations"


# -- ChatAgent ------------------------------------------------------------------------------


def test_chat_agent_whole_reply_lists_tool_turns_then_the_answer(
    ep: LocalEndpoint, client: httpx.Client
) -> None:
    step = ToolStep("get_weather", {"city": "Paris"}, output="18C", id="call_1")
    script(
        ep,
        Reply.text("18C in Paris.", steps=[step], usage=(8, 5), custom_outputs={"k": 1}),
        name="agent",
    )

    body = client.post(AGENT_URL, json=chat(context={"user_id": "u"})).json()

    call, result, answer = body["messages"]
    assert call["role"] == "assistant" and call["content"] == ""
    assert call["tool_calls"] == [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
        }
    ]
    assert result | {"id": None} == {
        "role": "tool",
        "content": "18C",
        "id": None,
        "tool_call_id": "call_1",
        "name": "get_weather",
    }
    assert (answer["role"], answer["content"]) == ("assistant", "18C in Paris.")
    assert len({call["id"], result["id"], answer["id"]}) == 3
    assert body["finish_reason"] == "stop"
    assert body["usage"] == {"prompt_tokens": 8, "completion_tokens": 5, "total_tokens": 13}
    assert body["custom_outputs"] == {"k": 1}


def test_chat_agent_stream_deltas_aggregate_by_id(ep: LocalEndpoint, client: httpx.Client) -> None:
    step = ToolStep("search", {"q": "x"}, output="found", id="call_2")
    script(
        ep,
        Reply.text("Found it here", steps=[step], usage=(3, 3), custom_outputs={"n": 2}),
        name="agent",
    )

    events = parse_sse(client.post(AGENT_URL, json=chat(stream=True)).text)

    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    merged: dict[str, str] = {}
    for chunk in chunks:
        delta = chunk["delta"]
        merged[delta["id"]] = merged.get(delta["id"], "") + delta["content"]
    assert list(merged.values()) == ["", "found", "Found it here"]
    assert chunks[0]["delta"]["tool_calls"][0]["function"]["name"] == "search"
    assert chunks[1]["delta"]["role"] == "tool"
    last = chunks[-1]
    assert (last["finish_reason"], last["custom_outputs"]) == ("stop", {"n": 2})
    assert last["usage"]["total_tokens"] == 6
    assert all("finish_reason" not in c for c in chunks[:-1])


def test_chat_agent_shape_also_on_the_openai_chat_route(
    ep: LocalEndpoint, client: httpx.Client
) -> None:
    script(ep, Reply.text("legacy"), name="agent")

    body = client.post(
        "/serving-endpoints/chat/completions", json={**chat(), "model": "agent"}
    ).json()

    assert body["messages"][-1]["content"] == "legacy"
    assert "choices" not in body


def test_chat_agent_tool_call_answer_is_sent_whole(ep: LocalEndpoint, client: httpx.Client) -> None:
    script(ep, Reply.tool_call("lookup", {"id": 3}, id="call_z"), name="agent")

    events = parse_sse(client.post(AGENT_URL, json=chat(stream=True)).text)

    (last,) = events[:-1]
    assert last["delta"]["tool_calls"][0]["id"] == "call_z"
    assert last["finish_reason"] == "tool_calls"


# -- echo -----------------------------------------------------------------------------------


def test_echo_answers_the_last_user_message_and_echoes_custom_inputs(client: httpx.Client) -> None:
    body = {
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": "answer"},
            {"role": "user", "content": "what is new"},
        ],
        "custom_inputs": {"session": "s1"},
    }

    reply = client.post("/serving-endpoints/echo/invocations", json=body).json()

    assert reply["choices"][0]["message"]["content"] == "what is new"
    assert reply["custom_outputs"] == {"session": "s1"}
    assert reply["usage"] == {"prompt_tokens": 8, "completion_tokens": 3, "total_tokens": 11}


def test_echo_streams_responses_too(client: httpx.Client) -> None:
    body = {"input": [{"role": "user", "content": "stream me"}], "stream": True}

    events = parse_sse(client.post("/serving-endpoints/echo/invocations", json=body).text)

    deltas = [e["delta"] for e in events[:-1] if e["type"] == "response.output_text.delta"]
    assert "".join(deltas) == "stream me"


# -- request decoding -----------------------------------------------------------------------


def test_chat_history_is_decoded_into_langchain_messages(
    ep: LocalEndpoint, client: httpx.Client
) -> None:
    seen: list[BackendRequest] = []
    script(ep, capture(seen, Reply.text("ok")))
    messages = [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": [{"type": "text", "text": "weather?"}]},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "w", "arguments": '{"c": "P"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "18C"},
    ]

    client.post("/serving-endpoints/chat/invocations", json={"messages": messages})

    decoded = seen[0].messages
    assert [m.type for m in decoded] == ["system", "human", "ai", "tool"]
    assert decoded[1].text == "weather?"
    assert decoded[2].tool_calls == [
        {"name": "w", "args": {"c": "P"}, "id": "c1", "type": "tool_call"}
    ]
    assert isinstance(decoded[3], ToolMessage) and decoded[3].tool_call_id == "c1"
    assert seen[0].shape == "chat_completions" and seen[0].stream is False


def test_responses_items_are_decoded_into_langchain_messages(
    ep: LocalEndpoint, client: httpx.Client
) -> None:
    seen: list[BackendRequest] = []
    script(ep, capture(seen, Reply.text("ok")))
    items = [
        {"role": "user", "content": [{"type": "input_text", "text": "weather?"}]},
        {"type": "reasoning", "id": "r1", "summary": [{"type": "summary_text", "text": "call w"}]},
        {"type": "function_call", "id": "f1", "call_id": "c1", "name": "w", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "18C"},
        {"role": "assistant", "content": [{"type": "output_text", "text": "18C"}]},
    ]

    client.post("/serving-endpoints/chat/invocations", json={"input": items})

    decoded = seen[0].messages
    assert [m.type for m in decoded] == ["human", "ai", "tool", "ai"]
    assert decoded[1].tool_calls[0]["name"] == "w"
    assert decoded[1].content == [{"type": "reasoning", "reasoning": "call w", "id": "r1"}]
    assert decoded[3].text == "18C"


# -- LangChain chat models ------------------------------------------------------------------


class ToolModel(BaseChatModel):
    """A chat model that supports tools and answers with reasoning, a tool call and usage."""

    bound: list[Any] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "tool-model"

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        self.bound.append(tools)
        return self

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> ChatResult:
        message = AIMessage(
            content=[
                {"type": "reasoning", "reasoning": "need weather"},
                {"type": "text", "text": "Checking."},
            ],
            tool_calls=[
                {
                    "name": "get_weather",
                    "args": {"city": "Paris"},
                    "id": "call_m",
                    "type": "tool_call",
                }
            ],
            usage_metadata={"input_tokens": 11, "output_tokens": 6, "total_tokens": 17},
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> Iterator[ChatGenerationChunk]:
        yield ChatGenerationChunk(message=AIMessageChunk(content="Checking."))
        for args, extra in (
            ('{"city":', {"id": "call_m", "name": "get_weather"}),
            (' "Paris"}', {}),
        ):
            piece = {"index": 0, "args": args, "id": None, "name": None, **extra}
            yield ChatGenerationChunk(message=AIMessageChunk(content="", tool_call_chunks=[piece]))
        usage = {"input_tokens": 11, "output_tokens": 6, "total_tokens": 17}
        yield ChatGenerationChunk(message=AIMessageChunk(content="", usage_metadata=usage))


def test_fake_chat_model_answers_whole_and_streamed() -> None:
    model = GenericFakeChatModel(messages=iter(["Hello from LangChain", "streamed words"]))

    with LocalEndpoint(model, token=None) as ep:
        whole = httpx.post(ep.invocations_url("m"), json=chat()).json()
        events = parse_sse(httpx.post(ep.invocations_url("m"), json=chat(stream=True)).text)

    assert whole["choices"][0]["message"]["content"] == "Hello from LangChain"
    texts = [e["choices"][0]["delta"].get("content") for e in events[1:-2]]
    assert texts == ["streamed", " ", "words"]
    assert events[-2]["choices"][0]["finish_reason"] == "stop"


def test_chat_model_reply_is_encoded_with_reasoning_tool_calls_and_usage() -> None:
    model = ToolModel()
    tools = [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}]

    with LocalEndpoint({"m": model}, token=None) as ep:
        body = httpx.post(ep.invocations_url("m"), json=responses(tools=tools)).json()

    function = {"name": "get_weather", "parameters": {"type": "object"}}
    assert model.bound == [[{"type": "function", "function": function}]]
    assert [item["type"] for item in body["output"]] == ["reasoning", "message", "function_call"]
    assert body["output"][0]["summary"][0]["text"] == "need weather"
    assert json.loads(body["output"][2]["arguments"]) == {"city": "Paris"}
    assert body["output"][2]["call_id"] == "call_m"
    assert body["usage"]["total_tokens"] == 17


def test_chat_model_stream_chunks_become_tool_call_deltas_and_final_usage() -> None:
    with LocalEndpoint({"m": ToolModel()}, token=None) as ep:
        text = httpx.post(ep.invocations_url("m"), json=chat(stream=True)).text

    events = parse_sse(text)
    deltas = [e["choices"][0]["delta"] for e in events[:-1]]
    fragments = [f for d in deltas for f in d.get("tool_calls", [])]
    assert fragments[0]["id"] == "call_m" and fragments[0]["function"]["name"] == "get_weather"
    assert json.loads("".join(f["function"]["arguments"] for f in fragments)) == {"city": "Paris"}
    assert events[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert events[-2]["usage"] == {"prompt_tokens": 11, "completion_tokens": 6, "total_tokens": 17}


# -- MLflow ResponsesAgent ------------------------------------------------------------------


@pytest.fixture
def responses_agent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    pytest.importorskip("mlflow")
    # The agent's methods are traced: give MLflow a throwaway store, never ./mlflow.db.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tmp_path.as_uri())
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.setenv("MLFLOW_ENABLE_ASYNC_TRACE_LOGGING", "false")
    from mlflow.pyfunc import ResponsesAgent
    from mlflow.types.responses import ResponsesAgentResponse, ResponsesAgentStreamEvent

    class Hello(ResponsesAgent):
        def predict(self, request: Any) -> Any:
            item = self.create_text_output_item(f"echo: {request.input[-1].content}", "m1")
            return ResponsesAgentResponse(output=[item], custom_outputs=request.custom_inputs)

        def predict_stream(self, request: Any) -> Iterator[Any]:
            yield ResponsesAgentStreamEvent(**self.create_text_delta("hel", "m1"))
            yield ResponsesAgentStreamEvent(**self.create_text_delta("lo", "m1"))
            item = self.create_text_output_item("hello", "m1")
            yield ResponsesAgentStreamEvent(
                type="response.output_item.done", item=item, custom_outputs={"x": 1}
            )

    return Hello()


def test_responses_agent_output_is_relayed_verbatim(responses_agent: Any) -> None:
    with LocalEndpoint({"agent": responses_agent}, token=None) as ep:
        whole = httpx.post(
            ep.host + "/responses", json=responses("hi", custom_inputs={"a": 1})
        ).json()
        chat_body = httpx.post(ep.invocations_url("agent"), json=chat())

    assert whole == {
        "object": "response",
        "output": [
            {
                "type": "message",
                "id": "m1",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "echo: hi", "annotations": []}],
            }
        ],
        "custom_outputs": {"a": 1},
    }
    assert chat_body.status_code == 400


def test_responses_agent_stream_is_relayed_with_the_trace_id_event(responses_agent: Any) -> None:
    headers = {"x-mlflow-return-trace-id": "true"}

    with LocalEndpoint(responses_agent, token=None) as ep:
        text = httpx.post(
            ep.host + "/invocations", json=responses(stream=True), headers=headers
        ).text

    events = parse_sse(text)
    assert events[0] == {"type": "response.output_text.delta", "item_id": "m1", "delta": "hel"}
    assert events[2]["custom_outputs"] == {"x": 1}
    assert events[2]["item"]["content"][0]["text"] == "hello"
    assert list(events[3]) == ["trace_id"]
    assert events[4] == "[DONE]"


# -- live streams from any backend ---------------------------------------------------------


def _live(request: BackendRequest) -> Iterator[Delta | Reply]:
    yield Delta(text="Calling ")
    yield Delta(text="f.")
    yield Delta(tool_call=ToolCallDelta(0, name="f", arguments='{"a":'))
    yield Delta(tool_call=ToolCallDelta(0, arguments=" 1}"))
    if request.custom_inputs and request.custom_inputs.get("fail"):
        raise RuntimeError("backend lost its model")
    yield Reply(usage=Usage(2, 3), custom_outputs={"live": True})


def test_a_function_backend_may_stream_live_deltas() -> None:
    with LocalEndpoint(_live, token=None) as ep:
        events = parse_sse(httpx.post(ep.invocations_url("x"), json=responses(stream=True)).text)
        whole = httpx.post(ep.invocations_url("x"), json=chat()).json()

    done = [e["item"] for e in events[:-1] if e["type"] == "response.output_item.done"]
    assert done[0]["content"][0]["text"] == "Calling f."
    assert (done[1]["name"], done[1]["arguments"]) == ("f", '{"a": 1}')
    assert done[1]["call_id"].startswith("call_")
    assert events[-2]["custom_outputs"] == {"live": True}
    assert events[-2]["response"]["usage"]["total_tokens"] == 5
    message = whole["choices"][0]["message"]
    assert message["content"] == "Calling f."
    assert message["tool_calls"][0]["function"] == {"name": "f", "arguments": '{"a": 1}'}
    assert whole["choices"][0]["finish_reason"] == "tool_calls"


def test_a_live_stream_that_raises_ends_with_an_error_event() -> None:
    with LocalEndpoint(_live, token=None, chat_agents=True) as ep:
        body = chat(stream=True, custom_inputs={"fail": True})
        events = parse_sse(httpx.post(ep.invocations_url("x"), json=body).text)

    assert events[-2] == {"error": "RuntimeError: backend lost its model"}
    assert events[-1] == "[DONE]"


def test_a_live_stream_that_raises_on_a_whole_request_gets_a_500() -> None:
    with LocalEndpoint(_live, token=None) as ep:
        response = httpx.post(ep.invocations_url("x"), json=chat(custom_inputs={"fail": True}))

    assert response.status_code == 500
    assert "backend lost its model" in response.json()["message"]


# -- scripts --------------------------------------------------------------------------------


def test_scripted_backend_loads_replies_from_json(tmp_path: Path) -> None:
    path = tmp_path / "script.json"
    path.write_text(
        json.dumps(
            [
                "plain",
                {"text": "with usage", "usage": {"input_tokens": 2, "output_tokens": 2}},
                {"tool_calls": [{"name": "f", "arguments": {"a": 1}, "id": "c"}]},
                {
                    "error": {
                        "status": 429,
                        "error_code": "REQUEST_LIMIT_EXCEEDED",
                        "message": "slow",
                        "retry_after": 2,
                    }
                },
            ]
        )
    )

    with LocalEndpoint(str(path), token=None) as ep:
        answers = [httpx.post(ep.invocations_url("s"), json=chat()) for _ in range(4)]
        assert isinstance(ep.backend(), ScriptedBackend) and ep.backend().remaining == 0

    assert answers[0].json()["choices"][0]["message"]["content"] == "plain"
    assert answers[1].json()["usage"]["total_tokens"] == 4
    assert answers[2].json()["choices"][0]["message"]["tool_calls"][0]["id"] == "c"
    assert (answers[3].status_code, answers[3].headers["retry-after"]) == (429, "2")
