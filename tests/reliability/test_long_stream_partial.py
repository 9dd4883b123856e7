"""The ``partial`` of a long stream cut off is everything that arrived, for either protocol.

Errors after a stream began carry what was received (``partial``); this checks it for streams
long enough that a bookkeeping shortcut (folding, capping, sampling) would show.
"""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessageChunk

from langchain_dbx_serving import ChatDatabricksResponses, ChatDatabricksServing
from langchain_dbx_serving.errors import StreamInterruptedError
from langchain_dbx_serving.testing import LocalEndpoint, Reply
from tests.support.serving import queue


@pytest.mark.parametrize("protocol", ["chat", "responses"])
@pytest.mark.parametrize("mode", ["stream", "astream"])
async def test_partial_of_a_long_cut_stream_is_everything_that_arrived(
    serving: LocalEndpoint, protocol: str, mode: str
) -> None:
    pieces = [f"w{i} " for i in range(1200)]
    name = "chat" if protocol == "chat" else "responder"
    queue(serving, Reply.text(pieces, cut_after=1000), name=name)
    cls = ChatDatabricksServing if protocol == "chat" else ChatDatabricksResponses
    llm = cls(endpoint=name, host=serving.host, token=serving.token, max_retries=0)
    seen: list[AIMessageChunk] = []

    with pytest.raises(StreamInterruptedError) as caught:
        if mode == "stream":
            for chunk in llm.stream("go"):
                seen.append(chunk)
        else:
            async for chunk in llm.astream("go"):
                seen.append(chunk)

    partial = caught.value.partial
    assert partial is not None
    received = "".join(chunk.text for chunk in seen)
    assert len(received) > 0
    assert partial.text == received
    assert "".join(pieces).startswith(partial.text)
