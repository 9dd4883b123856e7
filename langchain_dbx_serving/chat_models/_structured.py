"""``with_structured_output`` for every chat class: function calling, JSON schema, JSON mode."""

from __future__ import annotations

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


def build(
    model: BaseChatModel,
    schema: Any,
    *,
    method: Method = "function_calling",
    include_raw: bool = False,
    strict: bool | None = None,
    **kwargs: Any,
) -> Runnable:
    """The runnable returned by ``with_structured_output``."""
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
        spec: dict[str, Any] = {
            "name": json_schema.get("title") or convert_to_openai_tool(schema)["function"]["name"],
            "schema": json_schema,
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
