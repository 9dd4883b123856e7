"""A fast canned serving endpoint for the benchmarks: raw asyncio HTTP/1.1 on 127.0.0.1.

It does as little work per request as possible so that the client is what gets measured:
every reply is precomputed bytes. Routes (PROTOCOLS.md section 1):

- ``POST /serving-endpoints/{name}/invocations`` and ``/serving-endpoints/chat/completions``:
  a chat completion, or with ``"stream": true`` a stream of :data:`STREAM_CHUNKS` content deltas;
- ``POST /serving-endpoints/responses``: a responses reply, or a stream of as many
  ``response.output_text.delta`` events.

Streams use chunked transfer encoding with one HTTP chunk per event, as a real server that
flushes each event does; connections are kept alive. Run it as
``python benchmarks/_server.py``: it prints ``PORT <n>`` once listening, and serves until killed.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import sys

STREAM_CHUNKS = 2000
MODEL = "databricks-bench-model"
_STREAM_FLAG = re.compile(rb'"stream"\s*:\s*true')
_USAGE = {
    "prompt_tokens": 12,
    "completion_tokens": STREAM_CHUNKS,
    "total_tokens": 12 + STREAM_CHUNKS,
}
# A serving endpoint whose name ends in "-slow" replies after 0.5-1.5 x SLOW_SECONDS (one
# request at a time per connection, as httpx sends them): connections then stay busy as they
# do against a real model, which is when a small keep-alive pool closes and reopens them.
SLOW_SUFFIX = b"-slow/invocations"
SLOW_SECONDS = 0.2
ANSWER = "The quick brown fox jumps over the lazy dog. " * 3


def _dumps(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _chat_reply() -> bytes:
    return _dumps(
        {
            "id": "chatcmpl-bench-0001",
            "object": "chat.completion",
            "created": 1767225600,
            "model": MODEL,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": ANSWER},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": {"prompt_tokens": 12, "completion_tokens": 27, "total_tokens": 39},
        }
    )


def _responses_reply() -> bytes:
    return _dumps(
        {
            "object": "response",
            "id": "resp_bench_0001",
            "model": MODEL,
            "status": "completed",
            "output": [
                {
                    "type": "message",
                    "id": "msg_bench_0001",
                    "role": "assistant",
                    "status": "completed",
                    "content": [{"type": "output_text", "text": ANSWER, "annotations": []}],
                }
            ],
            "usage": {"input_tokens": 12, "output_tokens": 27, "total_tokens": 39},
        }
    )


def _chunked(events: list[bytes]) -> bytes:
    """SSE events as HTTP/1.1 chunks, one event per chunk, then the last-chunk marker."""
    parts = []
    for event in events:
        frame = b"data: " + event + b"\n\n"
        parts.append(b"%x\r\n%s\r\n" % (len(frame), frame))
    parts.append(b"0\r\n\r\n")
    return b"".join(parts)


def _chat_stream() -> bytes:
    def chunk(delta: dict, finish: str | None = None, usage: dict | None = None) -> bytes:
        return _dumps(
            {
                "id": "chatcmpl-bench-0002",
                "object": "chat.completion.chunk",
                "created": 1767225600,
                "model": MODEL,
                "choices": [
                    {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
                ],
                "usage": usage,
            }
        )

    events = [chunk({"role": "assistant", "content": "tok0 "})]
    events += [chunk({"content": f"tok{i} "}) for i in range(1, STREAM_CHUNKS)]
    events.append(chunk({}, finish="stop", usage=_USAGE))
    events.append(b"[DONE]")
    return _chunked(events)


def _responses_stream() -> bytes:
    item_id = "msg_bench_0002"
    events = [
        _dumps(
            {
                "type": "response.output_text.delta",
                "item_id": item_id,
                "output_index": 0,
                "content_index": 0,
                "delta": f"tok{i} ",
                "sequence_number": i,
            }
        )
        for i in range(STREAM_CHUNKS)
    ]
    text = "".join(f"tok{i} " for i in range(STREAM_CHUNKS))
    item = {
        "type": "message",
        "id": item_id,
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }
    events.append(_dumps({"type": "response.output_item.done", "output_index": 0, "item": item}))
    completed = {"object": "response", "id": "resp_bench_0002", "model": MODEL, "output": [item]}
    completed["usage"] = {"input_tokens": 12, "output_tokens": STREAM_CHUNKS, "total_tokens": 2012}
    events.append(_dumps({"type": "response.completed", "response": completed}))
    events.append(b"[DONE]")
    return _chunked(events)


def _whole(body: bytes) -> bytes:
    head = (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\nconnection: keep-alive\r\n\r\n" % len(body)
    )
    return head + body


def _streamed(chunked_body: bytes) -> bytes:
    head = (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
        b"transfer-encoding: chunked\r\nconnection: keep-alive\r\n\r\n"
    )
    return head + chunked_body


CHAT_REPLY = _whole(_chat_reply())
CHAT_STREAM = _streamed(_chat_stream())
RESPONSES_REPLY = _whole(_responses_reply())
RESPONSES_STREAM = _streamed(_responses_stream())
NOT_FOUND = _whole(_dumps({"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no such route"}))
NOT_FOUND = NOT_FOUND.replace(b"200 OK", b"404 Not Found", 1)


def reply_for(path: bytes, body: bytes) -> bytes:
    """The canned bytes for one request."""
    stream = _STREAM_FLAG.search(body) is not None
    if path == b"/serving-endpoints/responses":
        return RESPONSES_STREAM if stream else RESPONSES_REPLY
    if path == b"/serving-endpoints/chat/completions" or (
        path.startswith(b"/serving-endpoints/") and path.endswith(b"/invocations")
    ):
        return CHAT_STREAM if stream else CHAT_REPLY
    return NOT_FOUND


class _Connection(asyncio.Protocol):
    """HTTP/1.1 with keep-alive: request line, headers, ``content-length`` body; nothing else."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end]
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(self.buffer) < end + 4 + length:
                return
            body = self.buffer[end + 4 : end + 4 + length]
            self.buffer = self.buffer[end + 4 + length :]
            path = head.split(b" ", 2)[1].split(b"?", 1)[0]
            assert self.transport is not None
            if path.endswith(SLOW_SUFFIX):  # an endpoint that takes a while, as real ones do
                delay = SLOW_SECONDS * random.uniform(0.5, 1.5)  # not all at once
                asyncio.get_running_loop().call_later(
                    delay, self.transport.write, reply_for(path, body)
                )
            else:
                self.transport.write(reply_for(path, body))


async def _serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Connection, "127.0.0.1", port, backlog=1024)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(_serve(int(sys.argv[1]) if len(sys.argv) > 1 else 0))
