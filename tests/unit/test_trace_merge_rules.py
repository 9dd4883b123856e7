"""The rules that make a returned trace safe to merge, and the traceparent format, on odd input."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest

from langchain_dbx_serving.tracing._mlflow import already_joined, otel_trace_id, parents_first
from langchain_dbx_serving.tracing._propagation import _format, with_trace_context
from langchain_dbx_serving.tracing._remote import DROPPED_KEYS

HEX = "0123456789abcdef0123456789abcdef"


def trace(info: dict[str, Any], spans: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    spans = spans or [
        {"span_id": "aaaaaaaaaaaaaaaa", "parent_span_id": None, "name": "root", "attributes": {}},
        {"span_id": "bbbbbbbbbbbbbbbb", "parent_span_id": "aaaaaaaaaaaaaaaa", "name": "child"},
    ]
    return {"info": info, "data": {"spans": spans}}


def test_tags_and_metadata_leave_the_trace_level_and_storage_keys_go_entirely() -> None:
    info = {
        "trace_id": "tr-" + HEX,
        "tags": {"mlflow.trace.spansLocation": "TRACKING_STORE", "team": "support"},
        "trace_metadata": {"mlflow.trace.sizeStats": "{}", "mlflow.modelId": "m-1"},
    }
    reduced = parents_first(trace(info))
    assert reduced["info"]["tags"] == {} and reduced["info"]["trace_metadata"] == {}
    root, child = reduced["data"]["spans"]
    decoded = {k: json.loads(v) for k, v in root["attributes"].items() if k.startswith("databr")}
    assert decoded == {
        "databricks.remote.trace_id": "tr-" + HEX,
        "databricks.remote.tags": {"team": "support"},
        "databricks.remote.trace_metadata": {"mlflow.modelId": "m-1"},
    }
    assert not any(k.startswith("databricks.remote.") for k in child["attributes"])


def test_v2_request_metadata_and_proto_list_tags() -> None:
    info = {
        "request_id": "tr-" + HEX,
        "request_metadata": {"mlflow.trace_schema.version": "2", "mlflow.sourceRun": "r"},
        "tags": [{"key": "mlflow.artifactLocation", "value": "x"}, {"key": "k", "value": "v"}],
    }
    reduced = parents_first(trace(info))
    assert reduced["info"]["request_metadata"] == {} and reduced["info"]["tags"] == []
    attributes = reduced["data"]["spans"][0]["attributes"]
    assert json.loads(attributes["databricks.remote.tags"]) == {"k": "v"}
    assert json.loads(attributes["databricks.remote.trace_metadata"]) == {"mlflow.sourceRun": "r"}


def test_the_remote_experiment_attribute_is_renamed_on_every_span() -> None:
    spans = [
        {"span_id": "a" * 16, "parent_span_id": None, "attributes": {"mlflow.experimentId": '"7"'}},
        {"span_id": "b" * 16, "parent_span_id": "a" * 16, "attributes": "not a dict"},
    ]
    reduced = parents_first(trace({"trace_id": "tr-1"}, spans))
    first = reduced["data"]["spans"][0]["attributes"]
    assert "mlflow.experimentId" not in first
    assert first["databricks.remote.mlflow.experimentId"] == '"7"'


def test_the_returned_dict_is_not_modified() -> None:
    original = trace({"trace_id": "tr-1", "tags": {"mlflow.traceName": "x"}})
    snapshot = json.dumps(original, sort_keys=True)
    parents_first(original)
    assert json.dumps(original, sort_keys=True) == snapshot


def test_dropped_keys_are_the_storage_and_aggregate_keys_of_mlflow() -> None:
    mlflow = pytest.importorskip("mlflow")
    from mlflow.tracing.constant import TraceMetadataKey, TraceTagKey
    from mlflow.utils.mlflow_tags import IMMUTABLE_TAGS

    assert set(IMMUTABLE_TAGS) - {"mlflow.user"} <= DROPPED_KEYS
    assert {
        TraceTagKey.SPANS_LOCATION,
        TraceTagKey.ARCHIVE_LOCATION,
        TraceMetadataKey.SIZE_STATS,
        TraceMetadataKey.SIZE_BYTES,
        TraceMetadataKey.TOKEN_USAGE,
        TraceMetadataKey.TRACE_INFO_FINALIZED,
    } <= DROPPED_KEYS
    assert mlflow is not None


@pytest.mark.parametrize(
    ("trace_id", "expected"),
    [
        ("tr-" + HEX, HEX),
        ("TR-" + HEX.upper(), HEX),
        ("trace:/main.agents/" + HEX, HEX),
        ("tr-123", None),
        (None, None),
        (42, None),
    ],
)
def test_otel_trace_id(trace_id: Any, expected: str | None) -> None:
    assert otel_trace_id(trace_id) == expected


def test_already_joined_by_trace_id_or_by_parent() -> None:
    target = SimpleNamespace(trace_id="tr-" + HEX, span_id="cccccccccccccccc")
    assert already_joined(trace({"trace_id": "tr-" + HEX}), target)
    by_parent = [{"span_id": "a" * 16, "parent_span_id": "cccccccccccccccc"}]
    assert already_joined(trace({"trace_id": "tr-" + "f" * 32}, by_parent), target)
    assert not already_joined(trace({"trace_id": "tr-" + "f" * 32}), target)
    assert not already_joined({"info": "garbage", "data": None}, SimpleNamespace())


@pytest.mark.parametrize(
    "context",
    [
        SimpleNamespace(trace_id=0, span_id=1, trace_flags=1),
        SimpleNamespace(trace_id=1, span_id=0, trace_flags=1),
        SimpleNamespace(trace_id=1 << 128, span_id=1, trace_flags=1),
        SimpleNamespace(trace_id="1", span_id=1, trace_flags=1),
        None,
    ],
)
def test_invalid_span_contexts_give_no_traceparent(context: Any) -> None:
    assert _format(context) is None


def test_traceparent_format_and_headers_kept() -> None:
    context = SimpleNamespace(trace_id=int(HEX, 16), span_id=0xABC, trace_flags=1)
    assert _format(context) == f"00-{HEX}-0000000000000abc-01"
    assert with_trace_context(None, enabled=False) is None
    assert with_trace_context({"x": "1"}, enabled=False) == {"x": "1"}
