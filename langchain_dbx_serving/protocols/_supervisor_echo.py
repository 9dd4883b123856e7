"""Wire fact of Databricks' hosted agent loop (Supervisor API): background output echoes history.

Source (docs/notes/long-running-wire.md): Databricks' own agent templates,
``databricks/app-templates`` ``.claude/skills/supervisor-api-background-mode/SKILL.md``
(commit b51a1305, 2026-04-20), whose polling client says that in background mode the
retrieved response "returns ALL output items for the full conversation — including items
echoed from the input history": the output starts with one item per input item that is an
assistant message (``role == "assistant"``) or a ``function_call`` / ``function_call_output``
item, and the client skips that many items. The Supervisor API is AI Gateway's
``POST {host}/ai-gateway/mlflow/v1/responses``, retrieved at ``.../responses/{id}``.

Only that route echoes; a durable agent server (``LongRunningAgentServer``) stores the run's
own items only.

Example:
    >>> history = [{"role": "user", "content": "hi"},
    ...            {"type": "message", "role": "assistant", "content": []},
    ...            {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
    ...            {"type": "function_call_output", "call_id": "c1", "output": "1"},
    ...            {"role": "user", "content": "and now?"}]
    >>> echoed_count(history)
    3
    >>> strip_echo(["a", "b", "new"], 2)
    ['new']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

__all__ = ["SUPERVISOR_PATH", "echoed_count", "echoes_history", "is_echoed", "strip_echo"]

SUPERVISOR_PATH = "/ai-gateway/mlflow/v1/responses"
"""The Supervisor API's path on a workspace host."""
ECHOED_TYPES = frozenset({"function_call", "function_call_output"})


def echoes_history(url: str) -> bool:
    """Whether a background run submitted to ``url`` answers with the input history echoed."""
    return urlsplit(url).path.rstrip("/").endswith(SUPERVISOR_PATH)


def is_echoed(item: Any) -> bool:
    """Whether an input item comes back at the start of a background run's output."""
    return isinstance(item, Mapping) and (
        item.get("role") == "assistant" or item.get("type") in ECHOED_TYPES
    )


def echoed_count(input_items: Any) -> int:
    """How many leading output items of the run echo ``input_items`` (a string input: none)."""
    if not isinstance(input_items, Sequence) or isinstance(input_items, str):
        return 0
    return sum(1 for item in input_items if is_echoed(item))


def strip_echo(output: Sequence[Any], count: int) -> list[Any]:
    """``output`` without its first ``count`` items (the echoed history)."""
    return list(output[max(0, count) :])
