"""``Trace``/``Span``: MLflow trace JSON V2 and MLflow-3.5-style V3, read as a user would."""

from __future__ import annotations

import base64
import json
import random
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.outputs import ChatGeneration, ChatResult, LLMResult

from langchain_dbx_serving import Trace, TraceParseError, get_trace, get_trace_id
from langchain_dbx_serving.agents import AgentResponse
from langchain_dbx_serving.tracing._fields import normalize_id, to_ns
from langchain_dbx_serving.tracing._mlflow import parents_first

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "traces"


def load(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


@pytest.fixture
def v2() -> dict:
    return load("v2_mlflow2_0x_ids.json")


@pytest.fixture
def v35() -> dict:
    return load("v3_mlflow35_hex_ids.json")


# -- MLflow 2 (schema V2, 0x ids) ---------------------------------------------------------------
def test_v2_trace_parses_with_hex_ids_tree_and_usage_from_model_outputs(v2: dict) -> None:
    trace = Trace.from_dict(v2)
    assert trace.schema_version == 2
    assert trace.trace_id == "7f3c1e2a9b8d4c6e8a0f1b2c3d4e5f60"
    assert trace.state == "OK"
    assert trace.experiment_id == "3817420159386218"
    assert trace.request_time_ms == 1718031600123
    assert trace.duration_ms == 1840
    assert trace.metadata["mlflow.databricks.modelServingEndpointName"] == "support-agent"
    root = trace.root
    assert root is not None and root.span_id == "5b8e2f1a3c4d6e7f" and root.span_type == "AGENT"
    assert [s.name for s in trace.children(root)] == ["retrieve_docs", "ChatDatabricks"]
    (retriever,) = trace.find(span_type="retriever")
    assert retriever.parent_id == root.span_id
    assert retriever.outputs[0]["metadata"]["doc_uri"] == "policies/refunds.md"
    assert retriever.duration_ms == 310.0
    # MLflow 2 had no tokenUsage attribute: the model span's chat completion carries usage.
    assert trace.token_usage == {"input_tokens": 41, "output_tokens": 12, "total_tokens": 53}
    assert trace.inputs == {
        "messages": [{"role": "user", "content": "What is the refund window for order 42?"}]
    }
    assert trace.errors == []


def test_v2_tree_shows_names_types_durations_and_tokens(v2: dict) -> None:
    assert Trace.from_dict(v2).tree().splitlines() == [
        "trace 7f3c1e2a9b8d4c6e8a0f1b2c3d4e5f60 OK, 1.84 s, 3 spans, tokens 41 in / 12 out",
        "predict  AGENT  1.84 s",
        "├── retrieve_docs  RETRIEVER  310.0 ms",
        "└── ChatDatabricks  CHAT_MODEL  1.52 s  tokens 41 in / 12 out",
    ]


# -- MLflow 3.5 (schema V3 with hex ids and OK statuses) ----------------------------------------
def test_v35_trace_orders_parents_first_and_decodes_attributes(v35: dict) -> None:
    trace = Trace.from_dict(v35)
    assert trace.schema_version == 3
    assert trace.trace_id == "tr-4c1d2e3f5a6b7c8d9e0f1a2b3c4d5e6f"
    assert trace.client_request_id == "support-42"
    assert trace.experiment_id == "2971526417043125"
    assert trace.request_time_ms == 1759999999999 + 1
    assert trace.name == "support-agent"
    # The fixture lists children before their parent; the model does not.
    assert [s.name for s in trace.spans] == [
        "support-agent",
        "lookup_order",
        "lookup_order",
        "ChatDatabricks",
    ]
    root = trace.spans[0]
    assert root.span_id == "8437e37ac2affc9b" and root.parent_id is None
    assert root.inputs["custom_inputs"] == {"tier": "gold"}
    assert trace.outputs["custom_outputs"] == {"tier": "gold"}
    ok_tool = trace.find(name="lookup_order")[1]
    assert ok_tool.outputs == {"status": "shipped", "carrier": "UPS"}
    assert ok_tool.attributes["mlflow.spanFunctionName"] == "lookup_order"


def test_v35_error_span_inside_an_ok_trace_with_microsecond_event_time(v35: dict) -> None:
    trace = Trace.from_dict(v35)
    assert trace.state == "OK"
    (failed,) = trace.errors
    assert failed.status == "ERROR"
    assert failed.error == "TimeoutError: orders-db did not answer in 200 ms"
    (event,) = failed.events
    # Written in microseconds; normalised to nanoseconds like the span's own times.
    assert failed.start_time_ns is not None and failed.end_time_ns is not None
    assert failed.start_time_ns <= event.time_ns <= failed.end_time_ns
    # Event attributes are plain strings (not JSON-encoded like span attributes).
    assert event.attributes["exception.stacktrace"].startswith("Traceback")
    assert event.attributes["exception.escaped"] == "False"


def test_v35_usage_only_in_trace_metadata(v35: dict) -> None:
    trace = Trace.from_dict(v35)
    assert all(span.token_usage is None for span in trace.spans)
    assert trace.token_usage == {"input_tokens": 812, "output_tokens": 37, "total_tokens": 849}


def test_v35_tree_marks_the_failed_span(v35: dict) -> None:
    assert Trace.from_dict(v35).tree().splitlines() == [
        "trace tr-4c1d2e3f5a6b7c8d9e0f1a2b3c4d5e6f OK, 1.20 s, 4 spans, "
        "tokens 812 in / 37 out, 1 failed",
        "support-agent  AGENT  1.20 s",
        "├── lookup_order  TOOL  200.0 ms  ERROR: TimeoutError: orders-db did not answer in 200 ms",
        "├── lookup_order  TOOL  195.0 ms",
        "└── ChatDatabricks  CHAT_MODEL  730.0 ms",
    ]


def test_find_by_name_and_type(v35: dict) -> None:
    trace = Trace.from_dict(v35)
    assert len(trace.find(name="lookup_order")) == 2
    assert [s.name for s in trace.find(span_type="CHAT_MODEL")] == ["ChatDatabricks"]
    assert trace.find(name="lookup_order", span_type="AGENT") == []
    assert len(trace.find()) == 4


def test_to_dict_gives_back_the_raw_trace(v35: dict) -> None:
    trace = Trace.from_dict(json.dumps(v35))
    assert trace.to_dict() == v35
    trace.to_dict()["info"]["state"] = "ERROR"  # a copy: the trace is unchanged
    assert trace.to_dict() == v35


def test_nested_tree_guides() -> None:
    spans = [
        _span("a", None, "root", 0),
        _span("b", "a", "plan", 1),
        _span("c", "b", "search", 2),
        _span("d", "a", "answer", 3),
        _span("e", "d", "model", 4),
    ]
    lines = Trace.from_dict({"info": {"trace_id": "tr-1"}, "data": {"spans": spans}}).tree()
    assert lines.splitlines()[1:] == [
        "root  UNKNOWN  1.0 ms",
        "├── plan  UNKNOWN  1.0 ms",
        "│   └── search  UNKNOWN  1.0 ms",
        "└── answer  UNKNOWN  1.0 ms",
        "    └── model  UNKNOWN  1.0 ms",
    ]


def _span(span_id: str, parent: str | None, name: str, start: int) -> dict:
    base = 1_700_000_000_000_000_000 + start
    return {
        "span_id": span_id,
        "parent_span_id": parent,
        "name": name,
        "start_time_unix_nano": base,
        "end_time_unix_nano": base + 1_000_000,
    }


# -- ids, times, statuses ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "size", "expected"),
    [
        ("hDfjesKv/Js=", 8, "8437e37ac2affc9b"),  # V3 base64
        ("8437e37ac2affc9b", 8, "8437e37ac2affc9b"),  # MLflow 3.5 hex
        ("0x8437E37AC2AFFC9B", 8, "8437e37ac2affc9b"),  # early V2
        ("0x37e37ac2affc9b", 8, "0037e37ac2affc9b"),  # 0x without leading zeros
        ("sRlkTdMhC+MbCcePj5CdNA==", 16, "b119644dd3210be31b09c78f8f909d34"),
        ("tr-b119644dd3210be31b09c78f8f909d34", 16, "b119644dd3210be31b09c78f8f909d34"),
        (0x8437E37AC2AFFC9B, 8, "8437e37ac2affc9b"),
        ("not-an-id", 8, "not-an-id"),
        (None, 8, None),
        ("", 8, None),
    ],
)
def test_ids_in_every_spelling(value: object, size: int, expected: str | None) -> None:
    assert normalize_id(value, size) == expected


