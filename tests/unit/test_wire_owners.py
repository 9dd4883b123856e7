"""One owner for every wire fact (#15): each helper below is defined once in the package, and
the callers that used to have their own copy now agree with it.

The definition check reads the source with ``ast`` (as ``test_import_graph.py`` does), so a
second copy fails here whichever module it appears in.
"""

from __future__ import annotations

import ast
import datetime
from pathlib import Path

import pytest
from langchain_core.messages import AIMessage

import langchain_dbx_serving
from langchain_dbx_serving import Trace, TraceParseError
from langchain_dbx_serving.protocols import chat_completions, responses

PACKAGE = "langchain_dbx_serving"
ROOT = Path(langchain_dbx_serving.__file__).parent

# helper name (leading underscores ignored) -> the one module that defines it
OWNERS = {
    "error_fields": "_error_body",
    "error_text": "_error_body",
    "parse_arguments": "protocols._common",
    "raw_arguments": "protocols._common",
    "encode_arguments": "protocols._common",
    "as_str": "protocols._common",
    "str": None,  # no bare ``_str``: the coercion is ``as_str`` (traces: ``_fields.to_text``)
    "lenient_json": None,  # the lenient decoder is ``_json.loads``
    "loads": "_json",
}
# Modules allowed to call ``json.loads`` / build a ``json.JSONDecoder`` themselves.
JSON_DECODERS = {
    "_json",  # the one lenient, depth-bounded decoder
    "_redact",  # undoes JSON escapes in a text to look for secrets; it cannot import _json,
    # which imports errors, which imports _redact
}
# testing/ is the other side of the wire: it may call json.loads for strict reads of requests,
# cassettes and scripts, but reads tool arguments, error bodies and strings with the owners too.
# Copies it still holds are listed here; the set may only shrink.
KNOWN_IN_TESTING: set[str] = set()


def _modules() -> dict[str, ast.Module]:
    found = {}
    for path in sorted(ROOT.rglob("*.py")):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        found[name] = ast.parse(path.read_text(encoding="utf-8"))
    return found


def _definitions() -> list[tuple[str, str]]:
    """``(module, function name)`` of every function defined anywhere in the package."""
    return [
        (module, node.name)
        for module, tree in _modules().items()
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
    ]


def _json_decoding(tree: ast.Module) -> list[int]:
    """Lines calling ``json.loads``/``json.load`` or building a ``json.JSONDecoder``."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            if (
                isinstance(owner, ast.Name)
                and owner.id == "json"
                and node.func.attr in {"loads", "load", "JSONDecoder"}
            ):
                lines.append(node.lineno)
    return lines


def test_each_wire_helper_has_one_definition() -> None:
    seen: dict[str, list[str]] = {}
    for module, name in _definitions():
        key = name.lstrip("_")
        if key in OWNERS:
            seen.setdefault(key, []).append(module)
    assert seen.get("error_fields") == ["_error_body"]  # the check sees the package
    extra = {}
    for key, modules in seen.items():
        outside = [
            m
            for m in modules
            if m != OWNERS[key] and not (m.startswith("testing.") and f"_{key}" in KNOWN_IN_TESTING)
        ]
        if outside:
            extra[key] = outside
    assert extra == {}, f"second definitions (use the owner in OWNERS instead): {extra}"


def test_json_is_decoded_by_the_one_decoder() -> None:
    found = {
        module: lines
        for module, tree in _modules().items()
        if not module.startswith("testing.") and module not in JSON_DECODERS
        if (lines := _json_decoding(tree))
    }
    assert found == {}, f"use langchain_dbx_serving._json.loads, not json.loads, in: {found}"


def test_the_check_finds_a_second_copy() -> None:
    tree = ast.parse("import json\ndef _str(v):\n    return json.loads(v, strict=False)\n")
    assert _json_decoding(tree) == [3]
    names = [n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]
    assert [n.lstrip("_") for n in names] == ["str"] and OWNERS["str"] is None


# -- the callers that had their own copy now behave as the owner does ------------------------------
def test_a_trace_attribute_nested_too_deep_is_kept_as_text() -> None:
    deep = "[" * 5000 + "]" * 5000
    raw = {"span_id": "a", "name": "s", "attributes": {"x": deep, "n": "3"}}
    span = Trace.from_dict({"info": {"trace_id": "tr-1"}, "data": {"spans": [raw]}}).spans[0]
    assert span.attributes == {"x": deep, "n": 3}


def test_a_trace_nested_too_deep_is_a_trace_parse_error() -> None:
    with pytest.raises(TraceParseError, match="not JSON"):
        Trace.from_dict('{"info": ' + "[" * 5000 + "]" * 5000 + "}")


def test_numeric_trace_info_ids_are_kept_as_text() -> None:
    info = {"request_id": "tr-1", "experiment_id": 42}
    assert Trace.from_dict({"info": info, "data": {"spans": []}}).experiment_id == "42"


@pytest.mark.parametrize(
    "args",
    [
        {"city": "Zürich", "note": "日本"},
        {"when": datetime.date(2026, 12, 2)},
        {},
    ],
)
def test_both_protocols_send_the_same_arguments_string(args: dict) -> None:
    message = AIMessage("", tool_calls=[{"id": "c1", "name": "f", "args": args}])
    chat = chat_completions.encode_request([message], {}, stream=False)
    sent_chat = chat["messages"][0]["tool_calls"][0]["function"]["arguments"]
    reply = responses.encode_request([message], {}, stream=False)
    (call,) = [item for item in reply["input"] if item.get("type") == "function_call"]
    assert call["arguments"] == sent_chat
    assert "\\u" not in sent_chat  # text as it is
