"""The per-event guard of the chat streams (a ``try``/``except`` around each event, no scope
object): a decoder that fails on an event in a way it does not type itself (a bare
``KeyError``) still surfaces as ``MalformedResponseError`` naming the event, the endpoint and
the request id, with the text streamed before it as ``partial``; our own errors pass as they
are, their endpoint and request id filled."""

from __future__ import annotations

import json
from typing import Any

import pytest
from langchain_core.messages import AIMessageChunk

from langchain_dbx_serving.errors import AgentError, MalformedResponseError
from langchain_dbx_serving.protocols import _chat_stream
from tests.reliability.raw_server import http_head
from tests.reliability.test_raw_faults import chat, chat_event, chunk, run

REQUEST_ID = "req-guard-1"
HEAD = http_head(
    content_type="text/event-stream", Transfer_Encoding="chunked", x_request_id=REQUEST_ID
)


@pytest.fixture
def bare_key_error_on_second(monkeypatch: pytest.MonkeyPatch) -> None:
    real = _chat_stream.StreamDecoder._on_plain_text
    seen: list[str] = []

    def flaky(self: Any, choice: dict[str, Any], text: str | None) -> Any:
        seen.append(text or "")
        if len(seen) == 2:
            raise KeyError("content")
        return real(self, choice, text)

    monkeypatch.setattr(_chat_stream.StreamDecoder, "_on_plain_text", flaky)


@pytest.mark.parametrize("mode", ["stream", "astream", "invoke_streaming"])
def test_a_bare_error_while_decoding_an_event_is_typed_with_what_arrived(
    raw_servers: Any, bare_key_error_on_second: None, mode: str
) -> None:
    srv = raw_servers([HEAD, chunk(chat_event("Hel")), chunk(chat_event("lo")), chunk(b"")])
    with pytest.raises(MalformedResponseError) as info:
        run(mode, chat(srv))
    error = info.value
    assert "endpoint 'm' sent a stream event of an unexpected shape (KeyError" in str(error)
    assert '"lo"' in (error.event or "")
    assert error.endpoint == "m" and error.request_id == REQUEST_ID
    assert isinstance(error.partial, AIMessageChunk) and error.partial.text == "Hel"
    assert error.__suppress_context__  # raised `from None`, as the scope object did
    assert len(srv.requests) == 1


@pytest.mark.parametrize("mode", ["stream", "astream"])
def test_our_own_error_in_an_event_passes_as_it_is_with_endpoint_and_request_id(
    raw_servers: Any, mode: str
) -> None:
    failure = {"error_code": "RATE_LIMIT", "message": "slow down"}
    event = b"data: " + json.dumps(failure).encode() + b"\n\n"
    srv = raw_servers([HEAD, chunk(chat_event("Hel")), chunk(event), chunk(b"")])
    with pytest.raises(AgentError) as info:
        run(mode, chat(srv))
    error = info.value
    assert "RATE_LIMIT: slow down" in str(error)
    assert error.endpoint == "m" and error.request_id == REQUEST_ID
    assert isinstance(error.partial, AIMessageChunk) and error.partial.text == "Hel"
