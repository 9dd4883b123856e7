"""Pieces shared by every wire protocol: JSON events, usage, ``databricks_output`` and traces."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from langchain_core.messages.ai import InputTokenDetails, OutputTokenDetails, UsageMetadata

from langchain_dbx_serving._json import loads
from langchain_dbx_serving.errors import MalformedResponseError

_PREVIEW = 200


def as_str(value: Any, *, empty_is_none: bool = False) -> str | None:
    """``value`` when it is a string, else ``None`` (``""`` too, with ``empty_is_none``).

    Example:
        >>> as_str("a"), as_str(3), as_str(""), as_str("", empty_is_none=True)
        ('a', None, '', None)
    """
    if not isinstance(value, str) or (empty_is_none and not value):
        return None
    return value


def preview(data: Any) -> str:
    """A short printable prefix of a payload, for error messages."""
    try:
        text = data if isinstance(data, str) else repr(data)
    except RecursionError:
        text = "<a value nested too deeply to show>"
    return text if len(text) <= _PREVIEW else text[:_PREVIEW] + "..."


def parse_arguments(arguments: Any) -> tuple[dict[str, Any] | None, str | None]:
    """Parse a tool call's wire ``arguments``: ``(args, None)``, or ``(None, error)``.

    Both protocols carry them as a JSON string; ``""``, blank or ``None`` mean no arguments
    (zero-argument tools stream ``""``), an object sent as JSON rather than a string is taken
    as it is. Parsed with the package's one lenient decoder (``_json.loads``): recorded
    Databricks traffic has raw control characters inside argument strings.

    Example:
        >>> parse_arguments('{"q": "x"}'), parse_arguments("")
        (({'q': 'x'}, None), ({}, None))
        >>> parse_arguments("[1]")
        (None, 'the arguments are JSON but not an object: [1]')
    """
    if arguments is None or (isinstance(arguments, str) and not arguments.strip()):
        return {}, None
    if isinstance(arguments, Mapping):
        return dict(arguments), None
    if not isinstance(arguments, str):
        return None, f"the arguments are a {type(arguments).__name__}, not a JSON string"
    try:
        value = loads(arguments)
    except ValueError as exc:
        return None, f"the arguments are not valid JSON: {exc}"
    if not isinstance(value, dict):
        return None, f"the arguments are JSON but not an object: {preview(arguments)}"
    return value, None


def raw_arguments(arguments: Any) -> str:
    """Wire ``arguments`` as the string LangChain keeps in chunks and invalid calls: a string
    as it came, ``None`` as ``""``, an object sent as JSON rather than a string as its JSON.

    Example:
        >>> raw_arguments('{"q": "x"}'), raw_arguments(None), raw_arguments({"q": "x"})
        ('{"q": "x"}', '', '{"q": "x"}')
    """
    if isinstance(arguments, str):
        return arguments
    if arguments is None:
        return ""
    return json.dumps(arguments, default=str)


def encode_arguments(args: Any) -> str:
    """A tool call's ``args`` as the wire's ``arguments`` string (both protocols send a JSON
    string): no args as ``{}``, text as it is (not ``\\u`` escapes), a value JSON cannot
    carry (a ``datetime``) as its ``str()``.

    Example:
        >>> encode_arguments({"city": "Zürich"}), encode_arguments(None)
        ('{"city": "Zürich"}', '{}')
    """
    return json.dumps(args or {}, ensure_ascii=False, default=str)


def parse_event(data: str) -> Any:
    """Parse one SSE ``data`` payload (or a whole reply body) as JSON.

    Raises :class:`MalformedResponseError` naming the event when it is not JSON.
    """
    try:
        return loads(data)
    except ValueError as exc:
        raise MalformedResponseError(
            f"the endpoint sent an event that is not valid JSON ({exc}): {preview(data)!r}",
            event=preview(data),
        ) from None


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def map_usage(usage: Any) -> UsageMetadata | None:
    """Map a wire ``usage`` object (chat-completions or responses naming) to LangChain's.

    LangChain's convention: ``input_tokens`` counts every input token, cached ones included,
    and ``input_token_details`` splits out ``cache_read`` / ``cache_creation`` / ``audio``
    (docs/usage.md has the table and its sources). Databricks' ``prompt_tokens`` already
    includes Claude's ``cache_read_input_tokens`` / ``cache_creation_input_tokens`` and
    OpenAI's ``cached_tokens``, so they are split out, never added. Anthropic's own naming
    (``input_tokens`` next to ``cache_*_input_tokens``, as an agent may pass it through)
    excludes them: they are added, unless ``total_tokens`` shows they are already in.

    Returns ``None`` when the object carries no token counts at all. Missing totals are
    computed; ``None`` values (sent on intermediate chunks by some models) count as absent.
    """
    if not isinstance(usage, Mapping):
        return None
    input_tokens = _int(usage.get("prompt_tokens", usage.get("input_tokens")))
    output_tokens = _int(usage.get("completion_tokens", usage.get("output_tokens")))
    total = _int(usage.get("total_tokens"))
    if input_tokens is None and output_tokens is None and total is None:
        return None
    input_tokens = input_tokens or 0
    output_tokens = output_tokens or 0
    in_details = _input_details(usage)
    input_tokens += _cache_tokens_left_out(usage, input_tokens, output_tokens, total, in_details)
    result = UsageMetadata(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        total_tokens=total if total is not None else input_tokens + output_tokens,
    )
    if in_details:
        result["input_token_details"] = in_details
    out_details = _output_details(usage)
    if out_details:
        result["output_token_details"] = out_details
    return result


def _cache_tokens_left_out(
    usage: Mapping[str, Any],
    input_tokens: int,
    output_tokens: int,
    total: int | None,
    details: Mapping[str, int],
) -> int:
    """Cache tokens the wire's input count leaves out (Anthropic naming only), else 0."""
    if "prompt_tokens" in usage or "input_tokens" not in usage:
        return 0  # chat-completions naming: Databricks includes cached tokens
    if "cache_read_input_tokens" not in usage and "cache_creation_input_tokens" not in usage:
        return 0  # responses naming (input_tokens_details.cached_tokens): included
    cached = details.get("cache_read", 0) + details.get("cache_creation", 0)
    if total is not None and total == input_tokens + output_tokens:
        return 0  # the total shows the input count already holds them
    return cached


