"""The SSE decoder, fed bytes split at every boundary (WHATWG examples and Databricks streams)."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from langchain_dbx_serving.errors import MalformedResponseError
from langchain_dbx_serving.transport.sse import ServerSentEvent, SSEDecoder


def decode(*chunks: bytes) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    events = [event for chunk in chunks for event in decoder.feed(chunk)]
    return events + decoder.flush()


def datas(*chunks: bytes) -> list[str]:
    return [event.data for event in decode(*chunks)]


# The event-stream examples of the WHATWG HTML spec, section 9.2.
WHATWG_MULTILINE = b"data: YHOO\ndata: +2\ndata: 10\n\n"
WHATWG_COMMENTS = (
    b": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n\n"
)
WHATWG_EMPTY = b"data\n\ndata\ndata\n\n"
WHATWG_SPACE = b"data:test\n\ndata: test\n\n"

DATABRICKS_STREAM = (
    b": PROCESSING\n\n"
    b'data: {"id":"c1","choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"}}]}\n\n'
    b'data: {"id":"c1","choices":[{"index":0,"delta":{"content":"l\xc3\xb6 \xe2\x82\xac"}}]}\n\n'
    b"data: [DONE]\n\n"
)
DATABRICKS_DATA = [
    '{"id":"c1","choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"}}]}',
    '{"id":"c1","choices":[{"index":0,"delta":{"content":"lö €"}}]}',
    "[DONE]",
]


def test_whatwg_examples() -> None:
    assert datas(WHATWG_MULTILINE) == ["YHOO\n+2\n10"]
    assert datas(WHATWG_COMMENTS) == ["first event", "second event", " third event"]
    assert datas(WHATWG_EMPTY) == ["", "\n"]
    assert datas(WHATWG_SPACE) == ["test", "test"]


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
def test_every_two_way_split_gives_the_same_events(newline: bytes) -> None:
    stream = DATABRICKS_STREAM.replace(b"\n", newline)
    for cut in range(len(stream) + 1):
        assert datas(stream[:cut], stream[cut:]) == DATABRICKS_DATA, cut


def test_every_three_way_split_of_a_crlf_stream() -> None:
    stream = WHATWG_COMMENTS.replace(b"\n", b"\r\n")
    expected = ["first event", "second event", " third event"]
    for i in range(len(stream) + 1):
        for j in range(i, len(stream) + 1):
            assert datas(stream[:i], stream[i:j], stream[j:]) == expected, (i, j)


def test_byte_at_a_time_with_multibyte_characters() -> None:
    assert datas(*(bytes([b]) for b in DATABRICKS_STREAM)) == DATABRICKS_DATA


def test_event_field_and_reset_after_dispatch() -> None:
    events = decode(b"event: response.output_text.delta\ndata: {}\n\ndata: 2\n\n")
    assert events == [
        ServerSentEvent("response.output_text.delta", "{}"),
        ServerSentEvent("message", "2"),
    ]


def test_leading_bom_is_ignored_even_when_split() -> None:
    assert datas(b"\xef", b"\xbb", b"\xbfdata: x\n\n") == ["x"]
    assert datas(b"\xef\xbb\xbfdata: x\n\n") == ["x"]


def test_last_event_without_blank_line_is_still_delivered() -> None:
    # Some servers close right after the final data line; losing it would truncate the reply.
    assert datas(b"data: a\n\ndata: [DONE]") == ["a", "[DONE]"]
    assert datas(b"data: a\n\ndata: [DONE]\n") == ["a", "[DONE]"]


def test_comment_only_stream_yields_nothing() -> None:
    assert datas(b": PROCESSING\n\n: PROCESSING\n\n") == []


@given(st.lists(st.integers(min_value=0, max_value=len(DATABRICKS_STREAM)), max_size=12))
def test_any_fragmentation_gives_the_same_events(cuts: list[int]) -> None:
    points = sorted(set(cuts))
    pieces = [DATABRICKS_STREAM[a:b] for a, b in zip([0, *points], [*points, None], strict=True)]
    assert datas(*pieces) == DATABRICKS_DATA


@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise(blob: bytes) -> None:
    for event in decode(blob[:100], blob[100:]):
        assert isinstance(event.data, str)


def _outcome(decode_step: Any, chunks: list[bytes], flush: Any) -> tuple[list[str], str | None]:
    out: list[str] = []
    try:
        for chunk in chunks:
            out += decode_step(chunk)
        out += [event.data for event in flush()]
    except MalformedResponseError as exc:
        return out, str(exc)
    return out, None


@given(
    blob=st.binary(max_size=300)
    | st.lists(
        st.sampled_from(
            [b"data: x", b"data:", b"data", b"event: e", b": c", b"", b"id: 1", b"\xef\xbb\xbf"]
        ),
        max_size=12,
    ).map(lambda lines: b"\n".join(lines)),
    cuts=st.lists(st.integers(min_value=0, max_value=300), max_size=10),
    newline=st.sampled_from([b"\n", b"\r\n", b"\r"]),
    limit=st.sampled_from([8, 64, 1 << 20]),
)
def test_payloads_give_the_data_of_the_events_feed_gives(
    blob: bytes, cuts: list[int], newline: bytes, limit: int
) -> None:
    """``payloads`` (what the transport reads with) is ``feed`` without the event objects:
    the same data, the same bound, for any bytes split anywhere."""
    blob = blob.replace(b"\n", newline)
    bounds = sorted({0, len(blob), *(c for c in cuts if c <= len(blob))})
    chunks = [blob[a:b] for a, b in itertools.pairwise(bounds)]
    by_feed, by_payloads = SSEDecoder(limit), SSEDecoder(limit)
    expected = _outcome(lambda c: [event.data for event in by_feed.feed(c)], chunks, by_feed.flush)
    assert _outcome(by_payloads.payloads, chunks, by_payloads.flush) == expected
