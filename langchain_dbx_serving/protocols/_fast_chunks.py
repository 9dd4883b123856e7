"""Per-token stream objects built without a pydantic validation pass each.

A stream builds one ``AIMessageChunk`` and one ``ChatGenerationChunk`` per token; validating
each costs ~3 and ~2 us, more than decoding the event. For the common case, a text delta
(``str`` content, nothing else), validation always ends in the same state but for the text and
the id. So the state is learnt once, from objects pydantic validated (:class:`_Shape`), and each
later object is that state with the new values and fresh empty containers (no two chunks share
a list or dict).

The learning checks itself: the copy must equal what validation gives for several probe values
(fields, which fields count as set, extras, private state). When it does not (a langchain-core
or pydantic release that derives more from the inputs), every call goes through the validating
constructor, as before.

Example:
    >>> chunk = text_chunk("Hello", "chatcmpl-1")
    >>> chunk == AIMessageChunk(content="Hello", id="chatcmpl-1")
    True
    >>> generation_chunk(chunk).text
    'Hello'
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from langchain_core.messages import AIMessageChunk
from langchain_core.outputs import ChatGenerationChunk

__all__ = ["generation_chunk", "text_chunk"]

_new = object.__new__
_set = object.__setattr__
_PROBES = ("probe", "", "Zürich 🦊\n", " ")
_PROBE_IDS = ("probe-id", None, "chatcmpl-0")


class _Shape:
    """The validated state of ``cls`` for one set of keyword arguments, and how to build it for
    other values of those arguments (see the module)."""

    __slots__ = ("cls", "dicts", "extra", "fields_set", "lists", "state")

    def __init__(self, cls: type[Any], sample: Any) -> None:
        self.cls = cls
        self.state = dict(sample.__dict__)
        self.lists = tuple(k for k, v in self.state.items() if type(v) is list)
        self.dicts = tuple(k for k, v in self.state.items() if type(v) is dict)
        self.fields_set = frozenset(sample.__pydantic_fields_set__)
        self.extra = sample.__pydantic_extra__
        if any(self.state[k] for k in (*self.lists, *self.dicts)):
            raise ValueError("a default container is not empty: it cannot be shared")
        if self.extra or sample.__pydantic_private__ is not None:
            raise ValueError("extras or private state: not a plain copy")

    def build(self, values: dict[str, Any]) -> Any:
        state = self.state.copy()
        state.update(values)
        for key in self.lists:
            state[key] = []
        for key in self.dicts:
            state[key] = {}
        obj = _new(self.cls)
        _set(obj, "__dict__", state)
        _set(obj, "__pydantic_fields_set__", set(self.fields_set))
        _set(obj, "__pydantic_extra__", None if self.extra is None else {})
        _set(obj, "__pydantic_private__", None)
        return obj


def _same(a: Any, b: Any) -> bool:
    return (
        type(a) is type(b)
        and a.__dict__ == b.__dict__
        and list(a.__dict__) == list(b.__dict__)
        and a.__pydantic_fields_set__ == b.__pydantic_fields_set__
        and a.__pydantic_extra__ == b.__pydantic_extra__
        and a.__pydantic_private__ == b.__pydantic_private__
    )


def _learn(
    cls: type[Any],
    make: Callable[..., Any],
    values: Callable[..., dict[str, Any]],
    probes: list[tuple[Any, ...]],
) -> Callable[[dict[str, Any]], Any] | None:
    """A builder taking ``values(*args)`` and giving what ``make(*args)`` gives: ``None`` when
    a copy of the validated state with those values differs from validation for any probe."""
    try:
        shape = _Shape(cls, make(*probes[0]))
        for probe in probes:
            if not _same(shape.build(values(*probe)), make(*probe)):
                return None
    except Exception:  # a release that does not fit the assumptions: validate, as before
        return None
    return shape.build


_with_id = _learn(
    AIMessageChunk,
    lambda text, id_: AIMessageChunk(content=text, id=id_),
    lambda text, id_: {"content": text, "id": id_},
    [(t, i) for t in _PROBES for i in _PROBE_IDS],
)
_without_id = _learn(
    AIMessageChunk,
    lambda text: AIMessageChunk(content=text),
    lambda text: {"content": text},
    [(t,) for t in _PROBES],
)
_generation = _learn(
    ChatGenerationChunk,
    lambda message: ChatGenerationChunk(message=message),
    lambda message: {"text": message.content, "message": message},
    [(AIMessageChunk(content=t, id=i),) for t in _PROBES for i in _PROBE_IDS],
)
_UNSET: Any = object()


def text_chunk(text: str | list[Any], id: str | None = _UNSET) -> AIMessageChunk:
    """``AIMessageChunk(content=text[, id=id])``; built from the learnt state for a ``str``
    text (and id), validated otherwise."""
    if id is _UNSET:
        if _without_id is None or type(text) is not str:
            return AIMessageChunk(content=text)
        return _without_id({"content": text})  # type: ignore[no-any-return]
    if _with_id is None or type(text) is not str or (id is not None and type(id) is not str):
        return AIMessageChunk(content=text, id=id)
    return _with_id({"content": text, "id": id})  # type: ignore[no-any-return]


def generation_chunk(message: AIMessageChunk) -> ChatGenerationChunk:
    """``ChatGenerationChunk(message=message)``; its ``text`` is the ``str`` content of a text
    chunk (what validation sets), other messages are validated."""
    content = message.content
    if _generation is None or type(content) is not str or type(message) is not AIMessageChunk:
        return ChatGenerationChunk(message=message)
    return _generation({"text": content, "message": message})  # type: ignore[no-any-return]
