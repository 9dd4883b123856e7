"""Model families behind Databricks endpoints, and the request rules each family sets.

The one owner of per-family knowledge; ``docs/models.md`` lists every rule with its source.

- :func:`detect_family` names the family from an endpoint name or a served model id
  (``databricks-claude-sonnet-4``, ``system.ai.gemini-3-pro``, ``databricks-gpt-oss-120b``);
- :func:`apply_family_rules` turns the one reasoning knob (``reasoning_effort``, or
  ``reasoning={"effort", "budget_tokens", "summary"}``) into the family's own request
  fields, strips what the family does not accept (``strict`` in tool schemas), and raises
  :class:`ModelRuleError` for a combination the family rejects, before anything is sent.

A rule is here only when a primary source states it; what could not be sourced is left to the
endpoint (and listed as such in ``docs/models.md``).

Example:
    >>> detect_family("databricks-claude-sonnet-4-5")
    'claude'
    >>> apply_family_rules(
    ...     {"max_tokens": 4096, "reasoning": {"budget_tokens": 2048}},
    ...     family="claude", protocol="chat", endpoint="databricks-claude-sonnet-4-5",
    ... )
    {'max_tokens': 4096, 'thinking': {'type': 'enabled', 'budget_tokens': 2048}}
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal, get_args

from langchain_dbx_serving.errors import ModelRuleError

__all__ = [
    "FAMILIES",
    "ITEM_PREFIXES",
    "MAX_ITEM_ID",
    "Family",
    "SOURCES",
    "apply_body_rules",
    "apply_family_rules",
    "claude_thinking_problem",
    "detect_family",
    "drop_stale_empty_reasoning",
    "needs_thought_signatures",
    "normalize_item_ids",
    "open_tool_cycle",
    "profile_for",
    "rejects_response_format",
    "rejects_parallel_tool_calls",
    "split_parallel_tool_calls",
]

Family = Literal["claude", "gemini-2.5", "gemini-3", "openai", "other"]
Protocol = Literal["chat", "responses"]
FAMILIES: tuple[str, ...] = get_args(Family)

SOURCES = {
    "databricks-reasoning": (
        "https://docs.databricks.com/aws/en/machine-learning/model-serving/query-reason-models"
    ),
    "anthropic-extended-thinking": (
        "https://platform.claude.com/docs/en/build-with-claude/extended-thinking"
    ),
    "anthropic-thinking": "https://platform.claude.com/docs/en/build-with-claude/thinking",
    "databricks-openai-strict": (
        "databricks-ai-bridge integrations/openai/src/databricks_openai/utils/clients.py "
        "(_should_strip_strict)"
    ),
    "gemini-thought-signatures": "https://ai.google.dev/gemini-api/docs/thought-signatures",
    "databricks-structured-outputs": (
        "https://docs.databricks.com/aws/en/machine-learning/model-serving/structured-outputs"
    ),
    "databricks-anthropic-messages": (
        "https://learn.microsoft.com/en-au/azure/databricks/machine-learning/model-serving/"
        "query-anthropic-messages"
    ),
    "databricks-function-calling": (
        "https://learn.microsoft.com/zh-cn/azure/databricks/machine-learning/model-serving/"
        "function-calling"
    ),
    "databricks-supported-models": (
        "https://learn.microsoft.com/azure/databricks/machine-learning/foundation-model-apis/"
        "supported-models"
    ),
}
"""Where each rule comes from; error messages cite these."""

# Order matters: the first family whose pattern matches a name wins.
_PATTERNS: tuple[tuple[Family, re.Pattern[str]], ...] = (
    ("claude", re.compile(r"claude")),
    ("gemini-2.5", re.compile(r"gemini-2[-.]5")),
    ("gemini-3", re.compile(r"gemini-3(?![0-9])")),
    ("openai", re.compile(r"gpt|(?:^|[^a-z0-9])o[1-9](?:$|[^0-9])")),
)

_KNOB_KEYS = frozenset({"effort", "budget_tokens", "summary"})
# Databricks: gpt-oss accepts "low", "medium" (default) or "high" (databricks-reasoning).
_GPT_OSS_EFFORTS = ("low", "medium", "high")
# Anthropic: the thinking budget has a floor of 1,024 tokens (anthropic-extended-thinking).
_CLAUDE_MIN_BUDGET = 1024
_UNCHANGED_HINT = (
    "If this endpoint does accept it, pass model_family='other' to send fields unchanged, "
    "or put the provider's own field in extra_body."
)


def detect_family(*names: str | None) -> Family:
    """The family of the first name that reveals one (endpoint name, then served model id).

    >>> detect_family("my-agent", "system.ai.gemini-2-5-flash")
    'gemini-2.5'
    >>> detect_family("databricks-gpt-oss-120b"), detect_family("databricks-meta-llama-3-3")
    ('openai', 'other')
    """
    for name in names:
        if isinstance(name, str) and name and (family := _family_of_name(name)) is not None:
            return family
    return "other"


@functools.lru_cache(maxsize=512)
def _family_of_name(name: str) -> Family | None:
    """The family one name reveals (a pure function of the name, asked on every call)."""
    lowered = name.lower()
    for family, pattern in _PATTERNS:
        if pattern.search(lowered):
            return family
    return None


def needs_thought_signatures(family: str) -> bool:
    """Whether the family rejects a tool-call turn replayed without its thought signature."""
    return family == "gemini-3"


def apply_family_rules(
    params: Mapping[str, Any], *, family: str, protocol: Protocol, endpoint: str = ""
) -> dict[str, Any]:
    """``params`` with the reasoning knob mapped for ``family``; raises ModelRuleError.

    ``protocol`` is ``"chat"`` (chat completions) or ``"responses"``. The knob is read from
    ``reasoning_effort`` and from ``reasoning`` (a dict with ``effort``, ``budget_tokens``
    and ``summary``); raw family fields (``thinking``) are checked by the same rules.
    """
    if family not in FAMILIES:
        raise ModelRuleError(
            f"model_family={family!r} is not one of {', '.join(FAMILIES)}",
            endpoint=endpoint or None,
        )
    out = dict(params)
    knob, passthrough = _pop_knob(out, protocol, endpoint)
    if protocol == "responses":
        _map_responses(out, knob, passthrough, family, endpoint)
    else:
        _map_chat(out, knob, family, endpoint)
        if family == "claude" and (problem := claude_thinking_problem(out)):
            raise _rule(problem, endpoint)
        if family == "claude" and "response_format" in out and rejects_response_format(endpoint):
            raise _rule(
                "response_format (structured outputs) is refused by this Claude model with "
                "HTTP 400: use with_structured_output(method='function_calling'), its default "
                f"here, or bind tools ({SOURCES['databricks-anthropic-messages']})",
                endpoint,
            )
    if protocol == "chat" and family in ("claude", "gemini-2.5", "gemini-3") and "tools" in out:
        out["tools"] = _without_strict(out["tools"])
    return out


# ---------------------------------------------------------------------------------------------
# The knob


def _pop_knob(
    params: dict[str, Any], protocol: Protocol, endpoint: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Remove ``reasoning_effort`` and ``reasoning`` from ``params``; return the knob's values
    and (responses only) other ``reasoning`` keys to pass through unchanged."""
    effort = params.pop("reasoning_effort", None)
    reasoning = params.pop("reasoning", None)
    if reasoning is None:
        reasoning = {}
    if not isinstance(reasoning, Mapping):
        raise _rule(
            f"reasoning must be a dict with keys {sorted(_KNOB_KEYS)}, not {reasoning!r}",
            endpoint,
        )
    unknown = {k: v for k, v in reasoning.items() if k not in _KNOB_KEYS}
    if unknown and protocol == "chat":
        raise _rule(
            f"unknown reasoning keys {sorted(unknown)}: the keys are "
            "'effort', 'budget_tokens' and 'summary'",
            endpoint,
        )
    knob = {k: reasoning[k] for k in _KNOB_KEYS if reasoning.get(k) is not None}
    if effort is not None:
        if "effort" in knob and knob["effort"] != effort:
            raise _rule(
                f"reasoning_effort={effort!r} and reasoning={{'effort': {knob['effort']!r}}} "
                "disagree: give the effort once",
                endpoint,
            )
        knob["effort"] = effort
    if "effort" in knob and not isinstance(knob["effort"], str):
        raise _rule(f"reasoning effort must be a string, not {knob['effort']!r}", endpoint)
    budget = knob.get("budget_tokens")
    if budget is not None and (not isinstance(budget, int) or isinstance(budget, bool)):
        raise _rule(f"reasoning budget_tokens must be an integer, not {budget!r}", endpoint)
    return knob, unknown


