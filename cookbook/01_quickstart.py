"""Quickstart: invoke, stream, batch, bound custom_inputs and a returned trace.

Offline by default: a local serving endpoint on 127.0.0.1 plays a small FAQ model.
Live: set DATABRICKS_HOST and DATABRICKS_TOKEN (and optionally DBX_CHAT_ENDPOINT).

    python cookbook/01_quickstart.py
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterator

from langchain_dbx_serving import ChatDatabricksServing
from langchain_dbx_serving.testing import BackendRequest, LocalEndpoint, Reply

FAQ = {
    "capital of france": "Paris.",
    "largest planet": "Jupiter.",
    "speed of light": "About 299,792 km per second.",
}


def faq_model(request: BackendRequest) -> Reply:
    """A deterministic stand-in for a served model: answers from FAQ, echoes custom_inputs."""
    question = request.messages[-1].text.lower()
    answer = next((a for q, a in FAQ.items() if q in question), "I don't know that one.")
    outputs = {"answered_for": request.custom_inputs["user"]} if request.custom_inputs else None
    usage = (len(question.split()), len(answer.split()))
    return Reply.text(answer, usage=usage, custom_outputs=outputs)


@contextlib.contextmanager
def chat_model() -> Iterator[ChatDatabricksServing]:
    if os.environ.get("DATABRICKS_HOST") and os.environ.get("DATABRICKS_TOKEN"):
        endpoint = os.environ.get("DBX_CHAT_ENDPOINT", "databricks-claude-sonnet-4")
        yield ChatDatabricksServing(endpoint=endpoint, max_tokens=200)
        return
    with LocalEndpoint(faq_model) as local:
        print(f"(offline: local serving endpoint at {local.base_url})\n")
        yield ChatDatabricksServing(endpoint="faq", host=local.host, token=local.token)


def main() -> None:
    with chat_model() as llm:
        reply = llm.invoke("What is the capital of France?")
        print("invoke:", reply.text, "| usage:", reply.usage_metadata)

        print("stream:", end=" ")
        for chunk in llm.stream("What is the speed of light?"):
            if chunk.text:  # the last chunks carry only usage and finish_reason
                print(chunk.text, end="|", flush=True)
        print()

        answers = llm.batch(["largest planet?", "capital of France?"])
        print("batch:", [a.text for a in answers])
        print("abatch:", [a.text for a in asyncio.run(llm.abatch(["largest planet?"]))])

        agent = llm.bind(custom_inputs={"user": "ana"}, return_trace=True)
        meta = agent.invoke("Largest planet?").response_metadata
        spans = (meta.get("trace") or {}).get("data", {}).get("spans", [])
        print("custom_outputs:", meta.get("custom_outputs"))
        print("trace id:", meta.get("trace_id"), "| spans:", [span["name"] for span in spans])


if __name__ == "__main__":
    main()
