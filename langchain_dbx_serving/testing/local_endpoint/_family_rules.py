"""The local endpoint's model-family rules: what a real Claude or Gemini endpoint rejects.

An endpoint whose name reveals its family (``databricks-claude-sonnet-4-5``,
``databricks-gemini-3-pro``; see ``protocols/_families.py``) answers a chat-completions
request that breaks one of its family's rules with a 400, the way the real service does, so a
client's mistakes show up in offline tests:

- Claude with ``thinking`` enabled: the budget rules (at least 1024, below ``max_tokens``, no
  forced tool use, sampling limits), and the replay rule: the assistant turn of the tool loop
  in progress must start with its signed reasoning, and every signed reasoning part must come
  back exactly as this endpoint issued it (an emptied or edited block has an invalid
  signature);
- Claude 5.5 models and Claude Fable 5.1: ``response_format`` (structured outputs) is
  refused; those models take function calling;
- Gemini 3: every assistant tool-call turn of the current turn must carry, on its first tool
  call, the ``thought_signature`` this endpoint issued with it.

The endpoint remembers what it issued (:meth:`FamilyRules.observe` watches every reply and
stream it sends); a signature it never issued is refused like a forged one.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from langchain_dbx_serving.protocols._families import (
    ITEM_PREFIXES,
    MAX_ITEM_ID,
    claude_thinking_problem,
    detect_family,
    needs_thought_signatures,
    open_tool_cycle,
    rejects_parallel_tool_calls,
    rejects_response_format,
)
from langchain_dbx_serving.testing.local_endpoint.replies import Delta, ErrorReply, Reply

_CODE = "BAD_REQUEST"


class FamilyRules:
    """Checks requests against their family's rules and remembers the signatures it issued."""

    def __init__(self) -> None:
        self._reasoning: dict[str, str] = {}  # signature -> the reasoning text it signs
        self._thoughts: set[str] = set()
        self._lock = threading.Lock()

    # -- what the endpoint sends -----------------------------------------------------------------

    def observe(self, result: Any) -> Any:
        """``result`` unchanged (a reply, or a stream wrapped to watch it go by)."""
        if isinstance(result, Reply):
            self._remember_reply(result)
            return result
        if isinstance(result, (ErrorReply, str, bytes)) or not hasattr(result, "__iter__"):
            return result
        return self._watch(iter(result))

    def _remember_reply(self, reply: Reply) -> None:
        with self._lock:
            if reply.reasoning_signature:
                self._reasoning[reply.reasoning_signature] = reply.full_reasoning
            self._thoughts.update(
                c.thought_signature for c in reply.tool_calls if c.thought_signature
            )

    def _watch(self, pieces: Iterator[Any]) -> Iterator[Any]:
        reasoning: list[str] = []
        for piece in pieces:
            if isinstance(piece, Delta):
                reasoning += [piece.reasoning] if piece.reasoning else []
                with self._lock:
                    if piece.signature:
                        self._reasoning[piece.signature] = "".join(reasoning)
                        reasoning = []
                    call = piece.tool_call
                    if call is not None and call.thought_signature:
                        self._thoughts.add(call.thought_signature)
            elif isinstance(piece, Reply):
                self._remember_reply(piece)
            yield piece

    # -- what the endpoint receives --------------------------------------------------------------

    def check(self, endpoint: str, body: Mapping[str, Any]) -> ErrorReply | None:
        """The 400 a real endpoint of this family would answer to ``body``, or ``None``."""
        family = detect_family(endpoint, body.get("model"))
        messages = body.get("messages")
        if family == "openai" and isinstance(body.get("input"), list):
            problem = _item_id_problem(body["input"])
            return ErrorReply(400, _CODE, problem) if problem else None
        if not isinstance(messages, list):
            return None
        problem = None
        if rejects_parallel_tool_calls(endpoint) and any(
            isinstance(m, Mapping)
            and isinstance(m.get("tool_calls"), list)
            and len(m["tool_calls"]) > 1
            for m in messages
        ):
            problem = "Multiple tool calls are not supported.\n"
        elif family == "claude" and "response_format" in body and rejects_response_format(endpoint):
            problem = "response_format is not supported for this model; use tool calling.\n"
        elif family == "claude":
            problem = claude_thinking_problem(body) or self._claude_replay_problem(body, messages)
        elif needs_thought_signatures(family) and body.get("tools"):
            problem = self._gemini_replay_problem(messages)
        return ErrorReply(400, _CODE, problem) if problem else None

    def _claude_replay_problem(
        self, body: Mapping[str, Any], messages: Sequence[Any]
    ) -> str | None:
        thinking = body.get("thinking")
        if not isinstance(thinking, Mapping) or thinking.get("type") != "enabled":
            return None
        for index, message in enumerate(messages):
            for position, part in enumerate(_parts(message)):
                signature = _reasoning_signature(part)
                if signature is None:
                    continue
                with self._lock:
                    issued = self._reasoning.get(signature)
                if issued is None or issued != _reasoning_text(part):
                    return (
                        f"messages.{index}.content.{position}: Invalid `signature` in "
                        "`thinking` block: thinking blocks must be passed back exactly as "
                        "they were received"
                    )
        cycle = open_tool_cycle(messages)
        if cycle is None:
            return None
        parts = _parts(messages[cycle])
        if not parts or _reasoning_signature(parts[0]) is None:
            found = parts[0].get("type") if parts and isinstance(parts[0], Mapping) else "text"
            return (
                f"messages.{cycle}.content.0.type: Expected `thinking` or `redacted_thinking`, "
                f"but found `{found}`. When `thinking` is enabled, a final `assistant` message "
                "must start with a thinking block (preceding the lastmost set of tool calls "
                "and tool results)"
            )
        return None

    def _gemini_replay_problem(self, messages: Sequence[Any]) -> str | None:
        last_user = max(
            (
                i
                for i, m in enumerate(messages)
                if isinstance(m, Mapping) and m.get("role") == "user"
            ),
            default=-1,
        )
        for index in range(last_user + 1, len(messages)):
            message = messages[index]
            if not isinstance(message, Mapping) or message.get("role") != "assistant":
                continue
            calls = message.get("tool_calls")
            if not isinstance(calls, list) or not calls or not isinstance(calls[0], Mapping):
                continue
            signature = calls[0].get("thought_signature")
            with self._lock:
                known = isinstance(signature, str) and signature in self._thoughts
            if not known:
                name = (calls[0].get("function") or {}).get("name", "")
                return (
                    f"Unable to submit request because function call `{name}` in the "
                    f"{index + 1}. content block is missing a `thought_signature`"
                )
        return None


