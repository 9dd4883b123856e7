"""Properties of the transport with the protocol decoders behind it, checked with Hypothesis.

Replies travel through the real :class:`Transport` over an ``httpx.MockTransport`` whose body
is an iterator of byte fragments: httpx hands each fragment over as it is, so the fragmentation
is exactly the generated one, with no socket involved.

- valid streams of both protocols, split into any fragments with any line endings, comment
  and ``event:`` lines, decode to the same message as unsplit, and to the reply that was sent;
- arbitrary bytes as a stream, a whole reply or an error reply give a result or our typed
  error, never another exception; error messages never show the token, even when echoed.
"""

from __future__ import annotations

import itertools
import json
from functools import reduce
from operator import add
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.messages import AIMessageChunk

from langchain_dbx_serving.auth import TokenCredentials
from langchain_dbx_serving.errors import APIStatusError, DatabricksServingError
from langchain_dbx_serving.protocols import chat_completions, responses
from langchain_dbx_serving.testing.local_endpoint._wire import (
    Aggregate,
    ChatCompletionStream,
    WireContext,
    expand,
    sse_frame,
)
from langchain_dbx_serving.testing.local_endpoint._wire_responses import ResponsesStream
from langchain_dbx_serving.testing.replies import Quirks, Reply, ToolCall
from langchain_dbx_serving.transport._errors import parse_retry_after
from langchain_dbx_serving.transport.client import Transport
from langchain_dbx_serving.transport.sse import SSEDecoder

SECRET = "dapi" + "00112233445566778899aabbccddeeff"  # built: the secret scanner skips it
URL = "https://adb-1.azuredatabricks.net/serving-endpoints/ep/invocations"
PROTOCOLS = {
    "chat": (ChatCompletionStream, chat_completions),
    "responses": (ResponsesStream, responses),
}
EXAMPLES = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def multiline_frame(event: Any, quirks: Quirks) -> bytes:
    """An event as pretty-printed JSON over several ``data:`` lines (valid SSE: the decoder
    joins them with newlines, which JSON reads as whitespace)."""
    text = event if isinstance(event, str) else json.dumps(event, indent=1)
    lines = [": PROCESSING\n\n"] if quirks.sse_comments else []
    if quirks.sse_event_lines and isinstance(event, dict) and isinstance(event.get("type"), str):
        lines.append(f"event: {event['type']}\n")
    lines += [f"data: {line}\n" for line in text.split("\n")]
    return ("".join(lines) + "\n").encode()


def sse_stream(reply: Reply, protocol: str, quirks: Quirks, *, multiline: bool = False) -> bytes:
    """The SSE bytes the local endpoint would send for ``reply`` (or with multi-line events)."""
    ctx = WireContext("ep", "req-1", 1_700_000_000, response_id="resp_1")
    encoder = PROTOCOLS[protocol][0](ctx)
    aggregate = Aggregate()
    events: list[Any] = []
    for piece in expand([reply]):
        if isinstance(piece, Reply):
            ctx.adopt(piece)
            aggregate.add_meta(piece)
        else:
            aggregate.add(piece)
            events += encoder.feed(piece)
    events += encoder.close(aggregate.reply())
    if not quirks.no_done:
        events.append("[DONE]")
    frame = multiline_frame if multiline else sse_frame
    return b"".join(frame(event, quirks) for event in events)


def transport(respond: Any) -> Transport:
    """A transport whose HTTP replies come from ``respond(request) -> httpx.Response``."""
    http = httpx.Client(transport=httpx.MockTransport(respond))
    return Transport(lambda: TokenCredentials(SECRET), http_client=http, sleep=bool)


def event_stream(fragments: list[bytes]) -> Transport:
    headers = {"content-type": "text/event-stream"}
    return transport(lambda request: httpx.Response(200, headers=headers, content=iter(fragments)))


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


def decode(protocol: str, fragments: list[bytes], client_tools: set[str]) -> AIMessageChunk:
    """Fragments through ``Transport.stream`` and the protocol's stream decoder, added up."""
    module = PROTOCOLS[protocol][1]
    options = {"client_tools": client_tools} if protocol == "responses" else {}
    decoder = module.StreamDecoder(**options)
    chunks: list[AIMessageChunk] = []
    for data in event_stream(fragments).stream(URL, {"stream": True}, endpoint="ep"):
        chunks += decoder.feed(data)
    chunks += decoder.finish()
    return reduce(add, chunks)


positions = st.integers(min_value=0, max_value=10_000)
words = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=6)
arguments = st.dictionaries(st.text(max_size=4), st.integers() | st.text(max_size=4), max_size=3)
replies = st.builds(
    Reply.text,
    st.lists(words, min_size=1, max_size=5),
    reasoning=st.none() | st.lists(words, min_size=1, max_size=2),
    usage=st.none() | st.tuples(st.integers(0, 99), st.integers(0, 99)),
    tool_calls=st.lists(
        st.builds(ToolCall, st.sampled_from(["get_weather", "lookup"]), arguments), max_size=2
    ),
)
quirk_sets = st.builds(
    Quirks,
    sse_comments=st.booleans(),
    sse_event_lines=st.booleans(),
    no_done=st.booleans(),
    usage_on_every_chunk=st.booleans(),
    role_on_every_delta=st.booleans(),
)


