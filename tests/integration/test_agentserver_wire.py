"""What MLflow's real ``AgentServer`` puts on the wire, pinned with plain ``httpx``.

The server runs ``tests.support.agent_app`` in a subprocess on 127.0.0.1 (one per session, see
``tests.support.agentserver``). These tests are the evidence behind
``docs/notes/agentserver-wire.md``: each asserts the exact JSON or the exact SSE event sequence a
client of the responses protocol receives, so a change in MLflow shows up here first.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

if TYPE_CHECKING:
    from tests.support.agentserver import AgentServerProcess

# Registers the session-wide ``agent_server`` fixture. The module is imported by pytest first
# (tests import it lazily below), so pytest can still rewrite its asserts.
pytest_plugins = ["tests.support.agentserver"]

TRACE_ID = re.compile(r"tr-[0-9a-f]{32}")
TRACE_HEADER = {"x-mlflow-return-trace-id": "true"}
SSE_CONTENT_TYPE = "text/event-stream; charset=utf-8"


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def message(text: str, item_id: str = "msg_1") -> dict[str, Any]:
    """An assistant message item as the server sends it."""
    content = [{"text": text, "type": "output_text", "annotations": []}]
    return {"type": "message", "id": item_id, "content": content, "role": "assistant"}


def delta(text: str) -> dict[str, Any]:
    return {"type": "response.output_text.delta", "item_id": "msg_1", "delta": text}


def done(item: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "response.output_item.done", **extra, "item": item}


def function_call(name: str, query: str, call_id: str = "call_1") -> dict[str, Any]:
    arguments = json.dumps({"query": query})
    return {
        "type": "function_call",
        "id": "fc_1",
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
    }


def sse_data(response: httpx.Response) -> list[str]:
    """The ``data`` of each SSE event, checking the framing: one ``data: `` line per event."""
    assert response.headers["content-type"] == SSE_CONTENT_TYPE
    assert response.text.endswith("\n\n")
    blocks = response.text[: -len("\n\n")].split("\n\n")
    assert all(block.startswith("data: ") and "\n" not in block for block in blocks), blocks
    return [block[len("data: ") :] for block in blocks]


def sse_events(response: httpx.Response) -> list[dict[str, Any]]:
    """The JSON events of a stream, which always ends with ``data: [DONE]``."""
    data = sse_data(response)
    assert data[-1] == "[DONE]"
    return [json.loads(item) for item in data[:-1]]


def mlflow_version() -> str:
    for distribution in ("mlflow", "mlflow-skinny"):
        try:
            return importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
    raise AssertionError("mlflow is not installed")


@pytest.fixture
def client(agent_server: AgentServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=agent_server.url, timeout=10.0) as http:
        yield http


# -- routes ---------------------------------------------------------------------------------


def test_health_and_agent_info(client: httpx.Client) -> None:
    assert client.get("/health").json() == {"status": "healthy"}
    info = client.get("/agent/info")
    assert info.status_code == 200
    assert info.json() == {
        "name": "mlflow_agent_server",
        "use_case": "agent",
        "mlflow_version": mlflow_version(),
        "agent_api": "responses",
    }


def test_unknown_routes_and_methods_give_fastapi_errors(client: httpx.Client) -> None:
    missing = client.post("/chat/completions", json={"input": [user("hi")]})
    assert (missing.status_code, missing.json()) == (404, {"detail": "Not Found"})
    wrong_method = client.get("/invocations")
    assert (wrong_method.status_code, wrong_method.json()) == (
        405,
        {"detail": "Method Not Allowed"},
    )


# -- whole replies --------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/invocations", "/responses"])
def test_invoke_reply_is_the_bare_response_object(client: httpx.Client, path: str) -> None:
    reply = client.post(path, json={"input": [user("hello there")]})
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "application/json"
    # No id, status, usage, created_at or model unless the agent sets them: None fields are dropped.
    assert reply.json() == {"object": "response", "output": [message("hello there")]}


@pytest.mark.parametrize("flag", ["true", "True"])
def test_invoke_returns_trace_id_in_metadata_when_asked(
    client: httpx.Client, agent_server: AgentServerProcess, flag: str
) -> None:
    headers = {"x-mlflow-return-trace-id": flag}
    reply = client.post("/invocations", json={"input": [user("hi")]}, headers=headers).json()
    assert set(reply) == {"object", "output", "metadata"}
    assert set(reply["metadata"]) == {"trace_id"}
    trace_id = reply["metadata"]["trace_id"]
    assert TRACE_ID.fullmatch(trace_id)
    # The id names a real trace, written by the server's MLflow to its file store.
    assert trace_id in {path.name for path in agent_server.trace_dirs()}


def test_trace_id_header_must_say_true(client: httpx.Client) -> None:
    headers = {"x-mlflow-return-trace-id": "1"}
    reply = client.post("/invocations", json={"input": [user("hi")]}, headers=headers).json()
    assert "metadata" not in reply


def test_databricks_options_and_unknown_fields_are_ignored(client: httpx.Client) -> None:
    """Fields outside ``ResponsesAgentRequest`` are dropped silently, without an error."""
    body = {
        "input": [user("hi")],
        "model": "my-agent",
        "instructions": "be brief",
        "databricks_options": {"return_trace": True},
    }
    reply = client.post("/responses", json=body)
    # No databricks_output: return_trace is a Model Serving feature, not an AgentServer one.
    assert reply.json() == {"object": "response", "output": [message("hi")]}


def test_custom_inputs_come_back_as_custom_outputs(client: httpx.Client) -> None:
    custom = {"session": "s1", "n": 2, "nested": {"ok": True}}
    reply = client.post("/invocations", json={"input": [user("hi")], "custom_inputs": custom})
    assert reply.json() == {
        "object": "response",
        "output": [message("hi")],
        "custom_outputs": custom,
    }


def test_usage_is_passed_through(client: httpx.Client) -> None:
    reply = client.post("/invocations", json={"input": [user("lifecycle hi")]}).json()
    assert reply["usage"] == {
        "input_tokens": 5,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 3,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 8,
    }


# -- tools ----------------------------------------------------------------------------------

WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather in a city",
    "parameters": {"type": "object", "properties": {"query": {"type": "string"}}},
}


def test_function_call_when_tools_are_offered(client: httpx.Client) -> None:
    body = {"input": [user("weather in Paris")], "tools": [WEATHER_TOOL]}
    reply = client.post("/invocations", json=body)
    assert reply.json() == {
        "object": "response",
        "output": [function_call("get_weather", "weather in Paris")],
    }


def test_function_call_round_trip(client: httpx.Client) -> None:
    """The client runs the tool and sends its output back; the agent answers with it."""
    first = client.post("/invocations", json={"input": [user("call get_weather")]}).json()
    call = first["output"][0]
    assert call == function_call("get_weather", "call get_weather")
    result = {"type": "function_call_output", "call_id": call["call_id"], "output": "18C, sunny"}
    history = [user("call get_weather"), call, result]
    second = client.post("/invocations", json={"input": history, "tools": [WEATHER_TOOL]})
    assert second.json() == {
        "object": "response",
        "output": [message("get_weather returned: 18C, sunny")],
    }


def test_function_call_streams_as_a_single_done_event(client: httpx.Client) -> None:
    body = {"input": [user("call get_weather")], "stream": True}
    events = sse_events(client.post("/invocations", json=body))
    # No output_item.added and no function_call_arguments.delta: only the whole item.
    assert events == [done(function_call("get_weather", "call get_weather"))]


def test_agent_internal_tool_turn(client: httpx.Client) -> None:
    """A tool the agent ran itself arrives as function_call + function_call_output items."""
    call = function_call("lookup", "lookup Paris", call_id="call_lookup_1")
    output = {
        "type": "function_call_output",
        "call_id": "call_lookup_1",
        "output": "result for lookup Paris",
    }
    answer = message("Found: result for lookup Paris")
    whole = client.post("/invocations", json={"input": [user("lookup Paris")]}).json()
    assert whole == {"object": "response", "output": [call, output, answer]}
    body = {"input": [user("lookup Paris")], "stream": True}
    events = sse_events(client.post("/invocations", json=body))
    deltas = ["Found: ", "result ", "for ", "lookup ", "Paris"]
    assert events == [done(call), done(output), *map(delta, deltas), done(answer)]


def test_reasoning_item_comes_first(client: httpx.Client) -> None:
    reasoning = {
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": "The user wrote 3 words."}],
        "id": "rs_1",
    }
    reply = client.post("/invocations", json={"input": [user("think about it")]}).json()
    assert reply["output"] == [reasoning, message("think about it")]
    body = {"input": [user("think about it")], "stream": True}
    events = sse_events(client.post("/invocations", json=body))
    assert events[0] == done(reasoning)


# -- streams --------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/invocations", "/responses"])
def test_stream_is_deltas_then_done_then_DONE(client: httpx.Client, path: str) -> None:
    reply = client.post(path, json={"input": [user("hello there")], "stream": True})
    assert reply.status_code == 200
    # No response.created/completed, no sequence_number or output_index, no top-level id, no
    # `event:` lines: only what the agent yielded, then [DONE].
    assert sse_events(reply) == [delta("hello "), delta("there"), done(message("hello there"))]


def test_stream_framing_is_json_dumps_with_default_separators(client: httpx.Client) -> None:
    reply = client.post("/invocations", json={"input": [user("hi")], "stream": True})
    assert reply.text == (
        'data: {"type": "response.output_text.delta", "item_id": "msg_1", "delta": "hi"}\n\n'
        'data: {"type": "response.output_item.done", "item": {"id": "msg_1", "content": '
        '[{"text": "hi", "type": "output_text", "annotations": []}], "role": "assistant", '
        '"type": "message"}}\n\n'
        "data: [DONE]\n\n"
    )


def test_stream_trace_id_is_a_bare_event_before_DONE(
    client: httpx.Client, agent_server: AgentServerProcess
) -> None:
    body = {"input": [user("hi")], "stream": True}
    events = sse_events(client.post("/responses", json=body, headers=TRACE_HEADER))
    assert events[:-1] == [delta("hi"), done(message("hi"))]
    assert list(events[-1]) == ["trace_id"]  # no "type"
    assert TRACE_ID.fullmatch(events[-1]["trace_id"])
    assert events[-1]["trace_id"] in {path.name for path in agent_server.trace_dirs()}


def test_stream_custom_outputs_ride_on_the_last_done_event(client: httpx.Client) -> None:
    body = {"input": [user("hi")], "custom_inputs": {"k": "v"}, "stream": True}
    events = sse_events(client.post("/invocations", json=body))
    assert events == [delta("hi"), done(message("hi"), custom_outputs={"k": "v"})]


def test_openai_style_lifecycle_events_pass_through_unchanged(client: httpx.Client) -> None:
    body = {"input": [user("lifecycle hi")], "stream": True}
    events = sse_events(client.post("/invocations", json=body))
    item = message("lifecycle hi")
    assert [event["type"] for event in events] == [
        "response.created",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_item.added",
        "response.output_item.done",
        "response.completed",
    ]
    assert events[0]["response"] == {
        "id": "resp_1",
        "object": "response",
        "status": "in_progress",
        "output": [],
    }
    assert events[3] == {"type": "response.output_item.added", "item": item}
    completed = events[-1]["response"]
    assert (completed["status"], completed["output"]) == ("completed", [item])
    assert completed["usage"]["total_tokens"] == 8


# -- failures -------------------------------------------------------------------------------


def test_exception_mid_stream_is_a_bare_error_event_then_DONE(
    client: httpx.Client, agent_server: AgentServerProcess
) -> None:
    body = {"input": [user("please explode")], "stream": True}
    reply = client.post("/invocations", json=body, headers=TRACE_HEADER)
    assert reply.status_code == 200  # the headers were sent before the failure
    assert sse_events(reply) == [
        delta("Partial "),
        delta("answer"),
        {"error": "agent exploded on purpose"},  # no "type", no code; no trace_id event
    ]
    # The failed turn is still traced, with state ERROR, though its id never reaches the client.
    infos = [(path / "trace_info.yaml").read_text() for path in agent_server.trace_dirs()]
    assert any("state: ERROR" in info and "please explode" in info for info in infos)


def test_exception_in_invoke_is_a_500_with_detail(client: httpx.Client) -> None:
    reply = client.post("/invocations", json={"input": [user("explode")]}, headers=TRACE_HEADER)
    assert reply.status_code == 500
    assert reply.headers["content-type"] == "application/json"
    assert reply.json() == {"detail": "agent exploded on purpose"}


# -- bad requests ---------------------------------------------------------------------------

INVALID = "Invalid parameters for ResponsesAgent: Invalid data for ResponsesAgentRequest: "


@pytest.mark.parametrize("stream", [False, True])
def test_missing_input_is_a_400_json_error_even_when_streaming(
    client: httpx.Client, stream: bool
) -> None:
    reply = client.post("/invocations", json={"messages": [user("hi")], "stream": stream})
    assert reply.status_code == 400
    assert reply.headers["content-type"] == "application/json"
    detail = reply.json()["detail"]
    assert list(reply.json()) == ["detail"]
    # The rest is pydantic's message text (version dependent): "1 validation error for ...".
    assert detail.startswith(INVALID + "1 validation error for ResponsesAgentRequest\ninput\n")
    assert "Field required [type=missing" in detail


def test_string_input_is_a_400_unlike_openai(client: httpx.Client) -> None:
    reply = client.post("/responses", json={"input": "hi"})
    assert reply.status_code == 400
    detail = reply.json()["detail"]
    assert detail.startswith(INVALID + "1 validation error for ResponsesAgentRequest\ninput\n")
    assert "Input should be a valid list [type=list_type" in detail


def test_invalid_json_is_a_400(client: httpx.Client) -> None:
    reply = client.post(
        "/invocations", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert reply.status_code == 400
    assert reply.json()["detail"].startswith("Invalid JSON in request body: ")


def test_bad_role_and_unknown_part_type_are_400s(client: httpx.Client) -> None:
    bad_role = client.post("/invocations", json={"input": [{"role": "robot", "content": "hi"}]})
    assert bad_role.status_code == 400
    assert bad_role.json()["detail"].startswith(INVALID)
    assert "Invalid role: robot" in bad_role.json()["detail"]
    part = {"type": "image_url", "image_url": "https://example.invalid/x.png"}
    bad_part = client.post("/invocations", json={"input": [{"role": "user", "content": [part]}]})
    assert bad_part.status_code == 400
    assert "Invalid type: image_url." in bad_part.json()["detail"]


def test_text_part_is_accepted_not_rejected(client: httpx.Client) -> None:
    """Any part with a ``text`` key passes MLflow's validation, whatever its ``type``.

    The server does not reject ``{"type": "text"}`` (Databricks Model Serving may); this agent
    reads only ``input_text`` parts, so it sees no text, as a careful real agent would.
    """
    parts = [{"type": "text", "text": "ignored"}, {"type": "input_text", "text": "read"}]
    reply = client.post("/invocations", json={"input": [{"role": "user", "content": parts}]})
    assert reply.status_code == 200
    assert reply.json()["output"] == [message("read")]


# -- the harness itself ---------------------------------------------------------------------


def test_server_is_stopped_when_the_block_raises(tmp_path: Path) -> None:
    from tests.support.agentserver import start_agent_server

    with pytest.raises(KeyError), start_agent_server(tracking_dir=tmp_path / "mlruns") as server:
        assert httpx.get(f"{server.url}/health").status_code == 200
        raise KeyError("test body failed")
    assert server.process.returncode is not None
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.url}/health")


def test_startup_failure_reports_the_server_output(tmp_path: Path) -> None:
    from tests.support.agentserver import AgentServerStartupError, start_agent_server

    expected = re.escape('Could not import module "tests.support.no_such_app"')
    with (
        pytest.raises(AgentServerStartupError, match=expected),
        start_agent_server("tests.support.no_such_app:app", tracking_dir=tmp_path / "mlruns"),
    ):
        pytest.fail("the server should not have started")