def _map_chat(out: dict[str, Any], knob: Mapping[str, Any], family: str, endpoint: str) -> None:
    if "summary" in knob:
        raise _rule(
            "reasoning summary is a responses-protocol option (reasoning.summary); chat "
            "completions have no such field: use ChatDatabricksResponses, or drop 'summary'",
            endpoint,
        )
    if "effort" in knob:
        if family == "claude":
            raise _rule(
                "Claude models on Databricks take a thinking budget, not an effort level "
                f"(thinking.budget_tokens; {SOURCES['databricks-reasoning']}): pass "
                "reasoning={'budget_tokens': N} with 1024 <= N < max_tokens. " + _UNCHANGED_HINT,
                endpoint,
            )
        _check_effort_value(knob["effort"], endpoint)
        out["reasoning_effort"] = knob["effort"]
    if "budget_tokens" in knob:
        if family != "claude":
            raise _no_budget(family, endpoint)
        out["thinking"] = {"type": "enabled", "budget_tokens": knob["budget_tokens"]}


def _map_responses(
    out: dict[str, Any],
    knob: Mapping[str, Any],
    passthrough: Mapping[str, Any],
    family: str,
    endpoint: str,
) -> None:
    if "budget_tokens" in knob:
        raise _rule(
            "budget_tokens has no responses-protocol field (reasoning takes 'effort' and "
            "'summary'): use reasoning={'effort': ...}, or ChatDatabricksServing for a Claude "
            "thinking budget",
            endpoint,
        )
    # No Claude rule here: the responses protocol mostly reaches agents, whose names say
    # nothing reliable about the model inside, and Databricks serves Claude over chat.
    if "effort" in knob:
        _check_effort_value(knob["effort"], endpoint)
    reasoning = {**passthrough, **{k: knob[k] for k in ("effort", "summary") if k in knob}}
    if reasoning:
        out["reasoning"] = reasoning