@EXAMPLES
@given(
    protocol=st.sampled_from(list(PROTOCOLS)),
    reply=replies,
    quirks=quirk_sets,
    newline=st.sampled_from([b"\n", b"\r\n", b"\r"]),
    multiline=st.booleans(),
    cuts=st.lists(positions, max_size=25),
)
def test_any_fragmentation_of_a_valid_stream_decodes_to_the_reply_sent(
    protocol: str, reply: Reply, quirks: Quirks, newline: bytes, multiline: bool, cuts: list[int]
) -> None:
    reply = Reply(**{**vars(reply), "quirks": quirks})
    stream = sse_stream(reply, protocol, quirks, multiline=multiline).replace(b"\n", newline)
    tools = {call.name for call in reply.tool_calls}

    whole = decode(protocol, [stream], tools)
    fragmented = decode(protocol, split(stream, cuts), tools)
    one_byte_at_a_time = decode(protocol, [bytes([b]) for b in stream], tools)

    assert fragmented.model_dump() == whole.model_dump()
    assert one_byte_at_a_time.model_dump() == whole.model_dump()
    assert whole.text == reply.full_text
    assert [(c["name"], c["args"]) for c in whole.tool_calls] == [
        (call.name, dict(call.arguments)) for call in reply.tool_calls
    ]


JUNK = [
    b"\n",
    b"\r\n",
    b": PROCESSING\n",
    b"event: error\n",
    b"data: [DONE]\n\n",
    b'data: {"error": {"message": "boom"}}\n\n',
    b"data: {\n\n",
    b"\xef\xbb\xbf",
    b'data: {"type": "response.output_text.delta", "delta": 7}\n\n',
    b"retry: 10\n",
]
noise_lines = st.one_of(
    st.binary(max_size=30),
    st.text(max_size=30).map(lambda t: f"data: {t}\n".encode()),
    st.sampled_from(JUNK),
)


@EXAMPLES
@given(
    protocol=st.sampled_from(list(PROTOCOLS)),
    reply=replies,
    noise=st.lists(st.tuples(positions, noise_lines), max_size=6),
    cuts=st.lists(positions, max_size=10),
    drop_tail=st.integers(min_value=0, max_value=200),
)
def test_corrupted_streams_give_chunks_or_our_typed_error(
    protocol: str, reply: Reply, noise: list[tuple[int, bytes]], cuts: list[int], drop_tail: int
) -> None:
    stream = sse_stream(reply, protocol, Quirks())
    for at, junk in noise:
        at %= len(stream) + 1
        stream = stream[:at] + junk + stream[at:]
    stream = stream[: max(0, len(stream) - drop_tail)]
    try:
        message = decode(protocol, split(stream, cuts) or [b""], {"get_weather"})
    except DatabricksServingError:
        return
    assert isinstance(message.text, str)


@EXAMPLES
@given(
    body=st.binary(max_size=200)
    | st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=6),
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(
                st.sampled_from(["choices", "output", "message", "content", "error", "usage"]),
                inner,
                max_size=3,
            )
        ),
        max_leaves=10,
    ).map(lambda value: json.dumps(value).encode()),
    content_type=st.sampled_from(["application/json", "text/html", "text/plain", ""]),
)
def test_arbitrary_whole_replies_give_a_result_or_our_typed_error(
    body: bytes, content_type: str
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    client = transport(lambda request: httpx.Response(200, headers=headers, content=body))
    for decode_reply in (chat_completions.decode_reply, responses.decode_reply):
        try:
            result = decode_reply(client.post_json(URL, {}, endpoint="ep"))
        except DatabricksServingError:
            continue
        assert isinstance(result.generations[0].message.text, str)


@EXAMPLES
@given(
    status=st.integers(min_value=400, max_value=599),
    body=st.binary(max_size=120) | st.text(max_size=120).map(str.encode),
    echo=st.sampled_from(["", f"Bearer {SECRET}", SECRET]),
    content_type=st.sampled_from(["application/json", "text/html", "text/plain", ""]),
    retry_after=st.none() | st.text(max_size=12),
)
def test_arbitrary_error_replies_give_the_status_error_without_the_token(
    status: int, body: bytes, echo: str, content_type: str, retry_after: str | None
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    if retry_after is not None and retry_after.isascii() and retry_after.isprintable():
        headers["retry-after"] = retry_after
    content = body[: len(body) // 2] + echo.encode() + body[len(body) // 2 :]
    client = transport(lambda request: httpx.Response(status, headers=headers, content=content))
    client.max_retries = 0

    try:
        client.post_json(URL, {}, endpoint="ep")
    except APIStatusError as exc:
        assert exc.status_code == status
        assert f"endpoint 'ep' returned {status}" in str(exc)
        assert SECRET not in str(exc) + repr(vars(exc))
        assert exc.retry_after is None or 0 <= exc.retry_after <= 120
    else:
        raise AssertionError("an error status must raise")


@given(st.text(max_size=40))
def test_any_retry_after_value_is_ignored_or_a_bounded_wait(value: str) -> None:
    seconds = parse_retry_after(value)
    assert seconds is None or 0 <= seconds <= 120


@EXAMPLES
@given(
    blob=st.binary(max_size=400),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=12),
    limit=st.integers(min_value=1, max_value=64),
)
def test_the_event_size_limit_holds_for_any_input(blob: bytes, cuts: list[int], limit: int) -> None:
    decoder = SSEDecoder(max_event_bytes=limit)
    try:
        events = [event for piece in split(blob, cuts) for event in decoder.feed(piece)]
        events += decoder.flush()
    except DatabricksServingError as exc:
        assert "grew past" in str(exc)
        return
    assert all(len(event.data) <= limit for event in events)