def _input_details(usage: Mapping[str, Any]) -> InputTokenDetails:
    details: dict[str, int] = {}
    nested = usage.get("prompt_tokens_details") or usage.get("input_tokens_details") or {}
    nested = nested if isinstance(nested, Mapping) else {}
    cached = _int(nested.get("cached_tokens"))
    for key in ("cache_read_input_tokens", "prompt_cache_hit_tokens"):
        cached = cached if cached is not None else _int(usage.get(key))
    if cached:
        details["cache_read"] = cached
    created = _int(usage.get("cache_creation_input_tokens"))
    if created is None:
        created = _int(nested.get("cache_creation_tokens"))
    if created:
        details["cache_creation"] = created
    audio = _int(nested.get("audio_tokens"))
    if audio:
        details["audio"] = audio
    return InputTokenDetails(**details)  # type: ignore[typeddict-item]


def _output_details(usage: Mapping[str, Any]) -> OutputTokenDetails:
    nested = usage.get("completion_tokens_details") or usage.get("output_tokens_details") or {}
    nested = nested if isinstance(nested, Mapping) else {}
    details: dict[str, int] = {}
    reasoning = _int(nested.get("reasoning_tokens"))
    if reasoning:
        details["reasoning"] = reasoning
    audio = _int(nested.get("audio_tokens"))
    if audio:
        details["audio"] = audio
    return OutputTokenDetails(**details)  # type: ignore[typeddict-item]


def trace_id_of(trace: Any) -> str | None:
    """The id of an MLflow trace dict: V3 ``info.trace_id`` or V2 ``info.request_id``."""
    if not isinstance(trace, Mapping):
        return None
    info = trace.get("info")
    if not isinstance(info, Mapping):
        return None
    value = info.get("trace_id") or info.get("request_id")
    return value if isinstance(value, str) else None


def databricks_output_metadata(obj: Any) -> dict[str, Any]:
    """``response_metadata`` entries for a reply or event that carries ``databricks_output``.

    Gives ``trace`` (the raw trace dict, kept even when it does not parse), ``trace_id`` and
    ``databricks_request_id`` for whichever of them are present; ``{}`` when there is none.
    """
    if not isinstance(obj, Mapping):
        return {}
    out = obj.get("databricks_output")
    if not isinstance(out, Mapping):
        return {}
    meta: dict[str, Any] = {}
    trace = out.get("trace")
    if trace is not None:
        meta["trace"] = trace
        trace_id = trace_id_of(trace)
        if trace_id:
            meta["trace_id"] = trace_id
    request_id = out.get("databricks_request_id")
    if isinstance(request_id, str):
        meta["databricks_request_id"] = request_id
    return meta
