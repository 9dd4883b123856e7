"""Tool definitions and ``tool_choice`` in the one form every protocol module starts from."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.utils.function_calling import convert_to_openai_tool

_KEYWORDS = {"auto": "auto", "none": "none", "required": "required", "any": "required"}


# A dict whose "type" is one of these describes a function (or its JSON schema) to convert.
_FUNCTION_LIKE = frozenset({"function", "object"})


def format_tools(tools: Sequence[Any], *, strict: bool | None = None) -> list[dict[str, Any]]:
    """LangChain tools, functions, pydantic models or dicts -> OpenAI chat tool dicts.

    A dict of another ``type`` is a tool the server runs itself (Databricks' hosted
    ``genie_space``, ``uc_function``, ``knowledge_assistant``, ``uc_connection``, ``app``;
    ``mcp``, ``web_search``, ...) and passes unchanged.

    >>> format_tools([{"type": "genie_space", "genie_space": {"id": "g1"}}])
    [{'type': 'genie_space', 'genie_space': {'id': 'g1'}}]
    """
    return [
        dict(tool) if _hosted(tool) else convert_to_openai_tool(tool, strict=strict)
        for tool in tools
    ]


def _hosted(tool: Any) -> bool:
    kind = tool.get("type") if isinstance(tool, dict) else None
    return isinstance(kind, str) and kind not in _FUNCTION_LIKE


def normalize_tool_choice(tool_choice: Any) -> Any:
    """``"any"``/``True`` -> ``"required"``; a tool name -> the named-function form; dicts as given.

    >>> normalize_tool_choice("get_weather")
    {'type': 'function', 'function': {'name': 'get_weather'}}
    """
    if tool_choice is None or isinstance(tool_choice, dict):
        return tool_choice
    if tool_choice is True:
        return "required"
    if tool_choice is False:
        return "none"
    if isinstance(tool_choice, str):
        keyword = _KEYWORDS.get(tool_choice.lower())
        if keyword:
            return keyword
        return {"type": "function", "function": {"name": tool_choice}}
    raise ValueError(
        f"tool_choice must be 'auto', 'none', 'required', 'any', a tool name or a dict, "
        f"not {tool_choice!r}"
    )


def _tool_name(tool: Any) -> str | None:
    if not isinstance(tool, dict):
        return None
    function = tool.get("function")
    name = function.get("name") if isinstance(function, dict) else tool.get("name")
    return name if isinstance(name, str) else None


def check_tool_choice(tool_choice: Any, tools: Sequence[Any]) -> Any:
    """``tool_choice`` unchanged, after checking that a named tool is one of ``tools``.

    >>> check_tool_choice("auto", [])
    'auto'
    """
    if not isinstance(tool_choice, dict):
        return tool_choice
    function = tool_choice.get("function")
    name = function.get("name") if isinstance(function, dict) else tool_choice.get("name")
    if not isinstance(name, str):
        return tool_choice  # e.g. {"type": "web_search"}: a built-in tool, nothing to check
    names = [n for n in (_tool_name(tool) for tool in tools) if n]
    if name not in names:
        raise ValueError(
            f"tool_choice names the tool {name!r}, but the tools bound are {names}: pass the "
            f"tool in `tools` too, or choose 'auto', 'required' or one of {names}"
        )
    return tool_choice