def _parts(message: Any) -> list[Any]:
    if not isinstance(message, Mapping) or message.get("role") != "assistant":
        return []
    content = message.get("content")
    return list(content) if isinstance(content, list) else []


def _reasoning_signature(part: Any) -> str | None:
    if not isinstance(part, Mapping) or part.get("type") != "reasoning":
        return None
    for item in part.get("summary") or []:
        if isinstance(item, Mapping) and isinstance(item.get("signature"), str):
            return item["signature"] or None
    return None


def _reasoning_text(part: Mapping[str, Any]) -> str:
    return "".join(
        str(item.get("text") or "")
        for item in part.get("summary") or []
        if isinstance(item, Mapping)
    )


def _item_id_problem(items: Sequence[Any]) -> str | None:
    """Echoed responses items whose ids the Foundation Model API refuses (docs/models.md)."""
    for index, item in enumerate(items):
        if not isinstance(item, Mapping) or not isinstance(item.get("id"), str):
            continue
        item_id, prefix = item["id"], ITEM_PREFIXES.get(str(item.get("type")), "")
        if len(item_id) > MAX_ITEM_ID:
            return (
                f"Invalid 'input[{index}].id': string too long. Expected a string with maximum "
                f"length {MAX_ITEM_ID}, but got a string with length {len(item_id)} instead."
            )
        if prefix and not item_id.startswith(prefix):
            return (
                f"Invalid 'input[{index}].id': '{item_id}'. Expected an ID that begins with "
                f"'{prefix}'."
            )
    return None
