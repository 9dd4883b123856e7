"""Neutral replies: what a backend of the local endpoint answers, before any wire format.

A backend returns a :class:`Reply` (or an :class:`ErrorReply`, a :class:`RawReply`, or a live
stream of :class:`Delta` pieces); the endpoint encodes it into whichever wire shape the request
asked for (chat completions, responses, ChatAgent), whole or as SSE. One scripted ``Reply`` thus
serves every protocol, and tests of different clients share their fixtures.

Helpers::

    Reply.text("Hello!", usage=(12, 3))                       # plain answer, with token usage
    Reply.text(["Hel", "lo!"])                                # explicit stream pieces
    Reply.text("42", reasoning="6 times 7", custom_outputs={"k": 1})
    Reply.tool_call("get_weather", {"city": "Paris"})         # one tool call (finish: tool_calls)
    Reply.text("Let me check.", tool_calls=[ToolCall("a"), ToolCall("b", {"x": 1})])
    Reply.text("18C in Paris.", steps=[ToolStep("get_weather", {"city": "Paris"}, "18C")])
    Reply.error(429, "REQUEST_LIMIT_EXCEEDED", "Rate limit exceeded", retry_after=1)
    Reply.error(503, "TEMPORARILY_UNAVAILABLE", "scaling up", format="text")  # "CODE: message"
    Reply.text("a long answer that never ends", cut_after=2)  # drop the connection mid-stream
    Reply.text("partial", stream_error="model crashed")       # error event inside the stream
    Reply.text("hi", usage=(5, 1), quirks=Quirks.databricks_claude())  # real-traffic quirks
    RawReply(events=[{...}, {...}])                           # replay recorded events verbatim

Network faults are not replies: a :class:`FaultPlan` on the endpoint applies a :class:`Fault`
(or an error from a proxy in front of the model) to the next requests, whatever they ask::

    ep.faults.add(Fault.reset(), Reply.error(503, "TEMPORARILY_UNAVAILABLE", "scaling up"))
    ep.faults.add(Fault.stall(after=2), Fault.garbage("<html>oops"), Fault.oversized(10**7))

``steps`` are tool calls an agent made and their results: ChatAgent replies carry them as
extra messages, responses replies as ``function_call`` / ``function_call_output`` items; the
chat-completions shape cannot express them and leaves them out.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

__all__ = [
    "Delta",
    "ErrorReply",
    "Fault",
    "FaultPlan",
    "Quirks",
    "RawReply",
    "Reply",
    "ToolCall",
    "ToolCallDelta",
    "ToolStep",
    "Usage",
    "reply_from_dict",
]

ErrorFormat = Literal["json", "text", "html", "openai"]
FaultKind = Literal["reset", "stall", "drop", "garbage", "oversized"]


@dataclass(frozen=True)
class Usage:
    """Token counts of a reply, encoded in each wire shape's own naming.

    ``extra`` keys are added verbatim to the chat-completions ``usage`` (e.g.
    ``cache_read_input_tokens``, as Databricks Claude sends).

    Example::

        Usage(10, 5, cached_tokens=4)
    """

    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int | None = None
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def total(self) -> int:
        """``total_tokens``, or input plus output when not given."""
        if self.total_tokens is not None:
            return self.total_tokens
        return self.input_tokens + self.output_tokens

    @classmethod
    def of(cls, value: Usage | Sequence[int] | Mapping[str, Any] | None) -> Usage | None:
        """Accept a ``Usage``, an ``(input, output)`` pair or a dict in either wire naming."""
        if value is None or isinstance(value, Usage):
            return value
        if isinstance(value, Mapping):
            return cls(
                input_tokens=int(value.get("input_tokens", value.get("prompt_tokens", 0)) or 0),
                output_tokens=int(
                    value.get("output_tokens", value.get("completion_tokens", 0)) or 0
                ),
                total_tokens=value.get("total_tokens"),
                cached_tokens=value.get("cached_tokens"),
                reasoning_tokens=value.get("reasoning_tokens"),
                extra=dict(value.get("extra", {})),
            )
        input_tokens, output_tokens = value
        return cls(int(input_tokens), int(output_tokens))

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.total + other.total,
        )


@dataclass(frozen=True)
class ToolCall:
    """A tool call in a reply. ``arguments`` is a dict (JSON-encoded on the wire) or a string
    sent verbatim; ``id`` is generated (``call_...``) when not given.

    Example::

        ToolCall("get_weather", {"city": "Paris"}, id="call_1")
        ToolCall("now", id="call_2", thought_signature="sig-1")  # Gemini's, echoed back

    """

    name: str
    arguments: Mapping[str, Any] | str = field(default_factory=dict)
    id: str | None = None
    thought_signature: str | None = None

    def arguments_json(self, *, empty_for_no_args: bool = False) -> str:
        """The arguments as the wire's JSON string (``""`` for none when the quirk asks)."""
        if isinstance(self.arguments, str):
            return self.arguments
        if not self.arguments and empty_for_no_args:
            return ""
        return json.dumps(dict(self.arguments))


