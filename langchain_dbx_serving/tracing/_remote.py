"""What of a returned trace may be copied into the caller's MLflow trace.

``mlflow.add_trace`` clones the spans of a returned trace under a span of the caller, then
merges the returned ``info.tags`` and ``info.trace_metadata`` into the caller's trace (the
caller's own keys win; ``mlflow.tracing.fluent._merge_trace`` in MLflow 3.17). Those maps also
say where and how the RETURNED trace is stored, and MLflow reads them to store and load the
CALLER's trace:

- ``mlflow.trace.spansLocation`` (``TRACKING_STORE``: the exporter skips writing the spans as
  artifacts, so a file-store caller loses them and ``mlflow.get_trace`` gives ``None``;
  ``ARCHIVE_REPO``: spans are read from the archive, so a SQL-store caller reads back none),
  ``mlflow.trace.archiveLocation``, ``mlflow.trace.archivalFailure``,
  ``mlflow.artifactLocation`` (where the spans and attachments of a trace are read and written):
  together with ``mlflow.user`` these are MLflow's immutable tags
  (``mlflow.utils.mlflow_tags.IMMUTABLE_TAGS``);
- size statistics, the schema version, ``infoFinalized`` and the aggregates (token usage, cost,
  request/response previews) describe the returned trace alone;
- the rest (trace name, user, session, source, run, model id, serving endpoint) would make the
  caller's trace claim another name, run, model or session whenever the caller has none.

So :func:`reduce_for_merge` keeps only what describes spans: the returned trace keeps its spans;
its tags and metadata go, except that each root span of the returned trace records them as
attributes ``databricks.remote.trace_id``, ``databricks.remote.tags`` and
``databricks.remote.trace_metadata`` (without the storage keys and aggregates above). A span
attribute ``mlflow.experimentId`` (the returned trace's experiment, which MLflow would use to
route the span) becomes ``databricks.remote.mlflow.experimentId``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from langchain_dbx_serving.protocols._common import trace_id_of

__all__ = ["DROPPED_KEYS", "REMOTE_PREFIX", "reduce_for_merge"]

REMOTE_PREFIX = "databricks.remote."

DROPPED_KEYS = frozenset(
    {
        # Where the returned trace's spans and artifacts live (MLflow's immutable tags).
        "mlflow.artifactLocation",
        "mlflow.trace.spansLocation",
        "mlflow.trace.archiveLocation",
        "mlflow.trace.archivalFailure",
        # Facts about the returned trace's stored copy.
        "mlflow.trace.sizeStats",
        "mlflow.trace.sizeBytes",
        "mlflow.trace.infoFinalized",
        "mlflow.trace_schema.version",
        # Aggregates of the returned trace alone (MLflow recomputes the caller's over all spans).
        "mlflow.trace.tokenUsage",
        "mlflow.trace.cost",
        "mlflow.traceInputs",
        "mlflow.traceOutputs",
    }
)
"""Tag and metadata keys of a returned trace that are not kept anywhere in the caller's trace."""

_INFO_MAPS = ("tags", "trace_metadata", "request_metadata")
_EXPERIMENT_ATTRIBUTE = "mlflow.experimentId"


def _as_map(value: Any) -> dict[str, Any]:
    """A tags/metadata map from a dict or a proto-JSON list of ``{"key", "value"}``."""
    if isinstance(value, Mapping):
        return {str(k): v for k, v in value.items()}
    if isinstance(value, list):
        return {
            str(item["key"]): item.get("value")
            for item in value
            if isinstance(item, Mapping) and "key" in item
        }
    return {}


def _kept(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if k not in DROPPED_KEYS}


def reduce_for_merge(trace: Mapping[str, Any], root_ids: set[int]) -> dict[str, Any]:
    """A copy of ``trace`` fit for ``add_trace``: no trace-level tags or metadata.

    ``trace`` is a trace dict whose ``data.spans`` are already copies (``parents_first``);
    ``root_ids`` are the ``id()`` of its root span dicts, which receive the returned trace's
    id, tags and metadata as ``databricks.remote.*`` attributes (JSON-encoded, as in MLflow's
    span dicts).
    """
    info = dict(trace.get("info") or {})
    remote_tags: dict[str, Any] = {}
    remote_metadata: dict[str, Any] = {}
    for key in _INFO_MAPS:
        if key not in info:
            continue
        target = remote_tags if key == "tags" else remote_metadata
        target.update(_kept(_as_map(info[key])))
        info[key] = [] if isinstance(info[key], list) else {}
    stamp = {
        REMOTE_PREFIX + "trace_id": trace_id_of(trace),
        REMOTE_PREFIX + "tags": remote_tags,
        REMOTE_PREFIX + "trace_metadata": remote_metadata,
    }
    data = trace.get("data") if isinstance(trace.get("data"), Mapping) else {}
    for span in data.get("spans") or []:
        attributes = span.get("attributes")
        if not isinstance(attributes, dict):
            continue
        if _EXPERIMENT_ATTRIBUTE in attributes:
            attributes[REMOTE_PREFIX + _EXPERIMENT_ATTRIBUTE] = attributes.pop(
                _EXPERIMENT_ATTRIBUTE
            )
        if id(span) in root_ids:
            attributes.update({k: json.dumps(v) for k, v in stamp.items()})
    return {**trace, "info": info}
