"""Every row of docs/migrating.md, checked against the local endpoint over loopback.

The table is read from the document: a row without a check here, or a check without a row,
fails, so the guide cannot drift from the code.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import HumanMessage
from pydantic import BaseModel

from langchain_dbx_serving import (
    ChatDatabricksResponses,
    ChatDatabricksServing,
    DatabricksServingEmbeddings,
)
from langchain_dbx_serving.errors import (
    ConfigurationError,
    RateLimitError,
    UnknownArgumentError,
)
from langchain_dbx_serving.testing import (
    HashEmbeddingBackend,
    LocalEndpoint,
    RawReply,
    Reply,
    ToolStep,
)
from tests.support.calls import aggregate
from tests.support.serving import queue

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "migrating.md"
ROW = re.compile(r"^\| ([CEO]\d\d) \|")


def rows() -> list[str]:
    return [m.group(1) for line in GUIDE.read_text().splitlines() if (m := ROW.match(line))]


Check = Callable[[LocalEndpoint], None]
CHECKS: dict[str, Check] = {}


def row(row_id: str) -> Callable[[Check], Check]:
    def register(check: Check) -> Check:
        CHECKS[row_id] = check
        return check

    return register


def chat(ep: LocalEndpoint, **fields: Any) -> ChatDatabricksServing:
    if "endpoint" not in fields:
        fields.setdefault("model", "chat")
    fields.setdefault("max_retries", 0)
    return ChatDatabricksServing(host=ep.host, token=ep.token, **fields)


class Weather(BaseModel):
    """The weather in a city."""

    city: str
    unit: str | None = None


# -- ChatDatabricks --------------------------------------------------------------------------------
@row("C01")
def _model_or_endpoint(ep: LocalEndpoint) -> None:
    queue(ep, Reply.text("a"), Reply.text("b"))
    by_model, by_endpoint = chat(ep, model="chat"), chat(ep, endpoint="chat")
    assert by_model.model == by_model.endpoint == by_endpoint.model == "chat"
    assert [by_model.invoke("x").text, by_endpoint.invoke("x").text] == ["a", "b"]


@row("C02")
def _sampling_fields(ep: LocalEndpoint) -> None:
    queue(ep, Reply.text("ok"))
    chat(ep, temperature=0.2, max_tokens=64, stop=["\n"], n=1).invoke("x")
    body = ep.last_request.body
    assert (body["temperature"], body["max_tokens"], body["stop"], body["n"]) == (
        0.2,
        64,
        ["\n"],
        1,
    )


@row("C03")
def _extra_params(ep: LocalEndpoint) -> None:
    queue(ep, Reply.text("ok"))
    llm = chat(ep, extra_params={"top_p": 0.9})
    assert llm.extra_body == {"top_p": 0.9}
    llm.invoke("x")
    assert ep.last_request.body["top_p"] == 0.9


@row("C04")
def _stream_usage(ep: LocalEndpoint) -> None:
    queue(ep, Reply.text(["a", "b"], usage=(3, 2)), Reply.text(["a", "b"], usage=(3, 2)))
    with_usage = aggregate(list(chat(ep, stream_usage=True).stream("x")))
    assert with_usage.usage_metadata["total_tokens"] == 5
    without = list(chat(ep).stream("x", stream_usage=False))
    assert all(c.usage_metadata is None for c in without)
    assert "stream_usage" not in ep.last_request.body


@row("C05")
def _target_uri(ep: LocalEndpoint) -> None:
    queue(ep, Reply.text("ok"))
    with pytest.warns(DeprecationWarning):
        llm = ChatDatabricksServing(model="chat", target_uri=ep.host, token=ep.token)
    assert llm.invoke("x").text == "ok"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        default = ChatDatabricksServing(model="m", target_uri="databricks", host="https://h.net")
        assert default.host == "https://h.net"  # "databricks": the default workspace
        with pytest.raises(ConfigurationError, match="WorkspaceClient"):
            ChatDatabricksServing(model="m", target_uri="databricks://my-profile")


@row("C06")
def _workspace_client(ep: LocalEndpoint) -> None:
    class Config:
        host = ep.host

        def authenticate(self) -> dict[str, str]:
            return {"Authorization": f"Bearer {ep.token}"}

    class Client:
        config = Config()

    queue(ep, Reply.text("ok"))
    llm = ChatDatabricksServing(model="chat", workspace_client=Client(), max_retries=0)
    assert llm.invoke("x").text == "ok"


@row("C07")
def _timeout_and_retries(ep: LocalEndpoint) -> None:
    llm = chat(ep, timeout=5, max_retries=1)
    assert (llm.timeout, llm.max_retries) == (5, 1)
    before = len(ep.requests)
    with pytest.raises(TypeError, match="set it on the model"):
        llm.invoke("x", timeout=1)
    assert len(ep.requests) == before


@row("C08")
def _use_responses_api(ep: LocalEndpoint) -> None:
    with pytest.raises(TypeError, match="ChatDatabricksResponses"):
        ChatDatabricksServing(model="responder", use_responses_api=True)
    queue(ep, Reply.text("from the agent"), name="responder")
    agent = ChatDatabricksResponses(
        model="responder", use_responses_api=True, host=ep.host, token=ep.token
    )
    assert agent.invoke("x").text == "from the agent"


@row("C09")
def _custom_inputs(ep: LocalEndpoint) -> None:
    queue(ep, Reply.text("ok"))
    llm = chat(ep, custom_inputs={"a": 1}).bind(custom_inputs={"b": 2})
    llm.invoke("x", custom_inputs={"c": 3})
    assert ep.last_request.body["custom_inputs"] == {"a": 1, "b": 2, "c": 3}


@row("C10")
def _custom_outputs(ep: LocalEndpoint) -> None:
    queue(ep, Reply.text(["o", "k"], custom_outputs={"score": 1}))
    message = aggregate(list(chat(ep).stream("x")))
    assert message.response_metadata["custom_outputs"] == {"score": 1}


@row("C11")
def _bind_tools_choice(ep: LocalEndpoint) -> None:
    queue(ep, Reply.tool_call("Weather", {"city": "Rome"}))
    llm = chat(ep)
    bound = llm.bind_tools([Weather], tool_choice="Weather")
    assert bound.kwargs["tool_choice"] == {"type": "function", "function": {"name": "Weather"}}
    assert bound.invoke("x").tool_calls[0]["args"] == {"city": "Rome"}
    for unknown in ("Price", {"type": "function", "function": {"name": "Price"}}):
        with pytest.raises(ValueError, match="Price"):
            llm.bind_tools([Weather], tool_choice=unknown)


@row("C12")
def _json_schema_strict(ep: LocalEndpoint) -> None:
    gpt = chat(ep, model="databricks-gpt-5").with_structured_output(Weather, method="json_schema")
    spec = gpt.first.kwargs["response_format"]["json_schema"]
    assert spec["strict"] is True
    assert spec["schema"]["additionalProperties"] is False
    assert spec["schema"]["required"] == ["city", "unit"]
    claude = chat(ep, model="databricks-claude-sonnet-4").with_structured_output(
        Weather, method="json_schema"
    )
    assert "strict" not in claude.first.kwargs["response_format"]["json_schema"]
    queue(ep, Reply.text('{"city": "Rome", "unit": null}'))
    structured = chat(ep).with_structured_output(Weather, method="json_schema", strict=True)
    assert structured.invoke("x") == Weather(city="Rome")


@row("C13")
def _finish_reason(ep: LocalEndpoint) -> None:
    queue(ep, Reply.text("ok"))
    result = chat(ep).generate([[HumanMessage("x")]])
    assert result.generations[0][0].generation_info["finish_reason"] == "stop"


CLAUDE_USAGE = {
    "prompt_tokens": 5012,
    "completion_tokens": 20,
    "total_tokens": 5032,
    "cache_read_input_tokens": 4980,
    "cache_creation_input_tokens": 0,
}


def _claude_completion(usage: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "c1",
        "model": "claude",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
        ],
        "usage": usage,
    }


@row("C14")
def _cached_tokens_once(ep: LocalEndpoint) -> None:
    queue(ep, RawReply(body=_claude_completion(CLAUDE_USAGE)))
    usage = chat(ep).invoke("x").usage_metadata
    assert usage["input_tokens"] == 5012
    assert usage["input_token_details"] == {"cache_read": 4980}


@row("C15")
def _stream_usage_once(ep: LocalEndpoint) -> None:
    def event(text: str, usage: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        delta = {"role": "assistant", "content": text}
        return {
            "id": "c1",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            "usage": usage,
        }

    partial = {**CLAUDE_USAGE, "completion_tokens": None, "total_tokens": None}
    events = [event("a", partial), event("b", partial), event("", CLAUDE_USAGE, "stop")]
    queue(ep, RawReply(events=events))
    assert aggregate(list(chat(ep).stream("x"))).usage_metadata["input_tokens"] == 5012


@row("C16")
def _unknown_argument(ep: LocalEndpoint) -> None:
    with pytest.raises(UnknownArgumentError, match="did you mean 'custom_inputs'"):
        chat(ep, custom_input={"a": 1})


@row("C17")
def _databricks_options(ep: LocalEndpoint) -> None:
    queue(ep, Reply.text("ok"))
    chat(ep, databricks_options={"x": 1}).invoke("x", return_trace=True)
    assert ep.last_request.body["databricks_options"] == {"x": 1, "return_trace": True}


@row("C18")
def _reasoning_blocks(ep: LocalEndpoint) -> None:
    queue(ep, Reply.text("42", reasoning="6 times 7"))
    message = chat(ep).invoke("x")
    assert message.text == "42"
    kinds = [b.get("type") for b in message.content if isinstance(b, dict)]
    assert "reasoning" in kinds


@row("C19")
def _typed_errors(ep: LocalEndpoint) -> None:
    queue(ep, Reply.error(429, "REQUEST_LIMIT_EXCEEDED", "slow down"))
    with pytest.raises(RateLimitError) as caught:
        chat(ep).invoke("x")
    assert caught.value.status_code == 429
    assert caught.value.error_code == "REQUEST_LIMIT_EXCEEDED"


@row("C20")
def _agent_tool_calls(ep: LocalEndpoint) -> None:
    queue(
        ep,
        Reply.text("18C", steps=[ToolStep("get_weather", {"city": "Rome"}, "18C")]),
        name="responder",
    )
    agent = ChatDatabricksResponses(model="responder", host=ep.host, token=ep.token)
    message = agent.invoke("weather?")
    assert message.tool_calls == []
    kinds = [b.get("type") for b in message.content if isinstance(b, dict)]
    assert "server_tool_call" in kinds and "server_tool_result" in kinds


@row("C21")
def _stop_call_wins(ep: LocalEndpoint) -> None:
    queue(ep, Reply.text("ok"))
    chat(ep, stop=["A"]).invoke("x", stop=["B"])
    assert ep.last_request.body["stop"] == ["B"]


@row("C22")
def _ai_gateway(ep: LocalEndpoint) -> None:
    with pytest.raises(UnknownArgumentError, match="base_url"):
        chat(ep, use_ai_gateway=True)


# -- DatabricksEmbeddings ------------------------------------------------------------------------
def _with_embeddings(check: Callable[[LocalEndpoint], None]) -> Check:
    def run(_: LocalEndpoint) -> None:
        with LocalEndpoint({"hash": HashEmbeddingBackend(dimensions=4)}) as ep:
            check(ep)

    return run


def _embeddings(ep: LocalEndpoint, **fields: Any) -> DatabricksServingEmbeddings:
    fields.setdefault("endpoint", "hash")
    return DatabricksServingEmbeddings(host=ep.host, token=ep.token, **fields)


@row("E01")
@_with_embeddings
def _embeddings_endpoint(ep: LocalEndpoint) -> None:
    assert len(_embeddings(ep).embed_query("q")) == 4
    by_model = DatabricksServingEmbeddings(model="hash", host=ep.host, token=ep.token)
    assert len(by_model.embed_query("q")) == 4


@row("E02")
@_with_embeddings
def _embeddings_params(ep: LocalEndpoint) -> None:
    embeddings = _embeddings(ep, query_params={"q": 1}, documents_params={"d": 1})
    embeddings.embed_query("q")
    assert ep.last_request.body == {"input": ["q"], "q": 1}
    embeddings.embed_documents(["a"])
    assert ep.last_request.body == {"input": ["a"], "d": 1}


@row("E03")
@_with_embeddings
def _embeddings_target_uri(ep: LocalEndpoint) -> None:
    with pytest.warns(DeprecationWarning):
        embeddings = DatabricksServingEmbeddings(
            endpoint="hash", target_uri=ep.host, token=ep.token
        )
    assert len(embeddings.embed_query("q")) == 4


@row("E04")
@_with_embeddings
def _embeddings_batches(ep: LocalEndpoint) -> None:
    before = len(ep.requests)
    vectors = _embeddings(ep, batch_size=150).embed_documents([f"t{i}" for i in range(40)])
    assert len(vectors) == 40
    assert len(ep.requests) - before == 1  # ChatDatabricks' sibling would send two batches


# -- ChatOpenAI(base_url=...) --------------------------------------------------------------------
@row("O01")
def _openai_style_construction(ep: LocalEndpoint) -> None:
    queue(ep, Reply.text("ok"))
    llm = ChatDatabricksServing(
        model="chat",
        base_url=f"{ep.host}/serving-endpoints",
        api_key=ep.token,
        route="chat/completions",
    )
    assert llm.invoke("x").text == "ok"
    assert ep.last_request.path == "/serving-endpoints/chat/completions"
    assert ep.last_request.body["model"] == "chat"


@row("O02")
def _model_kwargs(ep: LocalEndpoint) -> None:
    queue(ep, Reply.text("ok"))
    chat(ep, model_kwargs={"seed": 7}).invoke("x")
    assert ep.last_request.body["seed"] == 7


@row("O03")
def _extra_body(ep: LocalEndpoint) -> None:
    queue(ep, Reply.text("ok"))
    chat(ep, extra_body={"user": "ana"}).invoke("x")
    assert ep.last_request.body["user"] == "ana"


@row("O04")
def _openai_stream_usage(ep: LocalEndpoint) -> None:
    queue(ep, Reply.text(["a", "b"], usage=(1, 2)))
    assert aggregate(list(chat(ep, stream_usage=True).stream("x"))).usage_metadata


@row("O05")
def _openai_only_fields(ep: LocalEndpoint) -> None:
    with pytest.raises(UnknownArgumentError, match="extra_body"):
        chat(ep, top_p=0.5)
    queue(ep, Reply.text("ok"))
    chat(ep).invoke("x", top_p=0.5)
    assert ep.last_request.body["top_p"] == 0.5


@row("O06")
def _openai_cached_tokens(ep: LocalEndpoint) -> None:
    usage = {
        "prompt_tokens": 2006,
        "completion_tokens": 300,
        "total_tokens": 2306,
        "prompt_tokens_details": {"cached_tokens": 1920},
    }
    queue(ep, RawReply(body=_claude_completion(usage)))
    got = chat(ep).invoke("x").usage_metadata
    assert got["input_tokens"] == 2006
    assert got["input_token_details"] == {"cache_read": 1920}


@row("O07")
def _structured_default_method(ep: LocalEndpoint) -> None:
    queue(ep, Reply.tool_call("Weather", {"city": "Rome"}))
    assert chat(ep).with_structured_output(Weather).invoke("x") == Weather(city="Rome")
    assert ep.last_request.body["tool_choice"]["function"]["name"] == "Weather"


# -- the guide and the checks match ---------------------------------------------------------------
def test_every_row_has_a_check_and_every_check_a_row() -> None:
    documented = rows()
    assert len(documented) == len(set(documented)), "duplicate row ids in docs/migrating.md"
    assert set(documented) == set(CHECKS)


@pytest.mark.parametrize("row_id", rows())
def test_row(serving: LocalEndpoint, row_id: str) -> None:
    CHECKS[row_id](serving)
