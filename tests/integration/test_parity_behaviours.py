"""Behaviours databricks-langchain's ChatDatabricks has (its unit tests pin them down) and a
user migrating expects from us, each checked over loopback against the local endpoint."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from pydantic import BaseModel

from langchain_dbx_serving import (
    AgentEndpoint,
    ChatDatabricksResponses,
    ChatDatabricksServing,
    DatabricksServingEmbeddings,
)
from langchain_dbx_serving.errors import ConfigurationError, UnknownArgumentError
from langchain_dbx_serving.testing import HashEmbeddingBackend, LocalEndpoint, RawReply, Reply
from tests.support.calls import MODES, aggregate, ask
from tests.support.serving import queue


def chat(ep: LocalEndpoint, endpoint: str = "chat", **fields: Any) -> ChatDatabricksServing:
    return ChatDatabricksServing(endpoint=endpoint, host=ep.host, token=ep.token, **fields)


# -- the one-line migration ---------------------------------------------------------------------
def test_a_chat_databricks_constructor_call_works_unchanged(serving) -> None:
    # Exactly what a ChatDatabricks user writes (host/token come from the environment there
    # and here; the test passes them through the same environment variables).
    queue(serving, Reply.text(["Hel", "lo"], usage=(9, 2)))
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DATABRICKS_HOST", serving.host)
        env.setenv("DATABRICKS_TOKEN", serving.token)
        llm = ChatDatabricksServing(
            model="chat", extra_params={"top_p": 0.9, "top_k": 40}, stream_usage=True
        )
        chunks = list(llm.stream("hi"))
    assert aggregate(chunks).text == "Hello"
    assert aggregate(chunks).usage_metadata == {
        "input_tokens": 9,
        "output_tokens": 2,
        "total_tokens": 11,
    }
    body = serving.last_request.body
    assert body["top_p"] == 0.9 and body["top_k"] == 40
    assert "stream_usage" not in body and "extra_params" not in body


# -- no silent drops: unknown constructor arguments ---------------------------------------------
@pytest.mark.parametrize(
    ("cls", "typo", "nearest"),
    [
        (ChatDatabricksServing, "custom_input", "custom_inputs"),
        (ChatDatabricksServing, "return_traces", "return_trace"),
        (ChatDatabricksServing, "max_token", "max_tokens"),
        (ChatDatabricksResponses, "temprature", "temperature"),
        (DatabricksServingEmbeddings, "batchsize", "batch_size"),
        (DatabricksServingEmbeddings, "query_param", "query_params"),
    ],
)
def test_unknown_arguments_raise_with_the_nearest_field(cls, typo, nearest) -> None:
    with pytest.raises(UnknownArgumentError) as caught:
        cls(model="m", host="https://adb-1.azuredatabricks.net", **{typo: 1})
    assert isinstance(caught.value, TypeError)
    assert caught.value.suggestion == nearest
    assert f"did you mean {nearest!r}" in str(caught.value)


def test_agent_endpoint_refuses_unknown_arguments() -> None:
    with pytest.raises(TypeError, match="did you mean 'custom_inputs'"):
        AgentEndpoint("a", custom_input={"x": 1})


def test_an_argument_with_no_near_field_still_raises() -> None:
    with pytest.raises(UnknownArgumentError, match="'zzzz'") as caught:
        ChatDatabricksServing(model="m", zzzz=1)
    assert caught.value.suggestion is None


# -- aliases ------------------------------------------------------------------------------------
def test_model_kwargs_and_extra_params_go_to_the_body(serving) -> None:
    queue(serving, Reply.text("ok"))
    llm = chat(serving, model_kwargs={"top_p": 0.5, "seed": 1}, extra_body={"seed": 2})
    llm.invoke("hi")
    body = serving.last_request.body
    assert body["top_p"] == 0.5
    assert body["seed"] == 2  # extra_body itself wins over its aliases


def test_target_uri_maps_to_host_with_a_deprecation_warning(serving) -> None:
    queue(serving, Reply.text("ok"))
    with pytest.warns(DeprecationWarning, match="target_uri"):
        llm = ChatDatabricksServing(model="chat", target_uri=serving.host, token=serving.token)
    assert llm.invoke("hi").text == "ok"


def test_target_uri_databricks_means_the_default_workspace() -> None:
    with pytest.warns(DeprecationWarning):
        llm = ChatDatabricksServing(model="m", target_uri="databricks", host="https://h.net")
    assert llm.host == "https://h.net"


@pytest.mark.parametrize("uri", ["databricks://my-profile", "mlflow-deployments"])
def test_target_uri_that_cannot_be_honoured_is_refused(uri) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        with pytest.raises(ConfigurationError, match="workspace_client"):
            ChatDatabricksServing(model="m", target_uri=uri)


def test_target_uri_with_workspace_client_is_refused() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        with pytest.raises(ConfigurationError, match="not both"):
            ChatDatabricksServing(model="m", target_uri="databricks", workspace_client=object())


def test_embeddings_query_and_documents_params() -> None:
    with LocalEndpoint({"hash": HashEmbeddingBackend(dimensions=8)}) as ep:
        embeddings = DatabricksServingEmbeddings(
            model="hash",
            host=ep.host,
            token=ep.token,
            extra_body={"user": "ana"},
            query_params={"instruction": "Represent the query"},
            documents_params={"instruction": "Represent the document", "user": "bo"},
        )
        assert len(embeddings.embed_query("q")) == 8
        assert ep.last_request.body == {
            "input": ["q"],
            "user": "ana",
            "instruction": "Represent the query",
        }
        assert len(embeddings.embed_documents(["a", "b"])) == 2
        assert ep.last_request.body == {
            "input": ["a", "b"],
            "user": "bo",
            "instruction": "Represent the document",
        }


# -- data loss over the wire --------------------------------------------------------------------
@pytest.mark.parametrize("choices", ["absent", None, []])
@pytest.mark.parametrize("mode", MODES)
async def test_agent_delta_next_to_empty_choices_over_the_wire(serving, choices, mode) -> None:
    def event(text: str, outputs: dict[str, Any]) -> dict[str, Any]:
        e: dict[str, Any] = {
            "delta": {"role": "assistant", "content": text, "id": "m1"},
            "custom_outputs": outputs,
        }
        return e if choices == "absent" else {**e, "choices": choices}

    if mode in ("invoke", "ainvoke"):
        body = {
            "messages": [{"role": "assistant", "content": "Hello", "id": "m1"}],
            "custom_outputs": {"a": 1},
        }
        if choices != "absent":
            body["choices"] = choices
        queue(serving, RawReply(body=body))
        expected_outputs = {"a": 1}
    else:
        queue(serving, RawReply(events=[event("Hel", {"a": 1}), event("lo", {"b": 2})]))
        expected_outputs = {"a": 1, "b": 2}
    reply = await ask(chat(serving), "hi", mode)
    assert reply.text == "Hello"
    assert reply.response_metadata["custom_outputs"] == expected_outputs


# -- with_structured_output(method="json_schema"): strict by model family ------------------------
class Answer(BaseModel):
    """An answer with an optional source."""

    answer: str
    source: str | None = None


@pytest.mark.parametrize(
    ("endpoint", "strict"),
    [
        ("databricks-gpt-5", True),
        ("databricks-gpt-oss-120b", True),
        ("my-openai-o3-mini", True),
        ("databricks-claude-sonnet-4", None),
        ("databricks-meta-llama-3-3-70b-instruct", None),
        ("databricks-gemini-2-5-pro", None),
        ("my-custom-model", None),
    ],
)
def test_json_schema_strict_follows_the_model_family(serving, endpoint, strict) -> None:
    structured = chat(serving, endpoint=endpoint).with_structured_output(
        Answer, method="json_schema"
    )
    bound = structured.first
    spec = bound.kwargs["response_format"]["json_schema"]
    assert spec.get("strict") is strict
    schema = spec["schema"]
    if strict:
        assert schema["additionalProperties"] is False
        assert set(schema["required"]) == {"answer", "source"}
        assert {"type": "null"} in schema["properties"]["source"]["anyOf"]
    else:
        assert "additionalProperties" not in schema
        assert schema["required"] == ["answer"]


def test_json_schema_strict_over_the_wire_and_parsed(serving) -> None:
    queue(serving, Reply.text('{"answer": "42", "source": null}'))
    llm = chat(serving, endpoint="chat")
    result = llm.with_structured_output(Answer, method="json_schema", strict=True).invoke("q")
    assert result == Answer(answer="42")
    spec = serving.last_request.body["response_format"]["json_schema"]
    assert spec["strict"] is True
    assert spec["schema"]["additionalProperties"] is False


def test_json_schema_explicit_strict_false_is_sent_as_is(serving) -> None:
    structured = chat(serving, endpoint="databricks-gpt-5").with_structured_output(
        Answer, method="json_schema", strict=False
    )
    spec = structured.first.kwargs["response_format"]["json_schema"]
    assert spec["strict"] is False
    assert "additionalProperties" not in spec["schema"]


# -- bind_tools(tool_choice=...) ----------------------------------------------------------------
class GetWeather(BaseModel):
    """Get the weather."""

    city: str


@pytest.mark.parametrize(
    "choice",
    ["GetPrice", {"type": "function", "function": {"name": "GetPrice"}}, {"name": "GetPrice"}],
)
@pytest.mark.parametrize("cls", [ChatDatabricksServing, ChatDatabricksResponses])
def test_tool_choice_naming_an_unbound_tool_raises_at_bind_time(cls, choice) -> None:
    llm = cls(model="m", host="https://adb-1.azuredatabricks.net")
    with pytest.raises(ValueError, match=r"GetPrice.*GetWeather"):
        llm.bind_tools([GetWeather], tool_choice=choice)


def test_tool_choice_keywords_and_bound_names_pass(serving) -> None:
    llm = chat(serving)
    for choice in ("auto", "none", "required", "any", True, "GetWeather"):
        llm.bind_tools([GetWeather], tool_choice=choice)


@pytest.mark.parametrize("name", ["chat", "responder"])
def test_binding_no_tools_sends_no_tools_key(serving, name) -> None:
    # OpenAI-compatible routes answer 400 to "tools": [] ("[] is too short"); create_agent
    # with no tools and a response_format binds an empty list.
    queue(serving, Reply.text("ok"), name=name)
    cls = ChatDatabricksServing if name == "chat" else ChatDatabricksResponses
    llm = cls(model=name, host=serving.host, token=serving.token)
    assert llm.bind_tools([], tool_choice="auto").invoke("hi").text == "ok"
    assert "tools" not in serving.last_request.body
    assert "tool_choice" not in serving.last_request.body


@pytest.mark.parametrize("choice", ["required", "any", True])
def test_requiring_a_tool_call_with_no_tools_raises_at_bind_time(serving, choice) -> None:
    with pytest.raises(ValueError, match="no tools"):
        chat(serving).bind_tools([], tool_choice=choice)


# -- finish_reason in generation_info, as langchain-openai --------------------------------------
def test_finish_reason_in_generation_info_invoke_and_stream(serving) -> None:
    queue(serving, Reply.text("ok"), Reply.text(["o", "k"]))
    llm = chat(serving)
    result = llm.generate([[HumanMessage("hi")]])
    assert result.generations[0][0].generation_info["finish_reason"] == "stop"
    generations = list(llm._stream([HumanMessage("hi")]))
    infos = [g.generation_info for g in generations if g.generation_info]
    assert infos and infos[-1]["finish_reason"] == "stop"


def test_finish_reason_reaches_on_llm_end_when_streaming(serving) -> None:
    queue(serving, Reply.tool_call("GetWeather", {"city": "Rome"}))
    llm = chat(serving, streaming=True)
    result = llm.generate([[HumanMessage("hi")]])
    assert result.generations[0][0].generation_info["finish_reason"] == "tool_calls"


# -- refusal blocks in responses input ----------------------------------------------------------
def test_refusal_block_becomes_a_part_of_the_assistant_message(serving) -> None:
    queue(serving, Reply.text("ok"), name="responder")
    history = [
        HumanMessage("do something bad"),
        AIMessage(
            content=[
                {"type": "text", "text": "Sorry."},
                {"type": "refusal", "refusal": "I cannot do that."},
            ],
            id="msg_1",
        ),
        HumanMessage("ok then"),
    ]
    ChatDatabricksResponses(model="responder", host=serving.host, token=serving.token).invoke(
        history
    )
    items = serving.last_request.body["input"]
    assistant = [i for i in items if i.get("role") == "assistant"]
    assert len(assistant) == 1
    assert assistant[0]["content"] == [
        {"type": "output_text", "text": "Sorry.", "annotations": []},
        {"type": "refusal", "refusal": "I cannot do that."},
    ]
    assert not [i for i in items if i.get("type") == "refusal"]


def test_responses_stream_custom_outputs_of_every_event_accumulate(serving) -> None:
    item = {
        "type": "message",
        "id": "m1",
        "role": "assistant",
        "content": [{"type": "output_text", "text": "ok", "annotations": []}],
    }
    events = [
        {
            "type": "response.output_text.delta",
            "item_id": "m1",
            "delta": "ok",
            "custom_outputs": {"a": 1},
        },
        {"type": "response.output_item.done", "item": item, "custom_outputs": {"b": 2}},
        {"custom_outputs": {"a": 3}},
    ]
    queue(serving, RawReply(events=events), name="responder")
    agent = ChatDatabricksResponses(model="responder", host=serving.host, token=serving.token)
    message = aggregate(list(agent.stream("hi")))
    assert message.text == "ok"
    assert message.response_metadata["custom_outputs"] == {"a": 3, "b": 2}
