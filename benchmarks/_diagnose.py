"""Noise-resistant looks at client CPU, for optimizing: a layer ladder and interleaved ratios.

On a shared machine, CPU figures measured minutes apart in separate processes drift with
whatever else runs. Here the clients share one process and take turns in short rounds, so a
disturbance hits them alike and the per-round ratios stay meaningful.
"""

from __future__ import annotations

import gc
import random
import statistics
import time
from collections.abc import Callable
from typing import Any

import _clients
import _server

Rungs = list[tuple[str, Callable[[], object]]]


def _interleaved(steps: Rungs, calls: int, per: int, rounds: int) -> dict[str, list[float]]:
    """Client CPU (us per unit) of each step in each round; steps take turns in random order.

    A step that raises (an internal API changed) is reported as its error and dropped.
    """
    working, samples = [], {}
    for name, step in steps:
        try:
            for _ in range(max(1, calls // 5)):
                step()
        except Exception as exc:
            samples[name] = [float("nan")]
            print(f"  {name}: {type(exc).__name__}: {exc}")
        else:
            working.append((name, step))
            samples[name] = []
    for _ in range(rounds):
        random.shuffle(working)
        for name, step in working:
            samples[name].append(_round(step, calls) / calls / per * 1e6)
    return samples


def _rungs() -> tuple[Rungs, Rungs]:
    """The invoke and the stream ladders of ``ChatDatabricksServing``, over internal APIs."""
    from langchain_core.messages import HumanMessage, SystemMessage

    from langchain_dbx_serving import ChatDatabricksServing
    from langchain_dbx_serving.protocols import chat_completions

    model = ChatDatabricksServing(endpoint=_clients.ENDPOINT)
    messages = [SystemMessage(_clients.PROMPT[0][1]), HumanMessage(_clients.PROMPT[1][1])]
    raw, floor = _clients.HttpxBench(), _clients.FACTORIES["floor"]()

    def post() -> Any:
        call = model._prepare(messages, None, {}, stream=False)
        return model.transport.post_json(call.url, call.body, endpoint=call.endpoint)

    def events() -> Any:
        call = model._prepare(messages, None, {}, stream=True)
        return model.transport.stream(call.url, call.body, endpoint=call.endpoint)

    def decoded() -> None:
        decoder = chat_completions.StreamDecoder()
        for data in events():
            decoder.feed(data)
        decoder.finish()

    def raw_bytes() -> None:
        with raw.client.stream("POST", raw.url, content=raw._body(True)) as reply:
            for _ in reply.iter_bytes():
                pass

    invoke_rungs: Rungs = [
        ("raw httpx: post + .json()", lambda: raw.client.post(raw.url, content=raw._body()).json()),
        ("+ _prepare + Transport.post_json", post),
        ("+ decode_reply", lambda: chat_completions.decode_reply(post())),
        ("_generate (+ TraceSurfacer)", lambda: model._generate(messages)),
        ("invoke (+ LangChain run, callbacks)", lambda: model.invoke(messages)),
        ("for comparison: the floor's invoke", floor.invoke),
    ]
    stream_rungs: Rungs = [
        ("raw httpx: iter_bytes only", raw_bytes),
        ("+ _prepare + Transport.stream (SSE decoder)", lambda: sum(1 for _ in events())),
        ("+ StreamDecoder.feed", decoded),
        ("_stream (+ ChatGenerationChunk)", lambda: sum(1 for _ in model._stream(messages))),
        ("stream (+ LangChain run, chunk sums)", lambda: sum(1 for _ in model.stream(messages))),
        ("for comparison: the floor's stream", floor.stream),
    ]
    return invoke_rungs, stream_rungs


def ladder() -> str:
    """ChatDatabricksServing's invoke and stream, layer by layer, each including the last.

    Uses internal APIs (``transport``, ``_prepare``, ``_generate``, ``_stream``): a rung whose
    API changed shows its error instead of a figure.
    """
    invoke_rungs, stream_rungs = _rungs()
    lines = [
        "ChatDatabricksServing layer by layer, client CPU in us; each rung includes the ones",
        "above it; rungs take turns; step = median of per-round differences to the rung above",
    ]
    for title, rungs, calls, per, rounds in (
        ("per invoke", invoke_rungs, 40, 1, 15),
        ("per streamed chunk", stream_rungs, 1, _server.STREAM_CHUNKS, 9),
    ):
        samples = _interleaved(rungs, calls, per, rounds)
        lines.append(f"{title + ':':52s}{'median':>8s}{'step':>8s}")
        previous: list[float] | None = None
        for name, _ in rungs:
            values = samples[name]
            step = ""
            if previous is not None and len(previous) == len(values) and not name.startswith("for"):
                delta = statistics.median(v - p for v, p in zip(values, previous, strict=True))
                step = f"{delta:+.1f}"
            lines.append(f"  {name:50s}{statistics.median(values):8.1f}{step:>8s}".rstrip())
            previous = values
    return "\n".join(lines)


def _round(step: Callable[[], object], calls: int) -> float:
    started = time.process_time()
    for _ in range(calls):
        step()
    return time.process_time() - started


INTERLEAVED = ("serving", "responses", "databricks", "openai", "floor", "httpx")


def compare(names: tuple[str, ...] = INTERLEAVED, rounds: int = 15) -> dict[str, dict[str, float]]:
    """Each client's CPU per invoke and per streamed chunk, and its ratio to ``serving``.

    The clients share this process and take turns, in a new random order each round; a ratio
    is the median over rounds of the per-round ratio, so a disturbance that lasts a round
    hits both sides of it.
    """
    benches = {name: _clients.FACTORIES[name]() for name in ("serving", *names)}
    samples: dict[str, dict[str, list[float]]] = {n: {"invoke": [], "chunk": []} for n in benches}
    for bench in benches.values():
        for _ in range(30):
            bench.invoke()
        bench.stream()
    # Every client's imports live in this one heap; frozen, they cost no client GC time that
    # it would not pay in a process of its own.
    gc.collect()
    gc.freeze()
    order = list(benches)
    for _ in range(rounds):
        random.shuffle(order)
        for name in order:
            samples[name]["invoke"].append(_round(benches[name].invoke, 40) / 40 * 1e6)
            per_chunk = _round(benches[name].stream, 1) / _server.STREAM_CHUNKS * 1e6
            samples[name]["chunk"].append(per_chunk)
    result: dict[str, dict[str, float]] = {}
    for name, kinds in samples.items():
        result[name] = {}
        for kind, values in kinds.items():
            ours = samples["serving"][kind]
            result[name][f"{kind}_cpu_us"] = statistics.median(values)
            ratios = (theirs / mine for theirs, mine in zip(values, ours, strict=True))
            result[name][f"{kind}_ratio"] = statistics.median(ratios)
    return result


def compare_text(result: dict[str, dict[str, float]]) -> str:
    lines = ["client CPU with the clients interleaved in one process (ratio to ours):"]
    for name, f in result.items():
        lines.append(
            f"  {name:11s} invoke {f['invoke_cpu_us']:8.1f} us ({f['invoke_ratio']:4.2f}x)"
            f"   chunk {f['chunk_cpu_us']:7.1f} us ({f['chunk_ratio']:4.2f}x)"
        )
    return "\n".join(lines)
