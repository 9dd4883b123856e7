"""Constructor arguments: other packages' names accepted as aliases, unknown names refused.

pydantic ignores arguments no field takes, so ``ChatDatabricksServing(custom_input={...})``
would build a model that silently sends nothing. :func:`normalize` runs before validation of
every class built on :class:`~langchain_dbx_serving._connection.DatabricksConnection`:

- ``extra_params`` (databricks-langchain) and ``model_kwargs`` (LangChain) go into
  ``extra_body`` (keys given in ``extra_body`` itself win);
- ``target_uri`` (databricks-langchain, deprecated there too) becomes ``host`` when it is a
  URL, is dropped when it is ``"databricks"`` (the default workspace), and is refused for
  ``"databricks://<profile>"`` (pass ``workspace_client=WorkspaceClient(profile=...)``), each
  time with a ``DeprecationWarning``;
- any other name that is neither a field nor a field's alias raises
  :class:`~langchain_dbx_serving.errors.UnknownArgumentError` naming the nearest field.

Example:
    >>> from langchain_dbx_serving import ChatDatabricksServing
    >>> ChatDatabricksServing(model="m", custom_input={"a": 1})
    Traceback (most recent call last):
    ...
    langchain_dbx_serving.errors.UnknownArgumentError: ChatDatabricksServing got an unknown argument 'custom_input': did you mean 'custom_inputs'? ...
"""  # noqa: E501

from __future__ import annotations

import difflib
import sys
import warnings
from typing import Any

from langchain_dbx_serving.errors import ConfigurationError, UnknownArgumentError

__all__ = ["normalize"]

_INTO_EXTRA_BODY = ("extra_params", "model_kwargs")


def _known_names(cls: Any) -> set[str]:
    names: set[str] = set()
    for name, info in cls.model_fields.items():
        names.add(name)
        for alias in (info.alias, info.validation_alias):
            if isinstance(alias, str):
                names.add(alias)
    return names


_LIBRARY_FILES = ("pydantic", "langchain_core", "langchain_dbx_serving")


def _caller_level() -> int:
    """The ``stacklevel`` of the first frame outside pydantic, langchain-core and us."""
    frame, level = sys._getframe(1), 1
    while frame is not None and any(part in frame.f_code.co_filename for part in _LIBRARY_FILES):
        frame, level = frame.f_back, level + 1
    return level


def _target_uri(cls: Any, data: dict[str, Any]) -> None:
    uri = data.pop("target_uri")
    warnings.warn(
        f"{cls.__name__}(target_uri=...) is deprecated (as in databricks-langchain): pass "
        "host=... or workspace_client=... instead",
        DeprecationWarning,
        stacklevel=_caller_level(),
    )
    if uri is None:
        return
    if data.get("workspace_client") is not None:
        raise ConfigurationError(
            "pass either target_uri or workspace_client, not both: use workspace_client only"
        )
    if not isinstance(uri, str) or uri in ("databricks", ""):
        return
    if uri.startswith(("https://", "http://")):
        if data.get("host") not in (None, uri):
            raise ConfigurationError(
                f"target_uri={uri!r} and host={data['host']!r} disagree: pass host only"
            )
        data["host"] = uri
        return
    raise ConfigurationError(
        f"target_uri={uri!r} names an MLflow deployment target this package does not read: "
        "for a profile pass workspace_client=WorkspaceClient(profile='<name>'), for a "
        "workspace pass host='https://...'"
    )


_GATEWAY = "AI Gateway auto-routing is not supported: pass the gateway's serving URL as base_url"
_ADVICE = {"use_ai_gateway": _GATEWAY, "use_ai_gateway_native_api": _GATEWAY}


def _responses_switch(cls: Any, data: dict[str, Any]) -> None:
    """databricks-langchain's ``use_responses_api``: one class per protocol here."""
    wanted = bool(data.pop("use_responses_api"))
    speaks = any(c.__name__ == "ChatDatabricksResponses" for c in cls.__mro__)
    if wanted != speaks:
        other = "ChatDatabricksResponses" if wanted else "ChatDatabricksServing"
        raise UnknownArgumentError(
            f"{cls.__name__} got use_responses_api={wanted}: use {other} instead, with the "
            "same arguments (one class per protocol)",
            argument="use_responses_api",
        )


def normalize(cls: Any, data: Any) -> Any:
    """Map alias arguments onto fields and refuse unknown ones (see the module docstring)."""
    if not isinstance(data, dict):
        return data
    known = _known_names(cls)
    data = dict(data)
    if "use_responses_api" in data and "streaming" in known:  # the chat classes
        _responses_switch(cls, data)
    if "target_uri" in data and "target_uri" not in known:
        _target_uri(cls, data)
    if "extra_body" in known:
        extra: dict[str, Any] = {}
        for name in _INTO_EXTRA_BODY:
            if name in data and name not in known:
                value = data.pop(name)
                if value is not None and not isinstance(value, dict):
                    raise ConfigurationError(f"{name} must be a dict of body keys, not {value!r}")
                extra.update(value or {})
        if extra:
            data["extra_body"] = {**extra, **(data.get("extra_body") or {})}
    for name in data:
        if name not in known:
            raise _unknown(cls, name, known)
    return data


def _unknown(cls: Any, name: str, known: set[str]) -> UnknownArgumentError:
    if name in _ADVICE:
        return UnknownArgumentError(f"{cls.__name__}: {_ADVICE[name]}", argument=name)
    public = sorted(n for n in known if not n.startswith("_"))
    matches = difflib.get_close_matches(str(name), public, n=1, cutoff=0.6)
    suggestion = matches[0] if matches else None
    hint = f"did you mean {suggestion!r}? " if suggestion else ""
    return UnknownArgumentError(
        f"{cls.__name__} got an unknown argument {name!r}: {hint}it would be ignored and "
        f"nothing would be sent. Body keys the class has no field for go in "
        f"extra_body={{...}}" + ("" if "extra_body" in known else " (not on this class)"),
        argument=str(name),
        suggestion=suggestion,
    )