@dataclass(frozen=True)
class ToolStep:
    """A tool call an agent made, with its result (ChatAgent and responses replies).

    Example::

        ToolStep("get_weather", {"city": "Paris"}, output="18C, sunny")
    """

    name: str
    arguments: Mapping[str, Any] | str = field(default_factory=dict)
    output: str = ""
    id: str | None = None

    @property
    def call(self) -> ToolCall:
        """The step's call as a :class:`ToolCall`."""
        return ToolCall(self.name, self.arguments, self.id)


@dataclass(frozen=True)
class ToolCallDelta:
    """A fragment of a streamed tool call: the first one carries ``id`` and ``name``.

    Example::

        [ToolCallDelta(0, "call_1", "get_time", ""), ToolCallDelta(0, arguments="{}")]
    """

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""
    thought_signature: str | None = None


@dataclass(frozen=True)
class Delta:
    """One streamed piece of a live stream; set exactly one of its fields.

    Example::

        Delta(text="Hel"), Delta(reasoning="thinking"), Delta(tool_call=ToolCallDelta(0, "c1", "f"))
    """

    text: str = ""
    reasoning: str = ""
    signature: str | None = None
    tool_call: ToolCallDelta | None = None
    step: ToolStep | None = None


@dataclass(frozen=True)
class Quirks:
    """Behaviours of real Databricks traffic (PROTOCOLS.md section 7) a reply can reproduce.

    Example::

        Reply.text("hi", usage=(5, 1), quirks=Quirks(usage_on_every_chunk=True, sse_comments=True))
    """

    usage_on_every_chunk: bool = False
    """Chat streams: ``usage`` on every chunk, completion/total tokens null until the last."""
    role_on_every_delta: bool = False
    """Chat streams: ``role: "assistant"`` in every delta; the final chunk has ``content: ""``."""
    tool_index_from_1_after_text: bool = False
    """Chat streams: the first tool call has ``index`` 1 when text precedes the tool calls."""
    empty_arguments_for_no_args: bool = False
    """A zero-argument tool call's ``arguments`` stays ``""`` instead of ``"{}"``."""
    usage_in_empty_choices_chunk: bool = False
    """Chat streams: usage comes on a final extra chunk with ``choices: []``."""
    sse_comments: bool = False
    """SSE comment lines (``: PROCESSING``) between events."""
    sse_event_lines: bool = False
    """``event: <type>`` lines before each responses ``data:`` line."""
    no_done: bool = False
    """The stream ends without ``data: [DONE]``."""
    no_lifecycle_events: bool = False
    """Responses streams without ``response.created`` / ``response.completed`` (Model Serving)."""
    id_on_every_event: bool = False
    """Responses streams: every event carries a top-level ``id`` (the request id)."""
    json_for_stream: bool = False
    """Answer a ``stream: true`` request with a whole JSON body instead of SSE."""
    no_finish_reason_on_stop: bool = False
    """Chat replies: ``finish_reason`` null on a natural stop (AI Gateway, reasoning models)."""

    @classmethod
    def databricks_claude(cls) -> Quirks:
        """A Claude model behind Databricks FMAPI: usage and role on every chunk."""
        return cls(usage_on_every_chunk=True, role_on_every_delta=True)

    @classmethod
    def model_serving_agent(cls) -> Quirks:
        """A ResponsesAgent on Model Serving: no lifecycle events, request id on each event."""
        return cls(no_lifecycle_events=True, id_on_every_event=True)


