"""``Trace.tree()``: a trace as indented text, one span a line.

This module reads traces through the two small protocols below and imports nothing from
``_model``, so the import goes one way: ``_model`` (and ``_collector``) -> ``_render``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

from langchain_core.messages.ai import UsageMetadata


class Span(Protocol):
    """What a tree line shows of a span (``tracing._model.Span`` has all of it)."""

    @property
    def name(self) -> str | None: ...
    @property
    def span_type(self) -> str: ...
    @property
    def duration_ms(self) -> float | None: ...
    @property
    def token_usage(self) -> UsageMetadata | None: ...
    @property
    def error(self) -> str | None: ...


class Trace(Protocol):
    """What the header and the tree read of a trace (``tracing._model.Trace`` has all of it)."""

    @property
    def trace_id(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def duration_ms(self) -> float | None: ...
    @property
    def spans(self) -> Sequence[Span]: ...
    @property
    def token_usage(self) -> UsageMetadata | None: ...
    @property
    def errors(self) -> Sequence[Span]: ...
    def walk(self) -> Iterator[tuple[int, Span]]: ...


_ERROR_PREVIEW = 120


def _duration(ms: float | None) -> str:
    if ms is None:
        return "? ms"
    if ms >= 1000:
        return f"{ms / 1000:.2f} s"
    return f"{ms:.1f} ms"


def _tokens(usage: UsageMetadata | None) -> str:
    if not usage:
        return ""
    return f"tokens {usage['input_tokens']} in / {usage['output_tokens']} out"


def _one_line(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= _ERROR_PREVIEW else flat[:_ERROR_PREVIEW] + "..."


def _span_line(span: Span) -> str:
    parts = [span.name or "<unnamed>", span.span_type, _duration(span.duration_ms)]
    if tokens := _tokens(span.token_usage):
        parts.append(tokens)
    if (error := span.error) is not None:
        parts.append(f"ERROR: {_one_line(error)}")
    return "  ".join(parts)


def _header(trace: Trace) -> str:
    count = len(trace.spans)
    parts = [
        f"trace {trace.trace_id} {trace.state}",
        _duration(trace.duration_ms),
        f"{count} span{'s' if count != 1 else ''}",
    ]
    if tokens := _tokens(trace.token_usage):
        parts.append(tokens)
    if failed := len(trace.errors):
        parts.append(f"{failed} failed")
    return ", ".join(parts)


def _has_next_sibling(depths: list[int]) -> list[bool]:
    """For each line of a depth-first listing, whether a sibling follows it."""
    result = [False] * len(depths)
    pending: dict[int, bool] = {}
    for index in range(len(depths) - 1, -1, -1):
        depth = depths[index]
        result[index] = pending.get(depth, False)
        pending = {d: v for d, v in pending.items() if d < depth}
        pending[depth] = True
    return result


def render_lines(items: list[tuple[int, str]]) -> list[str]:
    """Depth-first ``(depth, text)`` items as lines with box-drawing branches (depth 0 flush)."""
    lines: list[str] = []
    siblings = _has_next_sibling([depth for depth, _ in items])
    # open_levels[d]: whether the current ancestor at depth d has siblings still to come.
    open_levels: list[bool] = []
    for (depth, text), has_next_sibling in zip(items, siblings, strict=True):
        del open_levels[depth:]
        if depth == 0:
            lines.append(text)
        else:
            guides = "".join("│   " if more else "    " for more in open_levels[1:depth])
            branch = "├── " if has_next_sibling else "└── "
            lines.append(guides + branch + text)
        open_levels.append(has_next_sibling)
    return lines


def span_items(trace: Trace, depth: int = 0) -> list[tuple[int, str]]:
    """The spans of ``trace`` as ``(depth, line)`` items, its roots at ``depth``."""
    return [(depth + level, _span_line(span)) for level, span in trace.walk()]


def render_tree(trace: Trace) -> str:
    """The header line, then each span under its parent with box-drawing branches."""
    return "\n".join([_header(trace), *render_lines(span_items(trace))])
