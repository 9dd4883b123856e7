"""An endpoint name is one path segment: no name moves a request to another path, query or
fragment of the workspace with the caller's token."""

from __future__ import annotations

import re
import string
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from langchain_dbx_serving import (
    AgentEndpoint,
    ChatDatabricksResponses,
    ChatDatabricksServing,
    ConfigurationError,
    DatabricksServingEmbeddings,
    EndpointNotFoundError,
)
from tests.security.echoes import dapi
from tests.security.rawserver import RawServer, json_response

HOSTILE = [
    "../../api/2.0/secrets/put",
    "..",
    ".",
    "x?y#z",
    "x#frag",
    "a/b",
    "%2e%2e",
    "ep%2Finvocations",
    "x y",
    "ep\n",
    "",
    "\u0435p",  # Cyrillic e
    "x\\..\\y",
    "@evil.example",
]


@pytest.fixture(scope="module")
def server() -> Iterator[RawServer]:
    with RawServer(lambda request: json_response(404, {"message": "no"})) as raw:
        yield raw


def calls(name: str, host: str) -> list[Any]:
    fields: dict[str, Any] = {"endpoint": name, "host": host, "token": dapi(), "max_retries": 0}
    chat = ChatDatabricksServing(**fields)
    responses = ChatDatabricksResponses(**fields, route="invocations")
    embeddings = DatabricksServingEmbeddings(**fields)
    ways = [
        lambda: chat.invoke("hi"),
        lambda: list(chat.stream("hi")),
        lambda: responses.invoke("hi"),
        lambda: AgentEndpoint(chat=responses).invoke("hi"),
        lambda: embeddings.embed_query("hi"),
    ]
    if name:  # a call-time name overrides the constructor's (an empty one does not)
        ok = ChatDatabricksServing(**{**fields, "endpoint": "ok"})
        ways += [lambda: ok.invoke("hi", endpoint=name), lambda: ok.invoke("hi", model=name)]
    return ways


@pytest.mark.parametrize("name", HOSTILE)
def test_a_hostile_endpoint_name_sends_nothing(server: RawServer, name: str) -> None:
    server.requests.clear()
    for call in calls(name, server.url):
        with pytest.raises(ConfigurationError, match="invalid serving endpoint name"):
            call()
    assert server.requests == []


@pytest.mark.parametrize(
    "name", ["databricks-claude-sonnet-4", "my_agent", "agents_main-default-bot", "gpt-4.1"]
)
def test_real_endpoint_names_are_sent_as_they_are(server: RawServer, name: str) -> None:
    server.requests.clear()
    llm = ChatDatabricksServing(endpoint=name, host=server.url, token=dapi(), max_retries=0)
    with pytest.raises(EndpointNotFoundError):
        llm.invoke("hi")  # the server answers 404
    assert [r.target for r in server.requests] == [f"/serving-endpoints/{name}/invocations"]


@settings(max_examples=150, deadline=None)
@given(name=st.text(alphabet=string.printable + "\u00e9\u200b/%.?#", max_size=20))
def test_any_name_is_one_segment_or_refused(server: RawServer, name: str) -> None:
    server.requests.clear()
    llm = ChatDatabricksServing(endpoint=name, host=server.url, token=dapi(), max_retries=0)
    try:
        llm.invoke("hi")
    except ConfigurationError:
        assert server.requests == []
        return
    except Exception:
        pass
    (request,) = server.requests
    assert re.fullmatch(r"/serving-endpoints/[A-Za-z0-9_.-]+/invocations", request.target)
    assert request.target == f"/serving-endpoints/{name}/invocations"


@pytest.mark.parametrize(
    "base_url",
    ["https://app.example/x?token=1", "https://app.example/#f", "https://user:pw@app.example"],
)
def test_an_app_url_with_a_query_fragment_or_user_info_is_refused(base_url: str) -> None:
    llm = ChatDatabricksResponses(endpoint="agent", base_url=base_url, token=dapi())
    with pytest.raises(ConfigurationError, match="base_url") as info:
        llm.invoke("hi")
    assert "pw" not in str(info.value) and "token=1" not in str(info.value)