@given(st.binary(min_size=8, max_size=8))
def test_base64_and_hex_spellings_of_an_id_agree(raw: bytes) -> None:
    spellings = [base64.b64encode(raw).decode(), raw.hex(), "0x" + raw.hex(), raw.hex().upper()]
    assert {normalize_id(s, 8) for s in spellings} == {raw.hex()}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1_760_000_000_123_456_789, 1_760_000_000_123_456_789),
        ("1760000000123456789", 1_760_000_000_123_456_789),  # proto JSON int64
        (1_760_000_000_123_456, 1_760_000_000_123_456_000),  # microseconds
        (1_760_000_000_123, 1_760_000_000_123_000_000),  # milliseconds
        (1_760_000_000.5, 1_760_000_000_500_000_000),  # seconds
        (None, None),
        ("soon", None),
        (-5, None),
    ],
)
def test_times_in_any_unit_become_nanoseconds(value: object, expected: int | None) -> None:
    assert to_ns(value) == expected


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("STATUS_CODE_OK", "OK"),
        ("OK", "OK"),
        ("STATUS_CODE_ERROR", "ERROR"),
        (2, "ERROR"),
        (None, "UNSET"),
    ],
)
def test_span_status_spellings(code: object, expected: str) -> None:
    raw = {"span_id": "a", "name": "s", "status": {"code": code, "message": ""}}
    trace = Trace.from_dict({"info": {"trace_id": "tr-1"}, "data": {"spans": [raw]}})
    assert trace.spans[0].status == expected


