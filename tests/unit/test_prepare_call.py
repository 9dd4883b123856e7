"""``prepare_call``: the chat base's public way to build a call's request without sending it
(what ``AgentEndpoint`` uses, instead of the chat model's private ``_prepare``)."""

from __future__ import annotations

from langchain_core.messages import HumanMessage

from langchain_dbx_serving import ChatDatabricksResponses


def test_prepare_call_builds_the_request_a_call_would_send_without_sending_it() -> None:
    chat = ChatDatabricksResponses(
        endpoint="agent",
        host="https://example.cloud.databricks.com",
        token="dapi-test",
        custom_inputs={"tier": "gold"},
    )
    call = chat.prepare_call(
        [HumanMessage("hi")],
        {"custom_inputs": {"user": "u1"}, "background_timeout": 5},
        request={"context": {"conversation_id": "c1"}},
    )
    assert call.url == "https://example.cloud.databricks.com/serving-endpoints/responses"
    assert call.body == {
        "input": [{"role": "user", "content": "hi"}],
        "custom_inputs": {"tier": "gold", "user": "u1"},  # merged key by key
        "context": {"conversation_id": "c1"},
        "model": "agent",
    }  # background_timeout steers the call and is never sent (the subclass's _prepare)
    assert chat.prepare_call([HumanMessage("hi")], stream=True).body["stream"] is True
