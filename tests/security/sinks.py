"""Everything a secret could show up in, rendered as text for one assertion."""

from __future__ import annotations

import pickle
import traceback
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.load import dumpd, dumps


def every_rendering(err: BaseException, *, with_locals: bool = True) -> str:
    """What an error can show: str, repr, fields, a pickled copy, the traceback with chained
    causes, and (``with_locals``) the traceback with every frame's locals (pytest
    --showlocals, error trackers). A value the caller passed in is in the caller's own frames,
    so errors about arguments are checked without locals."""
    shown = [
        str(err),
        repr(err),
        repr(vars(err)),
        "".join(traceback.format_exception(err)),
        repr(pickle.loads(pickle.dumps(err)).__dict__),
    ]
    if with_locals:
        frames = traceback.TracebackException.from_exception(err, capture_locals=True)
        shown.append("".join(frames.format()))
    return "\n".join(shown)


def object_renderings(obj: Any) -> str:
    """What a model or runnable shows: repr, str, dumpd, dumps, model_dump (python and json)."""
    shown = [repr(obj), str(obj), str(dumpd(obj)), dumps(obj)]
    if hasattr(obj, "model_dump"):
        shown += [repr(obj.model_dump()), obj.model_dump_json()]
    return "\n".join(shown)


class RecordingHandler(BaseCallbackHandler):
    """Keeps the repr of every callback's arguments."""

    def __init__(self) -> None:
        self.payloads: list[str] = []

    def __getattribute__(self, name: str) -> Any:
        if name.startswith("on_"):
            payloads = object.__getattribute__(self, "payloads")

            def record(*args: Any, **kwargs: Any) -> None:
                payloads.append(f"{name} {args!r} {kwargs!r}")

            return record
        return object.__getattribute__(self, name)

    def text(self) -> str:
        return "\n".join(self.payloads)


def assert_absent(forms: list[str], *texts: str) -> None:
    for form in forms:
        for text in texts:
            assert form not in text, f"leaked {form[:6]}... in {text[:300]!r}"
