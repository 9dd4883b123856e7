"""Tool-call arguments in a request's history reach the backend the way the package reads them
(``protocols._common.parse_arguments``); arguments it cannot read arrive as ``{}``, and the
request is still answered, as a real endpoint passes a prior call's arguments through."""

from __future__ import annotations

import httpx
import pytest

from langchain_dbx_serving.testing import BackendRequest, LocalEndpoint, Reply
from tests.testing.helpers import capture, script

DEEP = "[" * 300 + "]" * 300


@pytest.mark.parametrize(
    ("arguments", "args"),
    [
        ('{"c": "P"}', {"c": "P"}),
        ('{"note": "line\nbreak"}', {"note": "line\nbreak"}),  # a raw control character
        ("", {}),
        ("   ", {}),
        ({"c": "P"}, {"c": "P"}),  # an object instead of a JSON string
        ("[1, 2]", {}),
        ("not json", {}),
        (7, {}),
        ('{"a": ' + DEEP + "}", {}),  # nested past the decoder's depth bound
    ],
)
def test_history_tool_call_arguments_reach_the_backend_as_the_package_reads_them(
    ep: LocalEndpoint, client: httpx.Client, arguments: object, args: dict
) -> None:
    seen: list[BackendRequest] = []
    script(ep, capture(seen, Reply.text("ok")))
    call = {"id": "c1", "type": "function", "function": {"name": "w", "arguments": arguments}}
    messages = [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": "18C"},
    ]

    reply = client.post("/serving-endpoints/chat/invocations", json={"messages": messages})

    assert reply.status_code == 200
    assert seen[0].messages[1].tool_calls == [
        {"name": "w", "args": args, "id": "c1", "type": "tool_call"}
    ]
