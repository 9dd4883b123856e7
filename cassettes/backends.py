"""The deterministic endpoints the committed cassettes were recorded from (see README.md).

Loaded by ``python -m langchain_dbx_serving.testing.record cassettes/backends.py[:NAME]``:
``BACKENDS`` (the default) serves three named endpoints for the workflow tests; ``FAQ`` serves
any endpoint name with the FAQ model, for the cookbook. Every answer is a pure function of the
request, so re-recording gives the same content (only ids and timestamps change).
"""

from __future__ import annotations

import re

from langchain_dbx_serving.testing import BackendRequest, FunctionBackend, Reply, ToolStep

FAQ_ANSWERS = {
    "capital of france": "Paris is the capital of France.",
    "largest planet": "Jupiter is the largest planet.",
    "speed of light": "About 299,792 km per second.",
}
_ENTHUSE = "make this enthusiastic:"


def faq(request: BackendRequest) -> Reply:
    """Answers FAQ questions; ``Make this enthusiastic: <text>`` answers ``<text>`` + a cheer."""
    question = request.messages[-1].text
    lowered = question.lower()
    if lowered.startswith(_ENTHUSE):
        answer = question[len(_ENTHUSE) :].strip().rstrip(".") + "! Isn't that amazing?"
    else:
        answer = next((a for q, a in FAQ_ANSWERS.items() if q in lowered), "I don't know.")
    return Reply.text(answer, usage=(len(question.split()), len(answer.split())))


def weather(request: BackendRequest) -> Reply:
    """A tool-calling model: asks for ``get_weather(city)``, then answers from its result."""
    last = request.messages[-1]
    if last.type == "tool":
        city = _city(request.messages[0].text)
        return Reply.text(f"It is {last.text} in {city} right now.", usage=(30, 8))
    if request.tools and "weather" in last.text.lower():
        city = _city(last.text)
        return Reply.tool_call("get_weather", {"city": city}, id="call_weather_1", usage=(20, 5))
    return Reply.text("Ask me about the weather.", usage=(5, 5))


def _city(text: str) -> str:
    found = re.search(r"\bin ([A-Z][a-z]+)", text)
    return found.group(1) if found else "Paris"


def support(request: BackendRequest) -> Reply:
    """A responses agent that looks the order up itself, then answers with custom outputs."""
    order = re.search(r"\d+", request.messages[-1].text)
    order_id = order.group() if order else "unknown"
    step = ToolStep("lookup_order", {"order_id": order_id}, '{"status": "packed"}', id="call_1")
    return Reply.text(
        f"Order {order_id} is packed and ships tomorrow.",
        steps=[step],
        usage=(42, 9),
        custom_outputs={"order_id": order_id, "team": (request.custom_inputs or {}).get("team")},
    )


BACKENDS = {
    "faq-model": FunctionBackend(faq),
    "weather-model": FunctionBackend(weather),
    "support-agent": FunctionBackend(support),
}
FAQ = FunctionBackend(faq)
