"""``with_structured_output`` for every chat class: function calling, JSON schema, JSON mode."""

from __future__ import annotations

import re
from collections.abc import Mapping
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Literal

from langchain_core.output_parsers import (
    JsonOutputKeyToolsParser,
    JsonOutputParser,
    PydanticOutputParser,
    PydanticToolsParser,
)
from langchain_core.runnables import Runnable, RunnableMap, RunnablePassthrough
from langchain_core.utils.function_calling import convert_to_json_schema, convert_to_openai_tool
from langchain_core.utils.pydantic import is_basemodel_subclass

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

Method = Literal["function_calling", "json_schema", "json_mode"]


def default_method(profile: Any) -> Method:
    """``json_schema`` when ``profile`` (``model.profile``) says the model supports native
    structured output, else ``function_calling``, which every tool-calling model follows.

    >>> default_method({"structured_output": True}), default_method(None)
    ('json_schema', 'function_calling')
    """
    if isinstance(profile, Mapping) and profile.get("structured_output") is True:
        return "json_schema"
    return "function_calling"


def build(
    model: BaseChatModel,
    schema: Any,
    *,
    method: Method = "function_calling",
    include_raw: bool = False,
    strict: bool | None = None,
    endpoint: str = "",
    **kwargs: Any,
) -> Runnable:
    """The runnable returned by ``with_structured_output``.

    ``endpoint`` decides ``strict`` for ``json_schema`` when the caller did not: see
    :func:`accepts_strict`.
    """
    if kwargs:
        raise ValueError(f"unexpected with_structured_output arguments: {sorted(kwargs)}")
    is_pydantic = isinstance(schema, type) and is_basemodel_subclass(schema)
    if schema is None and method != "json_mode":
        raise ValueError(f"method={method!r} needs a schema; only 'json_mode' works without one")
    trace_format = {"kwargs": {"method": method, "strict": strict}, "schema": schema}
    if method == "function_calling":
        tool_name = convert_to_openai_tool(schema)["function"]["name"]
        llm = model.bind_tools(  # type: ignore[call-arg]
            [schema], tool_choice=tool_name, strict=strict, ls_structured_output_format=trace_format
        )
        parser: Runnable = (
            PydanticToolsParser(tools=[schema], first_tool_only=True)
            if is_pydantic
            else JsonOutputKeyToolsParser(key_name=tool_name, first_tool_only=True)
        )
    elif method == "json_schema":
        json_schema = convert_to_json_schema(schema)
        if strict is None and accepts_strict(endpoint):
            strict = True
        spec: dict[str, Any] = {
            "name": json_schema.get("title") or convert_to_openai_tool(schema)["function"]["name"],
            "schema": strict_schema(json_schema) if strict else json_schema,
        }
        if strict is not None:
            spec["strict"] = strict
        llm = model.bind(
            response_format={"type": "json_schema", "json_schema": spec},
            ls_structured_output_format=trace_format,
        )
        parser = PydanticOutputParser(pydantic_object=schema) if is_pydantic else JsonOutputParser()
    elif method == "json_mode":
        llm = model.bind(
            response_format={"type": "json_object"}, ls_structured_output_format=trace_format
        )
        parser = PydanticOutputParser(pydantic_object=schema) if is_pydantic else JsonOutputParser()
    else:
        raise ValueError(
            f"method must be 'function_calling', 'json_schema' or 'json_mode', not {method!r}"
        )
    if not include_raw:
        return llm | parser
    parse = RunnablePassthrough.assign(
        parsed=itemgetter("raw") | parser, parsing_error=lambda _: None
    )
    no_parse = RunnablePassthrough.assign(parsed=lambda _: None)
    return RunnableMap(raw=llm) | parse.with_fallbacks([no_parse], exception_key="parsing_error")


# OpenAI-family models (GPT, o-series) behind Databricks enforce a schema with "strict": true
# and then require it to be strict-compatible (additionalProperties false on every object,
# every property required). Other families (Claude, Llama, Gemini, Gemma, Qwen, ...) follow
# the schema without the flag, and custom endpoints may reject unknown keys: no "strict".
_STRICT_FAMILY = re.compile(r"(^|[-_/.])(gpt|o[1-9]|openai)([-_/.]|$|\d)", re.IGNORECASE)


def accepts_strict(endpoint: str) -> bool:
    """Whether ``response_format`` gets ``"strict": true`` for this endpoint by default.

    >>> accepts_strict("databricks-gpt-5"), accepts_strict("databricks-claude-sonnet-4")
    (True, False)
    """
    return bool(_STRICT_FAMILY.search(endpoint or ""))


def strict_schema(schema: Any) -> Any:
    """A copy of a JSON schema that strict structured outputs accept.

    Every object gets ``additionalProperties: false`` and lists all its properties as
    required; properties that were optional become nullable, so "absent" stays expressible.

    >>> strict_schema({"type": "object", "properties": {"a": {"type": "string"}}})
    {'type': 'object', 'properties': {'a': {'type': ['string', 'null']}}, 'required': ['a'], 'additionalProperties': False}
    """  # noqa: E501
    if isinstance(schema, list):
        return [strict_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _NAMED_SUBSCHEMAS and isinstance(value, dict):
            out[key] = {name: strict_schema(sub) for name, sub in value.items()}
        else:
            out[key] = strict_schema(value)
    properties = out.get("properties")
    if out.get("type") == "object" or isinstance(properties, dict):
        properties = properties if isinstance(properties, dict) else {}
        required = set(out.get("required") or [])
        for name, sub in properties.items():
            if name not in required:
                properties[name] = _nullable(sub)
        if properties:
            out["properties"] = properties
        out["required"] = list(properties)
        out["additionalProperties"] = False
    return out


_NAMED_SUBSCHEMAS = ("properties", "$defs", "definitions", "patternProperties")


def _nullable(schema: Any) -> Any:
    if not isinstance(schema, dict):
        return schema
    kind = schema.get("type")
    if isinstance(kind, str):
        return schema if kind == "null" else {**schema, "type": [kind, "null"]}
    if isinstance(kind, list):
        return schema if "null" in kind else {**schema, "type": [*kind, "null"]}
    options = schema.get("anyOf")
    if isinstance(options, list):
        if any(isinstance(o, dict) and o.get("type") == "null" for o in options):
            return schema
        return {**schema, "anyOf": [*options, {"type": "null"}]}
    return {"anyOf": [schema, {"type": "null"}]}
