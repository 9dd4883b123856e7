"""``databricks_options: {"return_trace": true}`` returns a faithful MLflow V3 trace."""

from __future__ import annotations

import base64
import json
import re

import httpx
import pytest

from langchain_dbx_serving.testing import LocalEndpoint, Reply, ToolStep
from tests.testing.helpers import chat, parse_sse, responses, script

RETURN_TRACE = {"databricks_options": {"return_trace": True}}
CHAT_URL = "/serving-endpoints/chat/completions"


def _attrs(span: dict) -> dict:
    return {key: json.loads(value) for key, value in span["attributes"].items()}


def test_whole_reply_carries_a_v3_trace_and_the_request_id(
    ep: LocalEndpoint, client: httpx.Client
) -> None:
    script(ep, Reply.text("Bonjour", usage=(7, 2)))

    response = client.post(CHAT_URL, json=chat("hi", **RETURN_TRACE))

    output = response.json()["databricks_output"]
    assert set(output) == {"trace", "databricks_request_id"}
    assert output["databricks_request_id"] == response.headers["x-request-id"]
    info = output["trace"]["info"]
    assert re.fullmatch(r"tr-[0-9a-f]{32}", info["trace_id"])
    assert info["trace_location"]["type"] == "MLFLOW_EXPERIMENT"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", info["request_time"])
    assert isinstance(info["execution_duration_ms"], int)
    assert info["state"] == "OK"
    assert '"hi"' in info["request_preview"]
    assert info["response_preview"] == "Bonjour"
    assert info["trace_metadata"]["mlflow.trace_schema.version"] == "3"
    usage = json.loads(info["trace_metadata"]["mlflow.trace.tokenUsage"])
    assert usage == {"input_tokens": 7, "output_tokens": 2, "total_tokens": 9}
    assert info["tags"]["mlflow.traceName"] == "chat"


def test_trace_spans_have_base64_ids_nanosecond_times_and_json_attributes(
    ep: LocalEndpoint, client: httpx.Client
) -> None:
    script(ep, Reply.text("Bonjour", usage=(7, 2)))

    body = client.post(CHAT_URL, json=chat("hi", **RETURN_TRACE)).json()

    trace = body["databricks_output"]["trace"]
    (span,) = trace["data"]["spans"]
    assert base64.b64decode(span["trace_id"]).hex() == trace["info"]["trace_id"][3:]
    assert len(base64.b64decode(span["span_id"])) == 8
    assert span["parent_span_id"] is None
    assert span["start_time_unix_nano"] > 10**18
    assert span["end_time_unix_nano"] >= span["start_time_unix_nano"]
    assert span["status"] == {"code": "STATUS_CODE_OK", "message": ""}
    assert all(isinstance(v, str) for v in span["attributes"].values())
    attrs = _attrs(span)
    assert attrs["mlflow.spanType"] == "CHAT_MODEL"
    assert attrs["mlflow.traceRequestId"] == trace["info"]["trace_id"]
    assert attrs["mlflow.spanInputs"] == chat("hi")
    assert attrs["mlflow.spanOutputs"]["choices"][0]["message"]["content"] == "Bonjour"
    assert attrs["mlflow.chat.tokenUsage"]["total_tokens"] == 9


def test_streamed_agent_trace_arrives_on_the_last_event_with_tool_spans(
    ep: LocalEndpoint, client: httpx.Client
) -> None:
    step = ToolStep("get_weather", {"city": "Rome"}, "sunny", id="call_1")
    script(ep, Reply.text("It is sunny.", steps=[step], usage=(9, 4)), name="agent")

    text = client.post(
        "/serving-endpoints/agent/invocations", json=chat(stream=True, **RETURN_TRACE)
    ).text

    events = parse_sse(text)
    assert events[-1] == "[DONE]"
    assert all("databricks_output" not in e for e in events[:-2])
    spans = events[-2]["databricks_output"]["trace"]["data"]["spans"]
    root, tool, model = spans
    assert [_attrs(s)["mlflow.spanType"] for s in spans] == ["AGENT", "TOOL", "CHAT_MODEL"]
    assert tool["name"] == "get_weather" and tool["parent_span_id"] == root["span_id"]
    assert _attrs(tool)["mlflow.spanInputs"] == {"city": "Rome"}
    assert _attrs(tool)["mlflow.spanOutputs"] == "sunny"
    assert _attrs(model)["mlflow.chat.tokenUsage"]["input_tokens"] == 9
    assert root["start_time_unix_nano"] <= tool["start_time_unix_nano"]
    assert model["end_time_unix_nano"] <= root["end_time_unix_nano"]
    assert _attrs(root)["mlflow.spanOutputs"]["messages"][-1]["content"] == "It is sunny."


def test_returned_trace_id_matches_the_agent_server_trace_id_event(
    ep: LocalEndpoint, client: httpx.Client
) -> None:
    script(ep, Reply.text("ok"))
    headers = {"x-mlflow-return-trace-id": "true"}

    body = responses(stream=True, client_request_id="mine-1", **RETURN_TRACE)
    events = parse_sse(client.post("/serving-endpoints/responses", json=body, headers=headers).text)

    trace = events[-3]["databricks_output"]["trace"]
    assert events[-2] == {"trace_id": trace["info"]["trace_id"]}
    assert trace["info"]["client_request_id"] == "mine-1"


def test_a_failed_stream_gives_an_error_trace(ep: LocalEndpoint, client: httpx.Client) -> None:
    script(ep, Reply.text("par", stream_error="boom"))

    events = parse_sse(client.post(CHAT_URL, json=chat(stream=True, **RETURN_TRACE)).text)

    trace = events[-2]["databricks_output"]["trace"]
    assert trace["info"]["state"] == "ERROR"
    root = trace["data"]["spans"][0]
    assert root["status"] == {"code": "STATUS_CODE_ERROR", "message": "boom"}
    assert root["events"][0]["name"] == "exception"


def test_mlflow_itself_reads_the_returned_trace(ep: LocalEndpoint, client: httpx.Client) -> None:
    entities = pytest.importorskip("mlflow.entities")
    step = ToolStep("lookup", {"q": "x"}, "42", id="call_1")
    script(ep, Reply.text("42", steps=[step], usage=(3, 1)), name="agent")

    body = client.post("/serving-endpoints/agent/invocations", json=chat(**RETURN_TRACE)).json()

    raw = body["databricks_output"]["trace"]
    trace = entities.Trace.from_dict(raw)
    assert trace.info.trace_id == raw["info"]["trace_id"]
    assert trace.info.state.value == "OK"
    assert [s.name for s in trace.data.spans] == ["agent", "lookup", "chat_model"]
    assert trace.data.spans[1].parent_id == trace.data.spans[0].span_id
    assert trace.data.spans[1].outputs == "42"
    assert trace.info.token_usage == {"input_tokens": 3, "output_tokens": 1, "total_tokens": 4}
