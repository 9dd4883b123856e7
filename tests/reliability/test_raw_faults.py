"""Faults below HTTP, from a raw-socket raw_servers: one deadline per call, no second send once a
reply started, ``partial`` on every error after a stream began, TLS and host mistakes.

Every case asserts the error type, what its message says, ``partial`` where a stream began,
the wall time against the configured ``timeout`` (generous bounds: the machine is loaded) and
how many requests reached the server.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import time
from typing import Any

import pytest
from langchain_core.messages import AIMessageChunk

from langchain_dbx_serving import AgentEndpoint, ChatDatabricksResponses, ChatDatabricksServing
from langchain_dbx_serving.errors import (
    DatabricksServingError,
    MalformedResponseError,
    ServingConnectionError,
    ServingTimeoutError,
    StreamInterruptedError,
)
from tests.reliability.raw_server import (
    CLOSE,
    HOLD,
    RESET,
    RawServer,
    Repeat,
    Trickle,
    http_head,
)

TOKEN = "raw-server-token-0123456789"
SSE = http_head(content_type="text/event-stream", Transfer_Encoding="chunked")
# Slack on top of the deadline for a loaded 2-core machine; a hang would take minutes.
SLACK = 3.0


def chunk(data: bytes) -> bytes:
    """One chunk of a chunked transfer encoding."""
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def chat_event(text: str) -> bytes:
    delta = {"choices": [{"index": 0, "delta": {"content": text}}]}
    return b"data: " + json.dumps(delta).encode() + b"\n\n"


def responses_event(text: str) -> bytes:
    event = {"type": "response.output_text.delta", "item_id": "m1", "delta": text}
    return b"data: " + json.dumps(event).encode() + b"\n\n"


def whole_reply(text: str = "fine") -> bytes:
    body = json.dumps(
        {"choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]}
    ).encode()
    return http_head(Content_Length=str(len(body))) + body


def chat(srv: RawServer, **kw: Any) -> ChatDatabricksServing:
    kw.setdefault("max_retries", 3)
    return ChatDatabricksServing(endpoint="m", host=srv.url, token=TOKEN, **kw)


def run(mode: str, model: Any, prompt: Any = "hi") -> Any:
    """Call ``model`` one of five ways; returns what came back (or raises)."""
    if mode == "invoke":
        return model.invoke(prompt)
    if mode == "invoke_streaming":
        return model.invoke(prompt, stream=True)
    if mode == "stream":
        return list(model.stream(prompt))
    if mode == "ainvoke":
        return asyncio.run(model.ainvoke(prompt))

    async def consume() -> list[Any]:
        return [c async for c in model.astream(prompt)]

    return asyncio.run(consume())


def timed(fn: Any, *args: Any) -> tuple[BaseException, float]:
    start = time.monotonic()
    with pytest.raises(DatabricksServingError) as info:
        fn(*args)
    return info.value, time.monotonic() - start


# -- one deadline per call -----------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["stream", "astream", "invoke_streaming"])
def test_keep_alive_comments_cannot_extend_the_deadline(raw_servers: Any, mode: str) -> None:
    srv = raw_servers([SSE, chunk(chat_event("Hel")), Repeat(chunk(b": PROCESSING\n\n"), 0.05)])
    error, elapsed = timed(run, mode, chat(srv, timeout=1.5))
    assert isinstance(error, ServingTimeoutError)
    assert "timeout=1.5s" in str(error) and "waiting for the rest of the reply" in str(error)
    assert elapsed < 1.5 + SLACK
    assert isinstance(error.partial, AIMessageChunk) and error.partial.text == "Hel"
    assert len(srv.requests) == 1


@pytest.mark.parametrize("mode", ["invoke", "ainvoke"])
def test_a_trickled_reply_cannot_extend_the_deadline(raw_servers: Any, mode: str) -> None:
    body = b'{"choices": [{"index": 0, "message": {"content": "' + b"x" * 10_000 + b'"}}]}'
    srv = raw_servers([http_head(Content_Length=str(len(body))), Trickle(body, 0.05)])
    error, elapsed = timed(run, mode, chat(srv, timeout=1.5))
    assert isinstance(error, ServingTimeoutError)
    assert "gave up after" in str(error) and "timeout=1.5s" in str(error)
    assert elapsed < 1.5 + SLACK
    assert len(srv.requests) == 1


@pytest.mark.parametrize("mode", ["invoke", "ainvoke"])
def test_the_deadline_covers_retries(raw_servers: Any, mode: str) -> None:
    busy = http_head("503 Service Unavailable", Retry_After="1", Content_Length="2") + b"{}"
    srv = raw_servers([busy])
    error, elapsed = timed(run, mode, chat(srv, timeout=1.5, max_retries=10))
    assert isinstance(error, DatabricksServingError)
    assert elapsed < 1.5 + SLACK
    assert len(srv.requests) <= 2


@pytest.mark.parametrize("mode", ["invoke", "ainvoke"])
def test_silence_before_the_status_line_ends_at_the_deadline(raw_servers: Any, mode: str) -> None:
    srv = raw_servers([HOLD])
    error, elapsed = timed(run, mode, chat(srv, timeout=1.0))
    assert isinstance(error, ServingTimeoutError)
    assert "waiting for the first byte of the reply" in str(error)
    assert elapsed < 1.0 + SLACK
    assert len(srv.requests) == 1  # a read timeout is never re-sent


# -- never a second send once a reply started ----------------------------------------------------
@pytest.mark.parametrize(
    "cut",
    [
        [b"HTTP/1.1 200 OK\r\n", CLOSE],
        [b"HTTP/1.1 200 OK\r\nContent-Ty", CLOSE],
        [b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n", RESET],
        [b"HTTP/1.", RESET],
        [b"H", CLOSE],
    ],
    ids=[
        "status-line-close",
        "mid-header-close",
        "mid-headers-reset",
        "half-status-reset",
        "1-byte",
    ],
)
@pytest.mark.parametrize("mode", ["invoke", "ainvoke", "stream"])
def test_a_reply_cut_inside_its_headers_is_never_resent(
    raw_servers: Any, cut: Any, mode: str
) -> None:
    srv = raw_servers(cut, [whole_reply()])
    error, _ = timed(run, mode, chat(srv, timeout=10))
    assert isinstance(error, (ServingConnectionError, StreamInterruptedError))
    assert len(srv.requests) == 1, "the request was sent twice"
    assert "retry" not in str(error).split("—")[0]


@pytest.mark.parametrize("mode", ["invoke", "ainvoke"])
def test_a_connection_closed_before_any_byte_is_retried(raw_servers: Any, mode: str) -> None:
    srv = raw_servers([CLOSE], [whole_reply("second try")])
    assert run(mode, chat(srv, timeout=10)).text == "second try"
    assert len(srv.requests) == 2


# -- partial on every error after a stream began -------------------------------------------------
def broken_chunk() -> bytes:
    return b"zz\r\nnot a chunk size\r\n"


@pytest.mark.parametrize("mode", ["stream", "astream", "invoke_streaming"])
@pytest.mark.parametrize("fault", ["drop", "broken-chunked", "stall"])
def test_errors_after_a_chat_stream_began_carry_partial(
    raw_servers: Any, mode: str, fault: str
) -> None:
    tail = {"drop": [CLOSE], "broken-chunked": [broken_chunk(), CLOSE], "stall": [HOLD]}[fault]
    srv = raw_servers([SSE, chunk(chat_event("Hel")), chunk(chat_event("lo")), *tail])
    error, elapsed = timed(run, mode, chat(srv, timeout=1.5))
    assert isinstance(error, (StreamInterruptedError, ServingTimeoutError))
    assert isinstance(error.partial, AIMessageChunk)
    assert error.partial.text == "Hello"
    assert elapsed < 1.5 + SLACK


@pytest.mark.parametrize("mode", ["stream", "astream", "invoke_streaming"])
def test_a_malformed_event_after_a_stream_began_carries_partial(
    raw_servers: Any, mode: str
) -> None:
    srv = raw_servers([SSE, chunk(chat_event("Hel")), chunk(b"data: {not json\n\n"), HOLD])
    error, _ = timed(run, mode, chat(srv, timeout=5))
    assert isinstance(error, MalformedResponseError)
    assert error.partial is not None and error.partial.text == "Hel"


def test_errors_inside_a_chain_carry_partial(raw_servers: Any) -> None:
    from langchain_core.output_parsers import StrOutputParser

    srv = raw_servers([SSE, chunk(chat_event("Hel")), CLOSE])
    chain = chat(srv, timeout=5) | StrOutputParser()
    with pytest.raises(StreamInterruptedError) as info:
        list(chain.stream("hi"))
    assert info.value.partial.text == "Hel"


@pytest.mark.parametrize("mode", ["stream", "astream"])
@pytest.mark.parametrize("fault", ["drop", "stall"])
def test_agent_endpoint_stream_errors_carry_an_agent_response(
    raw_servers: Any, mode: str, fault: str
) -> None:
    tail = [CLOSE] if fault == "drop" else [HOLD]
    srv = raw_servers([SSE, chunk(responses_event("Hel")), chunk(responses_event("lo")), *tail])
    agent = AgentEndpoint("m", host=srv.url, token=TOKEN, timeout=1.5)
    error, elapsed = timed(run, mode, agent)
    assert isinstance(error, (StreamInterruptedError, ServingTimeoutError))
    assert error.partial is not None and error.partial.text == "Hello"
    assert type(error.partial).__name__ == "AgentResponse"
    assert elapsed < 1.5 + SLACK


def test_a_complete_stream_whose_connection_then_breaks_is_complete(raw_servers: Any) -> None:
    done = chunk(chat_event("Hi")) + chunk(b"data: [DONE]\n\n")
    srv = raw_servers([SSE, done, broken_chunk(), CLOSE])
    assert "".join(c.text for c in chat(srv, timeout=5).stream("hi")) == "Hi"
    resp = b'data: {"type": "response.completed", "response": {"output": []}}\n\n'
    srv2 = raw_servers([SSE, chunk(responses_event("Hi")) + chunk(resp), CLOSE])
    model = ChatDatabricksResponses(endpoint="m", host=srv2.url, token=TOKEN, timeout=5)
    assert "".join(c.text for c in model.stream("hi")) == "Hi"


# -- memory bounds on decoded bytes --------------------------------------------------------------
@pytest.mark.parametrize("encoding", ["gzip", "zstd", "br"])
def test_compression_bombs_stop_at_the_reply_bound(raw_servers: Any, encoding: str) -> None:
    import tracemalloc

    raw = b'{"choices": [{"message": {"content": "' + b"a" * (64 * 1024 * 1024) + b'"}}]}'
    if encoding == "gzip":
        bomb = gzip.compress(raw, 9)
    elif encoding == "zstd":
        import zstandard

        bomb = zstandard.ZstdCompressor(level=3).compress(raw)
    else:
        bomb = b"\x8b" * 64  # whatever it is, it is never decoded unbounded
    del raw
    head = http_head(Content_Encoding=encoding, Content_Length=str(len(bomb)))
    srv = raw_servers([head + bomb])
    model = chat(srv, timeout=10)
    model.transport.max_reply_bytes = 1024 * 1024
    tracemalloc.start()
    try:
        with pytest.raises(MalformedResponseError) as info:
            model.invoke("hi")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 1024 * 1024
    assert encoding in str(info.value) or "larger than 1048576" in str(info.value)
    assert len(srv.requests) == 1


def test_a_gzip_reply_within_the_bound_is_decoded(raw_servers: Any) -> None:
    body = json.dumps({"choices": [{"message": {"content": "zipped"}}]}).encode()
    bomb = gzip.compress(body)
    srv = raw_servers([http_head(Content_Encoding="gzip", Content_Length=str(len(bomb))) + bomb])
    assert chat(srv).invoke("hi").text == "zipped"


# -- hosts -----------------------------------------------------------------------------------------
def test_tls_to_a_plain_http_server_fails_once_and_says_so(raw_servers: Any) -> None:
    srv = raw_servers([HOLD], greeting=b"HTTP/1.1 400 Bad Request\r\n\r\n")
    model = ChatDatabricksServing(
        endpoint="m", host=f"https://127.0.0.1:{srv.port}", token=TOKEN, max_retries=3, timeout=5
    )
    error, _ = timed(model.invoke, "hi")
    assert isinstance(error, ServingConnectionError)
    assert "TLS" in str(error) and f"http://127.0.0.1:{srv.port}" in str(error)
    assert srv.connections == 1, "a TLS failure is not transient and must not be retried"