def test_raw_attribute_strings_that_are_not_json_stay_strings() -> None:
    raw = {
        "span_id": "a",
        "name": "s",
        "attributes": {"gen_ai.system": "openai", "mlflow.spanType": '"LLM"', "n": "3"},
    }
    span = Trace.from_dict({"info": {"trace_id": "tr-1"}, "data": {"spans": [raw]}}).spans[0]
    assert span.attributes == {"gen_ai.system": "openai", "mlflow.spanType": "LLM", "n": 3}
    assert span.span_type == "LLM"


def test_usage_in_span_attributes_is_summed_without_double_counting() -> None:
    usage = json.dumps({"input_tokens": 10, "output_tokens": 2, "total_tokens": 12})
    spans = [
        _span("a", None, "agent", 0) | {"attributes": {"mlflow.chat.tokenUsage": usage}},
        _span("b", "a", "model-1", 1) | {"attributes": {"mlflow.chat.tokenUsage": usage}},
        _span("c", None, "other-root", 2) | {"attributes": {"mlflow.chat.tokenUsage": usage}},
    ]
    trace = Trace.from_dict({"info": {"trace_id": "tr-1"}, "data": {"spans": spans}})
    # "agent" rolls up "model-1": counted once, plus the other root.
    assert trace.token_usage == {"input_tokens": 20, "output_tokens": 4, "total_tokens": 24}


# -- partial and broken traces -------------------------------------------------------------------
def test_partial_trace_with_orphans_and_missing_fields_still_parses() -> None:
    spans = [{"span_id": "b", "parent_span_id": "missing", "name": "orphan"}, {"name": "bare"}]
    trace = Trace.from_dict({"info": {"trace_id": "tr-9"}, "data": {"spans": spans}})
    assert [s.name for s in trace.roots] == ["orphan", "bare"]
    assert trace.spans[1].span_id == "span-1"
    assert trace.duration_ms is None
    assert "orphan  UNKNOWN  ? ms" in trace.tree()


def test_trace_without_spans_uses_info() -> None:
    trace = Trace.from_dict({"info": {"trace_id": "tr-0", "state": "ERROR"}, "data": {}})
    assert trace.spans == [] and trace.root is None and trace.state == "ERROR"
    assert trace.tree() == "trace tr-0 ERROR, ? ms, 0 spans"


def test_parent_cycles_do_not_hang() -> None:
    spans = [_span("a", "b", "one", 0), _span("b", "a", "two", 1)]
    trace = Trace.from_dict({"info": {"trace_id": "tr-1"}, "data": {"spans": spans}})
    assert {s.name for s in trace.spans} == {"one", "two"}
    assert len(trace.tree().splitlines()) == 3


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("{not json", "not JSON"),
        ([1, 2], "must be a JSON object"),
        ({"spans": []}, "needs an 'info' object"),
        ({"info": {"state": "OK"}, "data": {"spans": []}}, "has no id"),
        ({"info": {"trace_id": "tr-1"}, "data": {"spans": {"a": 1}}}, "must be a list"),
        ({"info": {"trace_id": "tr-1"}, "data": {"spans": ["x"]}}, "span 0 is not a JSON object"),
    ],
)
def test_broken_traces_raise_a_typed_error(bad: object, message: str) -> None:
    with pytest.raises(TraceParseError, match=message):
        Trace.from_dict(bad)


def test_trace_parse_error_is_a_response_error_and_names_the_trace() -> None:
    from langchain_dbx_serving import ResponseError

    with pytest.raises(ResponseError) as caught:
        get_trace({"info": {"trace_id": "tr-1"}, "data": {"spans": [3]}})
    assert isinstance(caught.value, TraceParseError)
    assert caught.value.trace_id == "tr-1"


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
INFO_KEYS = [
    "trace_id",
    "request_id",
    "state",
    "status",
    "request_time",
    "timestamp_ms",
    "execution_duration_ms",
    "execution_time_ms",
    "trace_location",
    "trace_metadata",
    "request_metadata",
    "tags",
    "client_request_id",
]
SPAN_KEYS = [
    "span_id",
    "parent_span_id",
    "parent_id",
    "context",
    "name",
    "status",
    "status_code",
    "status_message",
    "start_time_unix_nano",
    "end_time_unix_nano",
    "start_time",
    "end_time",
    "attributes",
    "events",
    "trace_id",
]


