"""One merge rule for request parameters, whatever layer they come from.

A request is built from layers, later ones winning: the constructor's fields, then each
``bind(...)`` in order, then (for :class:`~langchain_dbx_serving.AgentEndpoint`) the keys of a
request dict, then the call's keyword arguments. ``custom_inputs``, ``databricks_options`` and
``context`` are merged key by key across the layers, a ``None`` value removing a key; every
other key is replaced by the last layer that sets it.

LangChain's ``RunnableBinding`` merges its kwargs with the call's shallowly
(``{**bound, **call}``), so a bound ``custom_inputs`` would be replaced by the call's.
:class:`DatabricksBinding` keeps a record of what was bound (``BOUND_KEY``) next to the
kwargs; the model then tells the bound layer from the call layer by identity, because the
shallow merge passes the bound objects through unchanged.

Example:
    >>> merge_layers({"a": 1, "b": 2}, {"b": None, "c": 3}, {"d": 4})
    {'a': 1, 'c': 3, 'd': 4}
    >>> bound = bind_kwargs({}, {"custom_inputs": {"a": 1}})
    >>> bound = bind_kwargs(bound, {"custom_inputs": {"b": 2}})
    >>> bound["custom_inputs"]
    {'a': 1, 'b': 2}
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from langchain_core.runnables import Runnable, RunnableBinding

__all__ = [
    "BOUND_KEY",
    "CLIENT_SETTINGS",
    "MERGED_KEYS",
    "DatabricksBinding",
    "bind_kwargs",
    "merge_layers",
    "split_call_kwargs",
]

MERGED_KEYS = ("custom_inputs", "databricks_options", "context")
"""Body keys whose dict values are merged key by key across layers (``None`` removes a key)."""

BOUND_KEY = "_databricks_bound"
"""The private kwarg in which a :class:`DatabricksBinding` records what was bound."""

CLIENT_SETTINGS = frozenset(
    {
        "timeout",
        "max_retries",
        "host",
        "token",
        "api_key",
        "base_url",
        "workspace_client",
        "http_client",
        "http_async_client",
        "allow_insecure_http",
        "target_uri",
    }
)
"""Constructor settings of the HTTP client: never request body keys, so never call kwargs."""

_TOMBSTONE = None


def _merge_two(base: Any, layer: Any, *, keep_removals: bool) -> Any:
    if layer is None:
        return base
    if not isinstance(layer, Mapping):
        return layer  # not a dict: the endpoint gets what was asked for, last one wins
    merged = dict(base) if isinstance(base, Mapping) else {}
    for key, value in layer.items():
        if value is _TOMBSTONE and not keep_removals:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def merge_layers(*layers: Any) -> Any:
    """Merge dict layers in order; a ``None`` value removes the key, a ``None`` layer is skipped.

    Returns ``None`` when no layer set anything or the result is empty.
    """
    result: Any = None
    for layer in layers:
        result = _merge_two(result, layer, keep_removals=False)
    if isinstance(result, Mapping) and not result:
        return None
    return result


def bind_kwargs(current: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """The kwargs of a binding after ``bind(**new)`` on one holding ``current``.

    Merged keys accumulate (removals are kept as ``None`` so that they still remove the
    constructor's keys at call time); other keys are replaced. The record under
    :data:`BOUND_KEY` holds the very objects stored in the kwargs.
    """
    kwargs = {k: v for k, v in current.items() if k != BOUND_KEY}
    for key, value in new.items():
        if key == BOUND_KEY:
            continue
        if key in MERGED_KEYS:
            kwargs[key] = _merge_two(kwargs.get(key), value, keep_removals=True)
        else:
            kwargs[key] = value
    # LangChain's own hints (ls_structured_output_format, ...) are consumed before the model
    # runs and are never body keys: the record leaves them out.
    kwargs[BOUND_KEY] = {k: v for k, v in kwargs.items() if not k.startswith("ls_")}
    return kwargs


def split_call_kwargs(kwargs: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(bound, call)``: the kwargs a model received, split into the bound and the call layer.

    The bound layer is what was recorded at bind time; a kwarg belongs to the call layer
    unless it is the very object recorded (the shallow merge passed it through). Kwargs
    LangChain consumes on the way (``ls_*``) are still in the record: the caller skips them.
    """
    record = kwargs.get(BOUND_KEY)
    bound = dict(record) if isinstance(record, Mapping) else {}
    call = {
        key: value
        for key, value in kwargs.items()
        if key != BOUND_KEY and not (key in bound and bound[key] is value)
    }
    return bound, call


# Call kwargs with a meaning of their own; a near miss of one of them is a typo, not a body key.
_KNOWN_CALL_KWARGS = (
    *MERGED_KEYS,
    "temperature",
    "max_tokens",
    "stop",
    "return_trace",
    "stream_usage",
    "extra_body",
    "tools",
    "tool_choice",
    "response_format",
)


def check_call_kwargs(kwargs: Mapping[str, Any], owner: str) -> None:
    """Refuse client settings given per call (they are not body keys) and near-miss typos of
    the kwargs that mean something (``custom_input=`` would be sent as an unknown body key)."""
    settings = sorted(CLIENT_SETTINGS.intersection(kwargs))
    if settings:
        raise TypeError(
            f"{', '.join(settings)} {'is a setting' if len(settings) == 1 else 'are settings'} "
            f"of the HTTP client, not a request parameter, and would not be sent: set "
            f"{'it' if len(settings) == 1 else 'them'} on the model instead, e.g. "
            f"{owner}(..., {settings[0]}=...)"
        )
    for name in kwargs:
        if name in _KNOWN_CALL_KWARGS or name.startswith(("_", "ls_")):
            continue
        close = difflib.get_close_matches(name, _KNOWN_CALL_KWARGS, n=1, cutoff=0.85)
        if close:
            raise TypeError(
                f"{owner} got the call argument {name!r}: did you mean {close[0]!r}? (it would "
                f"be sent as a body key of that name; pass it in extra_body={{...}} if that "
                "is really what the endpoint expects)"
            )


class DatabricksBinding(RunnableBinding):  # type: ignore[type-arg]
    """A ``RunnableBinding`` whose ``bind`` merges ``custom_inputs`` & co. instead of replacing.

    Returned by ``bind``/``bind_tools`` of the chat classes and by ``AgentEndpoint.bind``.
    ``bind_tools`` and ``with_structured_output`` keep what was already bound (LangChain's
    binding would forward them to the bare model and lose it).
    """

    def bind(self, **kwargs: Any) -> Runnable:  # type: ignore[type-arg]
        check_call_kwargs(kwargs, type(self.bound).__name__)
        return self.__class__(
            bound=self.bound,
            config=self.config,
            config_factories=self.config_factories,
            kwargs=bind_kwargs(self.kwargs, kwargs),
            custom_input_type=self.custom_input_type,
            custom_output_type=self.custom_output_type,
        )

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | Any],
        **kwargs: Any,
    ) -> Runnable:  # type: ignore[type-arg]
        tool_kwargs = self.bound._tool_binding_kwargs(tools, **kwargs)  # type: ignore[attr-defined]
        return self.bind(**tool_kwargs)

    def as_node(self, key: str = "messages") -> Runnable:  # type: ignore[type-arg]
        """``AgentEndpoint.as_node`` calling this binding, so what was bound is sent."""
        return self.bound.as_node(key, runnable=self)  # type: ignore[attr-defined]

    def with_structured_output(self, schema: Any = None, **kwargs: Any) -> Runnable:  # type: ignore[type-arg]
        from langchain_dbx_serving.chat_models import _structured

        return _structured.build(self, schema, endpoint=self.bound.endpoint, **kwargs)  # type: ignore[attr-defined]