_WORDS = re.compile(r"(?<=\s)(?=\S)")


def _pieces(value: str | Sequence[str] | None) -> tuple[str, ...]:
    """Text as stream pieces: a string is split after whitespace, a sequence is kept."""
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(p for p in _WORDS.split(value) if p)
    return tuple(value)


@dataclass(frozen=True)
class Reply:
    """What a backend answers, independent of the wire format.

    ``content`` and ``reasoning`` are stream pieces (joined for whole replies). ``finish_reason``
    defaults to ``"tool_calls"`` when there are tool calls, else ``"stop"``. ``model`` defaults
    to the endpoint name. ``cut_after`` drops the connection after that many SSE events (whole
    replies: after half the body). ``stream_error`` ends a stream with an in-stream error event.

    Example::

        Reply.text("Paris is sunny.", usage=(20, 4), custom_outputs={"source": "weather"})
    """

    content: tuple[str, ...] = ()
    reasoning: tuple[str, ...] = ()
    reasoning_signature: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    steps: tuple[ToolStep, ...] = ()
    usage: Usage | None = None
    custom_outputs: Mapping[str, Any] | None = None
    finish_reason: str | None = None
    model: str | None = None
    quirks: Quirks = field(default_factory=Quirks)
    cut_after: int | None = None
    stream_error: str | None = None
    stream_error_code: str = "INTERNAL_ERROR"

    @property
    def full_text(self) -> str:
        """The answer text (all content pieces joined)."""
        return "".join(self.content)

    @property
    def full_reasoning(self) -> str:
        """The reasoning text (all reasoning pieces joined)."""
        return "".join(self.reasoning)

    @property
    def effective_finish_reason(self) -> str:
        """``finish_reason`` or its default."""
        if self.finish_reason:
            return self.finish_reason
        return "tool_calls" if self.tool_calls else "stop"

    @classmethod
    def text(
        cls,
        text: str | Sequence[str] = "",
        *,
        reasoning: str | Sequence[str] | None = None,
        usage: Usage | Sequence[int] | Mapping[str, Any] | None = None,
        tool_calls: Sequence[ToolCall] = (),
        steps: Sequence[ToolStep] = (),
        **kwargs: Any,
    ) -> Reply:
        """A text answer; other :class:`Reply` fields as keywords."""
        return cls(
            content=_pieces(text),
            reasoning=_pieces(reasoning),
            tool_calls=tuple(tool_calls),
            steps=tuple(steps),
            usage=Usage.of(usage),
            **kwargs,
        )

    @classmethod
    def tool_call(
        cls,
        name: str,
        arguments: Mapping[str, Any] | str | None = None,
        *,
        id: str | None = None,
        text: str | Sequence[str] = "",
        **kwargs: Any,
    ) -> Reply:
        """One tool call (zero-argument when ``arguments`` is omitted)."""
        call = ToolCall(name, {} if arguments is None else arguments, id)
        return cls.text(text, tool_calls=[call], **kwargs)

    @classmethod
    def error(
        cls,
        status: int,
        error_code: str,
        message: str,
        *,
        retry_after: float | None = None,
        format: ErrorFormat = "json",
        details: Sequence[Any] | None = None,
    ) -> ErrorReply:
        """An HTTP error reply (see :class:`ErrorReply`)."""
        return ErrorReply(status, error_code, message, retry_after, format, details)

    def deltas(self) -> list[Delta]:
        """The reply as stream pieces: agent steps, reasoning, text, then tool-call fragments."""
        out = [Delta(step=step) for step in self.steps]
        out += [Delta(reasoning=piece) for piece in self.reasoning]
        if self.reasoning_signature:
            out.append(Delta(signature=self.reasoning_signature))
        out += [Delta(text=piece) for piece in self.content]
        empty = self.quirks.empty_arguments_for_no_args
        for index, call in enumerate(self.tool_calls):
            first = ToolCallDelta(index, call.id, call.name, "", call.thought_signature)
            out.append(Delta(tool_call=first))
            args = call.arguments_json(empty_for_no_args=empty)
            out += [
                Delta(tool_call=ToolCallDelta(index, arguments=args[i : i + 12]))
                for i in range(0, len(args), 12)
            ]
        return out