def _check_effort_value(effort: str, endpoint: str) -> None:
    # Only gpt-oss has a documented value set on Databricks; other models validate their own.
    if "gpt-oss" in endpoint.lower() and effort not in _GPT_OSS_EFFORTS:
        raise _rule(
            f"reasoning effort {effort!r} is not accepted by gpt-oss models: use one of "
            f"{', '.join(_GPT_OSS_EFFORTS)} ({SOURCES['databricks-reasoning']})",
            endpoint,
        )


def _no_budget(family: str, endpoint: str) -> ModelRuleError:
    return _rule(
        f"{family} models take reasoning_effort, and Databricks documents no token-budget "
        f"field for them ({SOURCES['databricks-reasoning']}): use reasoning={{'effort': ...}}. "
        + _UNCHANGED_HINT,
        endpoint,
    )


# ---------------------------------------------------------------------------------------------
# Claude extended thinking


def claude_thinking_problem(params: Mapping[str, Any]) -> str | None:
    """What breaks the documented constraints of ``thinking: {"type": "enabled", ...}``, if any.

    >>> claude_thinking_problem({"thinking": {"type": "enabled", "budget_tokens": 512}})[:50]
    'Claude thinking budget_tokens=512 is below the min'
    """
    thinking = params.get("thinking")
    if not isinstance(thinking, Mapping) or thinking.get("type") != "enabled":
        return None
    budget = thinking.get("budget_tokens")
    if not isinstance(budget, int) or isinstance(budget, bool):
        return f"Claude thinking needs an integer budget_tokens ({SOURCES['databricks-reasoning']})"
    if budget < _CLAUDE_MIN_BUDGET:
        return (
            f"Claude thinking budget_tokens={budget} is below the minimum of "
            f"{_CLAUDE_MIN_BUDGET} ({SOURCES['anthropic-extended-thinking']})"
        )
    max_tokens = params.get("max_tokens")
    if not isinstance(max_tokens, int) or budget >= max_tokens:
        return (
            f"Claude thinking budget_tokens={budget} must be less than max_tokens "
            f"(max_tokens={max_tokens!r}; {SOURCES['databricks-reasoning']}): set max_tokens "
            "above the budget, which also leaves room for the answer"
        )
    choice = params.get("tool_choice")
    if choice == "required" or (isinstance(choice, Mapping) and choice.get("type") != "auto"):
        return (
            f"tool_choice={choice!r} forces tool use, which Claude rejects with thinking "
            f"enabled: use 'auto' or 'none' ({SOURCES['anthropic-thinking']})"
        )
    return _sampling_problem(params)


