"""Helpers for calling a chat model the four ways and comparing what comes back."""

from __future__ import annotations

from typing import Any

from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.runnables import Runnable

MODES = ["invoke", "ainvoke", "stream", "astream"]


def aggregate(chunks: list[AIMessageChunk]) -> AIMessageChunk:
    """Add stream chunks up the way LangChain does."""
    total = chunks[0]
    for chunk in chunks[1:]:
        total = total + chunk
    return total


async def ask(llm: Runnable, prompt: Any, mode: str, **kwargs: Any) -> AIMessage:
    """One call through ``mode``; streams are aggregated into one message."""
    if mode == "invoke":
        return llm.invoke(prompt, **kwargs)
    if mode == "ainvoke":
        return await llm.ainvoke(prompt, **kwargs)
    if mode == "stream":
        return aggregate(list(llm.stream(prompt, **kwargs)))
    return aggregate([chunk async for chunk in llm.astream(prompt, **kwargs)])