@dataclass(frozen=True)
class ErrorReply:
    """An HTTP error answer.

    ``format``: ``"json"`` (Databricks ``{"error_code", "message"}``), ``"text"`` (plain
    ``CODE: message``), ``"html"`` (a proxy's error page) or ``"openai"`` (``{"error": {...}}``
    as OpenAI-style gateways send). ``retry_after`` sets the ``Retry-After`` header (seconds).

    Example::

        Reply.error(429, "REQUEST_LIMIT_EXCEEDED", "Too many requests", retry_after=2)
    """

    status: int
    error_code: str
    message: str
    retry_after: float | None = None
    format: ErrorFormat = "json"
    details: Sequence[Any] | None = None


@dataclass(frozen=True)
class RawReply:
    """A reply relayed verbatim: a whole ``body`` or a stream of ``events`` (dicts, or strings
    sent as the ``data`` line exactly as given, e.g. a malformed event).

    Used by the ResponsesAgent backend, whose output already is the wire shape.

    Example::

        RawReply(body={"object": "response", "output": [...]})
    """

    body: Mapping[str, Any] | None = None
    events: Any = None  # Iterable[Mapping[str, Any] | str]


@dataclass(frozen=True)
class Fault:
    """A network misbehaviour the local endpoint applies to one request.

    ``after`` counts the SSE events sent before the fault strikes (a fault whose ``after`` is
    past the end of the stream never strikes); whole replies have no events, so there it means
    "before the reply" (``stall``) or is ignored. Build faults with the class methods:

    - ``reset()``: the TCP connection is reset (RST) before any byte of the reply;
    - ``stall(after)``: ``after`` events are sent (whole replies: nothing), then the connection
      stays open and silent until the client gives up (at most ``seconds``);
    - ``drop(after)``: the connection is closed after ``after`` events (whole replies: after
      half the body), without ending the HTTP response;
    - ``garbage(data, after)``: a ``data:`` line that is not JSON is sent after ``after`` events
      and the stream goes on (whole replies: ``data`` is the body, with a JSON content type);
    - ``oversized(size)``: ``size`` bytes of extra text are added to the answer; a stream sends
      them as one SSE event.

    Example::

        ep.faults.add(Fault.stall(after=2, seconds=30))
    """

    kind: FaultKind
    after: int = 0
    data: str = ""
    size: int = 0
    seconds: float = 30.0

    @classmethod
    def reset(cls) -> Fault:
        """Reset the connection before replying."""
        return cls("reset")

    @classmethod
    def stall(cls, after: int = 0, *, seconds: float = 30.0) -> Fault:
        """Stop sending after ``after`` events; hold the connection at most ``seconds``."""
        return cls("stall", after=after, seconds=seconds)

    @classmethod
    def drop(cls, after: int = 0) -> Fault:
        """Close the connection after ``after`` events (whole replies: after half the body)."""
        return cls("drop", after=after)

    @classmethod
    def garbage(cls, data: str = "{not json", *, after: int = 0) -> Fault:
        """Send a non-JSON ``data:`` line after ``after`` events."""
        return cls("garbage", after=after, data=data)

    @classmethod
    def oversized(cls, size: int) -> Fault:
        """Add ``size`` bytes of text (``x`` repeated) to the answer."""
        return cls("oversized", size=size)


PlanEntry = Fault | ErrorReply | None