def _sampling_problem(params: Mapping[str, Any]) -> str | None:
    source = SOURCES["anthropic-thinking"]
    temperature = params.get("temperature")
    if temperature is not None and temperature != 1:
        return (
            f"temperature={temperature!r} cannot be combined with Claude thinking: leave "
            f"temperature unset (or 1) when thinking is enabled ({source})"
        )
    if params.get("top_k") is not None:
        return f"top_k cannot be combined with Claude thinking ({source})"
    top_p = params.get("top_p")
    if top_p is not None and not (isinstance(top_p, (int, float)) and 0.95 <= top_p <= 1):
        return (
            f"top_p={top_p!r} cannot be combined with Claude thinking: use a value between "
            f"0.95 and 1, or leave it unset ({source})"
        )
    return None


# ---------------------------------------------------------------------------------------------
# Model profiles (langchain-core ``BaseChatModel.profile``)

# Only what Databricks documents; each fact's source is in docs/models.md ("Model profiles").
# Reasoning (databricks-reasoning): reasoning returned as content parts (Claude), effort
# levels and defaults. Unknown facts are left out rather than guessed.
_GPT_OSS_PROFILE: dict[str, Any] = {
    "reasoning_effort_levels": list(_GPT_OSS_EFFORTS),
    "reasoning_effort_default": "medium",
}

# Foundation Model API model names: pay-per-token endpoints and AI Gateway model services.
_FMAPI_NAME = re.compile(r"^(databricks-|system\.ai\.)")
# Structured outputs (response_format) work with Foundation Model API chat models
# (databricks-structured-outputs), except these Claude models, which answer it with a 400
# (databricks-anthropic-messages).
_NO_RESPONSE_FORMAT = re.compile(r"claude-(?:(?:opus|sonnet|haiku)-5-5|fable-5-1)(?![-.]?[0-9])")
# Rows of Databricks' function-calling table we could read (databricks-function-calling).
_TOOL_CALLING = re.compile(r"claude-(?:sonnet|haiku)-4-5$|gpt-oss-20b$|qwen3-next-80b")
# Per-model facts of Databricks' supported-models page (databricks-supported-models).
_MODEL_FACTS: tuple[tuple[re.Pattern[str], dict[str, Any]], ...] = (
    (re.compile(r"gpt-5$"), {"max_input_tokens": 128_000}),
    (
        re.compile(r"gemini-3-1-flash-lite$"),
        {"text_inputs": True, "image_inputs": True, "video_inputs": True, "audio_inputs": True},
    ),
    (re.compile(r"llama-4-maverick$"), {"text_inputs": True, "image_inputs": False}),
)


def rejects_response_format(endpoint: str) -> bool:
    """Whether the Foundation Model API Claude model behind ``endpoint`` answers
    ``response_format`` with a 400 (databricks-anthropic-messages: use function calling).

    >>> rejects_response_format("databricks-claude-opus-5-5"), rejects_response_format("my-ep")
    (True, False)
    """
    name = endpoint.lower()
    return bool(_FMAPI_NAME.match(name) and _NO_RESPONSE_FORMAT.search(name))


def profile_for(family: str, endpoint: str, protocol: Protocol = "chat") -> dict[str, Any] | None:
    """The documented capabilities of the model behind ``endpoint``, or ``None``.

    ``structured_output`` and ``tool_calling`` are stated for chat completions
    (``response_format``, ``tools``) on Foundation Model API names (``databricks-…``,
    ``system.ai.…``) only: a custom or external-model endpoint gets neither.

    >>> profile_for("openai", "databricks-gpt-oss-120b")["reasoning_effort_default"]
    'medium'
    >>> profile_for("claude", "databricks-claude-sonnet-5-5")["structured_output"]
    False
    >>> profile_for("other", "my-agent") is None
    True
    """
    name = endpoint.lower()
    profile: dict[str, Any] = {}
    if family == "claude":
        profile["reasoning_output"] = True
    if family == "openai" and "gpt-oss" in name:
        profile.update(_GPT_OSS_PROFILE)
    elif family == "openai" and re.search(r"gpt-5-[12](?![0-9])", name):
        profile["reasoning_effort_default"] = "none"
    elif family == "openai" and re.search(r"gpt-5(?![-.]?[0-9])", name):
        profile["reasoning_effort_default"] = "minimal"
    if _FMAPI_NAME.match(name):
        for pattern, facts in _MODEL_FACTS:
            if pattern.search(name):
                profile.update(facts)
        if protocol == "chat" and family in ("claude", "gemini-2.5", "gemini-3", "openai"):
            profile["structured_output"] = not _NO_RESPONSE_FORMAT.search(name)
        if protocol == "chat" and _TOOL_CALLING.search(name):
            profile["tool_calling"] = True
    return profile or None


