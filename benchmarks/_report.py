"""The table (Markdown, with each figure's ratio to ``ChatDatabricksServing``) and the chart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

REFERENCE = "serving"

COLUMNS = {
    "serving": "ChatDatabricksServing (ours)",
    "responses": "ChatDatabricksResponses (ours)",
    "databricks": "ChatDatabricks",
    "openai": "ChatOpenAI",
    "floor": "minimal LangChain model over httpx",
    "httpx": "raw httpx",
}

# key in the results, row title, unit, format of the value
METRICS = [
    ("invoke_cpu_us", "CPU per invoke", "us", "{:,.0f}"),
    ("invoke_wall_us", "wall per invoke", "us", "{:,.0f}"),
    ("chunk_cpu_us", "CPU per streamed chunk", "us", "{:,.1f}"),
    ("batch16_wall_s", "abatch @ 16: wall", "s", "{:,.2f}"),
    ("batch64_wall_s", "abatch @ 64: wall", "s", "{:,.2f}"),
    ("batch256_wall_s", "abatch @ 256: wall", "s", "{:,.2f}"),
    ("batch16_cpu_s", "abatch @ 16: CPU", "s", "{:,.2f}"),
    ("batch64_cpu_s", "abatch @ 64: CPU", "s", "{:,.2f}"),
    ("batch256_cpu_s", "abatch @ 256: CPU", "s", "{:,.2f}"),
    ("stream_batch_wall_s", "streaming abatch: wall", "s", "{:,.2f}"),
    ("stream_batch_chunk_cpu_us", "streaming abatch: CPU per chunk", "us", "{:,.1f}"),
    ("batch64_connections_before", "connections open before abatch @ 64", "", "{:,.0f}"),
    ("batch64_connections_after", "connections open after abatch @ 64", "", "{:,.0f}"),
    ("batch256_connections_before", "connections open before abatch @ 256", "", "{:,.0f}"),
    ("batch256_connections_after", "connections open after abatch @ 256", "", "{:,.0f}"),
    ("batch64_connects", "TCP connections opened during abatch @ 64", "", "{:,.0f}"),
    ("batch256_connects", "TCP connections opened during abatch @ 256", "", "{:,.0f}"),
    ("import_s", "import time", "s", "{:,.2f}"),
    ("rss_after_import_mib", "RSS after import", "MiB", "{:,.0f}"),
    ("batch64_peak_rss_mib", "peak RSS during abatch @ 64", "MiB", "{:,.0f}"),
    ("batch256_peak_rss_mib", "peak RSS during abatch @ 256", "MiB", "{:,.0f}"),
    ("batch256_kib_per_req", "RSS added per request in flight, abatch @ 256", "KiB", "{:,.1f}"),
    ("heap_kib_per_request", "Python heap per request in flight, abatch @ 256", "KiB", "{:,.1f}"),
    ("stream_batch_kib_per_stream", "RSS added per concurrent stream", "KiB", "{:,.1f}"),
]


def sizes_note(sizes: dict[str, Any]) -> str:
    """What the abatch rows measured, for under the table."""
    return (
        f"abatch rows: {sizes['batch_requests']:,} requests at each concurrency; streaming "
        f"abatch: {sizes['stream_batch_requests']} streams, {sizes['stream_batch_concurrency']}"
        " at once. RSS added = peak RSS during the batch minus RSS just before (after a warm-up"
        " batch), over the concurrency asked for; Python heap = tracemalloc peak of an abatch"
        " of 256 at 256, over 256."
    )


def _cell(value: float | None, reference: float | None, fmt: str) -> str:
    if value is None:
        return "n/a"
    text = fmt.format(value)
    if reference:
        text += f" ({value / reference:.2f}x)"
    return text


def table(clients: dict[str, dict[str, Any]]) -> str:
    """A Markdown table: one row per figure, one column per client, ratios to ours."""
    names = [name for name in COLUMNS if name in clients]
    reference = clients.get(REFERENCE, {})
    lines = [
        "| figure | " + " | ".join(COLUMNS[name] for name in names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    for key, title, unit, fmt in METRICS:
        cells = [_cell(clients[name].get(key), reference.get(key), fmt) for name in names]
        label = f"{title} ({unit})" if unit else title
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


PEERS = ("databricks", "openai")
# (figure, what it is compared with, the ratio #18 aims at)
TARGETS = [
    ("invoke_cpu_us", "floor", 1.0),
    ("chunk_cpu_us", "floor", 1.15),
    ("batch64_wall_s", "best peer", 0.8),
    ("batch256_wall_s", "best peer", 0.8),
    ("batch64_peak_rss_mib", "floor", 1.1),
    ("batch256_peak_rss_mib", "floor", 1.1),
]


# The CPU targets are judged on the interleaved cross-check when there is one: its clients take
# turns in one process, so a ratio compares them under the same conditions. The per-client
# processes run minutes apart, and on this VM the CPU one invoke costs swings by up to 2x
# between such runs at the same load average (host contention the guest does not see).
_INTERLEAVED = {"invoke_cpu_us": "invoke_ratio", "chunk_cpu_us": "chunk_ratio"}


def targets(
    clients: dict[str, dict[str, Any]], interleaved: dict[str, dict[str, float]] | None = None
) -> str:
    """Ours against the floor or the best (lowest) peer, next to #18's targets."""
    titles = {key: title for key, title, _unit, _fmt in METRICS}
    ours = clients.get(REFERENCE, {})
    lines = ["ChatDatabricksServing against the targets of issue #18 (this run):"]
    for key, against, goal in TARGETS:
        if against == "floor":
            other, label = clients.get("floor", {}).get(key), "the floor"
        else:
            found = [(clients[p][key], p) for p in PEERS if clients.get(p, {}).get(key)]
            other, label = (min(found)[0], COLUMNS[min(found)[1]]) if found else (None, "")
        value = ours.get(key)
        separate = value / other if value is not None and other else None
        floor_turns = (interleaved or {}).get("floor", {}).get(_INTERLEAVED.get(key, ""))
        if floor_turns:  # the floor's per-round ratio to ours, so ours to the floor is 1 / it
            ratio, how = 1 / floor_turns, " interleaved"
            if separate is not None:
                how += f"; {separate:.2f}x measured in separate processes"
        elif separate is not None:
            ratio, how = separate, ""
        else:
            lines.append(f"  {titles[key]}: n/a")
            continue
        verdict = "met" if ratio <= goal else "NOT met"
        lines.append(
            f"  {titles[key]}: {ratio:.2f}x {label}{how and f' ({how.strip()})'}"
            f" (target <= {goal:.2f}x): {verdict}"
        )
    return "\n".join(lines)