class FaultPlan:
    """Faults for the next requests, one entry per request, in order; thread-safe.

    An entry is a :class:`Fault`, an :class:`ErrorReply` (answered before the model is asked,
    as a gateway or proxy would) or ``None`` (no fault). With ``repeat=True`` the entries
    cycle forever, e.g. one request in ten gets a 503. ``applied`` counts faults and errors
    applied so far.

    Example::

        plan = FaultPlan([None] * 9 + [Reply.error(503, "TEMPORARILY_UNAVAILABLE", "busy")],
                         repeat=True)
        with LocalEndpoint("echo", faults=plan) as ep:
            ...
        ep.faults.add(Fault.reset())  # or add to a running endpoint's plan
    """

    def __init__(self, entries: Iterable[PlanEntry] = (), *, repeat: bool = False) -> None:
        self._entries: list[PlanEntry] = list(entries)
        self._cycle = itertools.cycle(self._entries) if repeat and self._entries else None
        self._lock = threading.Lock()
        self.applied = 0

    def add(self, *entries: PlanEntry) -> FaultPlan:
        """Append entries for the requests after those already planned; returns the plan."""
        with self._lock:
            if self._cycle is not None:
                raise RuntimeError("a repeating FaultPlan cannot be extended; build a new one")
            self._entries.extend(entries)
        return self

    def clear(self) -> None:
        """Forget every planned entry (repeating or not) and reset ``applied``."""
        with self._lock:
            self._entries.clear()
            self._cycle = None
            self.applied = 0

    @property
    def remaining(self) -> int:
        """Entries left to apply (the cycle's length for a repeating plan)."""
        return len(self._entries)

    def next(self) -> PlanEntry:
        """The entry for the request that just arrived (``None`` when nothing is planned)."""
        with self._lock:
            if self._cycle is not None:
                entry = next(self._cycle)
            elif self._entries:
                entry = self._entries.pop(0)
            else:
                return None
            if entry is not None:
                self.applied += 1
            return entry


def _tool_call_from_dict(spec: Mapping[str, Any]) -> ToolCall:
    return ToolCall(
        spec["name"], spec.get("arguments") or {}, spec.get("id"), spec.get("thought_signature")
    )


def reply_from_dict(spec: Mapping[str, Any] | str) -> Reply | ErrorReply:
    """Build a reply from JSON data (the CLI's ``script.json`` entries).

    A string is a text reply. Keys: ``text``, ``reasoning``, ``tool_calls`` (``[{name,
    arguments, id}]``), ``steps`` (``[{name, arguments, output, id}]``), ``usage`` (
    ``{input_tokens, output_tokens}``), ``custom_outputs``, ``finish_reason``, ``model``,
    ``quirks`` (``{flag: true}``), ``cut_after``, ``stream_error``; or ``error``:
    ``{status, error_code, message, retry_after, format}``.

    Example::

        reply_from_dict({"text": "hi", "usage": {"input_tokens": 3, "output_tokens": 1}})
    """
    if isinstance(spec, str):
        return Reply.text(spec)
    if "error" in spec:
        err = spec["error"]
        return ErrorReply(
            int(err.get("status", 500)),
            err.get("error_code", "INTERNAL_ERROR"),
            err.get("message", ""),
            err.get("retry_after"),
            err.get("format", "json"),
            err.get("details"),
        )
    known = {f.name for f in fields(Reply)}
    kwargs = {k: v for k, v in spec.items() if k in known and k not in {"content", "reasoning"}}
    kwargs["tool_calls"] = [_tool_call_from_dict(c) for c in spec.get("tool_calls", [])]
    kwargs["steps"] = [
        ToolStep(s["name"], s.get("arguments") or {}, s.get("output", ""), s.get("id"))
        for s in spec.get("steps", [])
    ]
    if "quirks" in spec:
        kwargs["quirks"] = replace(Quirks(), **spec["quirks"])
    return Reply.text(spec.get("text", ""), reasoning=spec.get("reasoning"), **kwargs)