# ---------------------------------------------------------------------------------------------
# Replayed reasoning


def drop_stale_empty_reasoning(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Wire messages without signed reasoning parts that lost their text, outside the open
    tool loop.

    A signed thinking block replayed with empty text no longer matches its signature and
    makes Claude reject the whole conversation (sessions saved that way cannot resume;
    goose issue #12090 against Databricks). Only the thinking of the tool loop in progress
    must be replayed; earlier turns' thinking is ignored by the model (anthropic-thinking), so
    dropping the hollow ones there is safe. In the open tool loop nothing is dropped: the
    endpoint's answer is the honest one.
    """
    open_cycle = open_tool_cycle(messages)
    out = []
    for index, message in enumerate(messages):
        content = message.get("content")
        if index != open_cycle and message.get("role") == "assistant" and isinstance(content, list):
            kept = [part for part in content if not _hollow_signed_reasoning(part)]
            if len(kept) != len(content):
                message = {**message, "content": _collapse(kept, bool(message.get("tool_calls")))}
        out.append(message)
    return out


def _hollow_signed_reasoning(part: Any) -> bool:
    if not isinstance(part, Mapping) or part.get("type") != "reasoning":
        return False
    summary = part.get("summary")
    if not isinstance(summary, list) or not summary:
        return False
    items = [item for item in summary if isinstance(item, Mapping)]
    # Only the plain {type: summary_text, text, signature} form: other forms are kept as sent.
    plain = all(set(item) <= {"type", "text", "signature"} for item in items)
    signed = any(item.get("signature") for item in items)
    return plain and signed and not any(item.get("text") for item in items)


def _collapse(parts: list[Any], has_tool_calls: bool) -> Any:
    if all(isinstance(p, Mapping) and p.get("type") == "text" for p in parts):
        text = "".join(str(p.get("text") or "") for p in parts)
        # Claude rejects an empty assistant text; a tool-call-only turn carries " ".
        return text or (" " if has_tool_calls else "")
    return parts


def open_tool_cycle(messages: Sequence[Any]) -> int | None:
    """Index of the assistant turn whose tool calls the trailing tool messages answer.

    >>> open_tool_cycle([{"role": "user"}, {"role": "assistant", "tool_calls": [{}]},
    ...                  {"role": "tool"}])
    1
    """
    roles = [m.get("role") if isinstance(m, Mapping) else None for m in messages]
    index = len(roles) - 1
    while index >= 0 and roles[index] == "tool":
        index -= 1
    if index < 0 or index == len(roles) - 1 or roles[index] != "assistant":
        return None
    return index if messages[index].get("tool_calls") else None


# ---------------------------------------------------------------------------------------------
# Responses item ids echoed back

MAX_ITEM_ID = 64
# Foundation Model API responses endpoints reject echoed ids over 64 characters, and message /
# function_call ids without their own prefix (databricks-langchain, chat_models.py:
# "FMAPI enforces max 64-char IDs and requires msg_ prefix on message ids"; "FMAPI requires
# fc_ prefix on function_call ids").
ITEM_PREFIXES = {"message": "msg_", "function_call": "fc_"}


def apply_body_rules(
    body: dict[str, Any], *, family: str, protocol: Protocol, endpoint: str = ""
) -> dict[str, Any]:
    """The encoded request body adjusted to the family's wire limits.

    Responses input item ids are normalised for OpenAI-family models (the Foundation Model API
    responses route); an agent's own ids (family ``other``) go back exactly as it sent them.
    Parallel tool calls in the history are split for the models that refuse them.
    """
    if protocol == "responses" and family == "openai" and isinstance(body.get("input"), list):
        return {**body, "input": normalize_item_ids(body["input"])}
    messages = body.get("messages")
    if protocol == "chat" and rejects_parallel_tool_calls(endpoint) and isinstance(messages, list):
        return {**body, "messages": split_parallel_tool_calls(messages)}
    return body


def rejects_parallel_tool_calls(endpoint: str) -> bool:
    """gpt-oss endpoints answer a history with parallel tool calls with 400 "Multiple tool
    calls are not supported." (recorded against ``databricks-gpt-oss-120b``, litellm PR
    #31633)."""
    return "gpt-oss" in endpoint.lower()


def split_parallel_tool_calls(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Wire messages where an assistant turn with several tool calls becomes one turn per call,
    each followed by the tool result that answers it.

    >>> calls = [{"id": "a"}, {"id": "b"}]
    >>> split = split_parallel_tool_calls([
    ...     {"role": "assistant", "content": "x", "tool_calls": calls},
    ...     {"role": "tool", "tool_call_id": "b", "content": "2"},
    ...     {"role": "tool", "tool_call_id": "a", "content": "1"}])
    >>> [(m["role"], m.get("tool_call_id") or m["tool_calls"][0]["id"]) for m in split]
    [('assistant', 'a'), ('tool', 'a'), ('assistant', 'b'), ('tool', 'b')]
    """
    out: list[dict[str, Any]] = []
    index = 0
    while index < len(messages):
        message = messages[index]
        calls = message.get("tool_calls") if message.get("role") == "assistant" else None
        if not isinstance(calls, list) or len(calls) < 2:
            out.append(message)
            index += 1
            continue
        end = index + 1
        while end < len(messages) and messages[end].get("role") == "tool":
            end += 1
        results = list(messages[index + 1 : end])
        for position, call in enumerate(calls):
            content = message.get("content") if position == 0 else " "
            out.append({**message, "content": content, "tool_calls": [call]})
            call_id = call.get("id") if isinstance(call, Mapping) else None
            out.extend(r for r in results if r.get("tool_call_id") == call_id)
            results = [r for r in results if r.get("tool_call_id") != call_id]
        out.extend(results)  # results answering no call of this turn keep their place
        index = end
    return out


def normalize_item_ids(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Responses input items with ids the service accepts when they are echoed back.

    An id gets its item type's prefix when it has a foreign one, and an id longer than 64
    characters is shortened to 60 plus a short hash of the whole, so that two long ids that
    share a beginning stay distinct and the same id always maps to the same value.

    >>> normalize_item_ids([{"type": "message", "id": "lc_run--1"}])
    [{'type': 'message', 'id': 'msg_lc_run--1'}]
    """
    out = []
    for item in items:
        item_id = item.get("id") if isinstance(item, Mapping) else None
        if isinstance(item_id, str) and item_id:
            fixed = _normal_id(item_id, ITEM_PREFIXES.get(str(item.get("type")), ""))
            if fixed != item_id:
                item = {**item, "id": fixed}
        out.append(item)
    return out


def _normal_id(item_id: str, prefix: str) -> str:
    if prefix and not item_id.startswith(prefix):
        item_id = prefix + item_id
    if len(item_id) <= MAX_ITEM_ID:
        return item_id
    digest = hashlib.sha256(item_id.encode()).hexdigest()[:8]
    return f"{item_id[: MAX_ITEM_ID - 9]}_{digest}"


# ---------------------------------------------------------------------------------------------
# Tool schemas


def _without_strict(tools: Any) -> Any:
    """Tools with ``strict`` removed: only OpenAI models accept it (databricks-openai-strict)."""
    if not isinstance(tools, list):
        return tools
    out = []
    for tool in tools:
        if isinstance(tool, Mapping) and isinstance(tool.get("function"), Mapping):
            function = {k: v for k, v in tool["function"].items() if k != "strict"}
            tool = {**tool, "function": function}
        elif isinstance(tool, Mapping) and "strict" in tool:
            tool = {k: v for k, v in tool.items() if k != "strict"}
        out.append(tool)
    return out


def _rule(message: str, endpoint: str) -> ModelRuleError:
    where = f"endpoint '{endpoint}': " if endpoint else ""
    text = f"{where}{message.rstrip('.')} (nothing was sent)"
    return ModelRuleError(text, endpoint=endpoint or None)