def interleaved_table(result: dict[str, dict[str, float]]) -> str:
    """The cross-check: CPU figures with every client in one process, taking turns."""
    names = [name for name in COLUMNS if name in result]
    lines = [
        "| figure (clients interleaved) | " + " | ".join(COLUMNS[n] for n in names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    for kind, title, fmt in (
        ("invoke", "CPU per invoke", "{:,.0f}"),
        ("chunk", "CPU per streamed chunk", "{:,.1f}"),
    ):
        cells = [
            f"{fmt.format(result[n][f'{kind}_cpu_us'])} ({result[n][f'{kind}_ratio']:.2f}x)"
            for n in names
        ]
        lines.append(f"| {title} (us) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def chart(clients: dict[str, dict[str, Any]], path: Path, subtitle: str) -> None:
    """One horizontal bar panel per figure; our classes in blue, the peers in grey/orange."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [name for name in COLUMNS if name in clients]
    colours = {
        "serving": "#1f5fbf",
        "responses": "#5b8fd9",
        "databricks": "#e07b39",
        "openai": "#8c8c8c",
        "floor": "#b5b5b5",
        "httpx": "#d6d6d6",
    }
    columns = 4
    rows_of_panels = -(-len(METRICS) // columns)
    figure, axes = plt.subplots(
        rows_of_panels, columns, figsize=(15, 3.1 * rows_of_panels), squeeze=False
    )
    for axis in axes.flat[len(METRICS) :]:
        axis.set_visible(False)
    for axis, (key, title, unit, fmt) in zip(axes.flat, METRICS, strict=False):
        values = [clients[name].get(key) or 0.0 for name in names]
        rows = range(len(names))
        axis.barh(rows, values, color=[colours[name] for name in names])
        axis.set_yticks(list(rows), [COLUMNS[name].replace(" over httpx", "") for name in names])
        axis.invert_yaxis()
        axis.set_title(f"{title} ({unit})" if unit else title, fontsize=9)
        axis.tick_params(labelsize=8)
        axis.margins(x=0.28)
        for row, value in zip(rows, values, strict=True):
            axis.text(value, row, " " + fmt.format(value), va="center", fontsize=8)
        if axis not in axes[:, 0]:
            axis.set_yticklabels([])
    figure.suptitle(
        "langchain-dbx-serving vs peers, one local server (lower is better)\n" + subtitle,
        fontsize=11,
    )
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)