@given(
    info=st.dictionaries(st.sampled_from(INFO_KEYS), JSON | st.just("tr-1")),
    spans=st.lists(st.dictionaries(st.sampled_from(SPAN_KEYS), JSON) | JSON, max_size=4),
)
def test_any_trace_shaped_json_reads_or_raises_trace_parse_error(info, spans) -> None:
    try:
        trace = Trace.from_dict({"info": info, "data": {"spans": spans}})
    except TraceParseError:
        return
    # Whatever parsed can be read every way a user reads it.
    assert trace.tree().startswith("trace ")
    assert trace.token_usage is None or "total_tokens" in trace.token_usage
    assert len(list(trace.walk())) == len(trace.spans)
    assert all(span.error is None or isinstance(span.error, str) for span in trace.spans)


def test_odd_numbers_in_info_are_ignored() -> None:
    info = {"trace_id": "tr-1", "request_time": "²", "execution_duration_ms": "12"}
    trace = Trace.from_dict({"info": info, "data": {"spans": []}})
    assert (trace.request_time_ms, trace.execution_duration_ms) == (None, 12)


# -- get_trace on what a user holds --------------------------------------------------------------
def test_get_trace_on_messages_results_responses_and_dicts(v35: dict) -> None:
    meta = {"trace": v35, "trace_id": v35["info"]["trace_id"]}
    message = AIMessage("hi", response_metadata=meta)
    holders = [
        message,
        AIMessageChunk("hi", response_metadata=meta),
        ChatResult(generations=[ChatGeneration(message=message)], llm_output=meta),
        # What on_llm_end receives for a stream: no llm_output, the trace in generation_info.
        LLMResult(generations=[[ChatGeneration(message=AIMessage("hi"), generation_info=meta)]]),
        AgentResponse(trace=v35, trace_id=v35["info"]["trace_id"]),
        meta,
        {"databricks_output": {"trace": v35}},
        v35,
        Trace.from_dict(v35),
    ]
    for holder in holders:
        trace = get_trace(holder)
        assert trace is not None and trace.trace_id == v35["info"]["trace_id"], holder
        assert get_trace_id(holder) == v35["info"]["trace_id"]


def test_get_trace_is_none_without_a_trace_and_the_id_alone_is_still_readable() -> None:
    only_id = AIMessage("hi", response_metadata={"trace_id": "tr-abc"})
    assert get_trace(only_id) is None
    assert get_trace_id(only_id) == "tr-abc"
    assert get_trace(AIMessage("hi")) is None and get_trace_id(AIMessage("hi")) is None
    assert get_trace(LLMResult(generations=[[ChatGeneration(message=AIMessage("x"))]])) is None


def test_bad_trace_on_a_message_raises_only_when_read() -> None:
    message = AIMessage("hi", response_metadata={"trace": {"oops": True}, "trace_id": "tr-1"})
    assert message.response_metadata["trace"] == {"oops": True}  # the raw value is kept
    with pytest.raises(TraceParseError):
        get_trace(message)
    assert get_trace_id(message) == "tr-1"


# -- ordering for mlflow.add_trace ---------------------------------------------------------------
def test_parents_first_reorders_spans_and_detaches_orphans(v35: dict) -> None:
    v35["data"]["spans"].append(
        {**v35["data"]["spans"][1], "span_id": "ffffffffffffffff", "parent_span_id": "0" * 16}
    )
    ordered = parents_first(v35)["data"]["spans"]
    seen: set[str | None] = {None}
    for span in ordered:
        assert span["parent_span_id"] in seen
        seen.add(span["span_id"])
    assert len(ordered) == 5
    assert v35["data"]["spans"][-1]["parent_span_id"] == "0" * 16  # the input is not changed


@given(st.randoms())
def test_parents_first_holds_for_any_input_order(rng: random.Random) -> None:
    trace = load("v2_mlflow2_0x_ids.json")
    rng.shuffle(trace["data"]["spans"])
    ordered = parents_first(trace)["data"]["spans"]
    position = {span["context"]["span_id"]: i for i, span in enumerate(ordered)}
    for span in ordered:
        if span["parent_id"] is not None:
            assert position[span["parent_id"]] < position[span["context"]["span_id"]]
