"""Every cookbook script runs offline from a clean environment and prints what it promises."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXPECTED = {
    "01_quickstart.py": [
        "invoke: Paris.",
        "stream: About |299,792 |km |per |second.|\n",  # no empty trailing chunks
        "batch: ['Jupiter.', 'Paris.']",
        "custom_outputs: {'answered_for': 'ana'}",
        "trace id: tr-",
    ],
    "02_chain_with_trace.py": [
        "answer: Order 42 shipped yesterday via UPS (gold support).",
        "collected: tr-",
        " from support-agent",
        "OK, ",
        "3 spans, tokens 118 in / 14 out",
        "support-agent  AGENT  ",
        "├── lookup_order  TOOL  ",
        "└── chat_model  CHAT_MODEL  ",
        "tool lookup_order: {'order_id': 42} -> shipped yesterday via UPS",
        "astream_events custom events: ['databricks_trace']",
    ],
    "03_rag.py": [
        "indexed 5 documents",
        "A: Delta Lake adds ACID transactions and time travel to Parquet tables. [delta.md]",
        "sources: ['delta.md', 'vector.md']",
        "A: Model Serving exposes models and agents as REST endpoints that autoscale. [serving.md]",
        "sources: ['serving.md', 'unity.md']",
    ],
    "04_tool_agent_loop.py": [
        "question: What's the weather in Paris?",
        "step 1: get_weather({'city': 'Paris'}) -> 18 C in Paris",
        "answer: It is 18 C in Paris.",
        "step 1: get_weather({'city': 'Tokyo'}) -> 24 C in Tokyo",
        "step 2: celsius_to_fahrenheit({'celsius': 24.0}) -> 75.2 F",
        "answer: It is 24 C in Tokyo = 75.2 F.",
    ],
    "05_routing_with_fallbacks.py": [
        "question: Where is my order 42?\n  route: shipping | fell_back_from: []\n"
        "  answer: Order 42 is in transit, now at the Lyon hub.",
        "question: I was charged twice, can I get a refund?\n"
        "  route: general | fell_back_from: ['billing']\n  answer: General help: ",
        "question: Do you have gift cards?\n  route: general | fell_back_from: []",
        "streaming: General |help: |",
        "May.) |for |our |team.|\n  route: general | fell_back_from: ['billing']",
    ],
    "06_langgraph_agents.py": [
        "human: What is our return policy?\n"
        "ai: Facts: returns accepted within 30 days; refunds take 5 business days.\n"
        "ai: For new customers: Returns accepted within 30 days;",
        "writer custom_outputs: {'audience': 'new customers'}",
        "  research -> Facts: returns accepted within 30 days;",
        "  write -> For new customers: Returns accepted",
    ],
    "07_testing_with_cassettes.py": [
        "07_testing_with_cassettes.py::test_chain_answers PASSED",
        "07_testing_with_cassettes.py::test_chain_streams PASSED",
        "2 passed",
    ],
    "08_dataset_at_scale.py": [
        "dataset: 300 reviews, max_concurrency=16",
        "progress [##########----------] 150/300 rows",
        "progress [####################] 300/300 rows",
        "labels: {'negative': 100, 'neutral': 100, 'positive': 100}",
        "agreement with expected labels: not measured offline",
        "model calls in flight at once: at most ",
        "the endpoint served 333 requests for 300 rows",
        "rows failed: 0",
        "rate limited: the endpoint sent 33 replies 429 (Retry-After: 0)",
        "retries by the transport: {'429': 33}, 429s absorbed: 33",
    ],
    "09_spark_mapinpandas.py": [
        "dataset: 300 reviews in 4 partitions",
        "the endpoint served 333 requests, 33 of them 429 (retried by the executors)",
        "labels: {'negative': 100, 'neutral': 100, 'positive': 100}",
        "first rows: [('r000', 'positive'), ('r001', 'negative'), ('r002', 'neutral')]",
    ],
    "10_supervisor_sub_agents.py": [
        "answer: Dear customer, returns are accepted within 30 days; "
        "refunds reach the card in 5 business days.",
        "research artifact: text='Facts: returns are accepted within 30 days; refunds reach",
        "tool calls: [\"search_docs({'query': 'returns refunds'}) -> returns are accepted",
        "write artifact: text='Dear customer, returns are accepted within 30 days;",
        "custom_outputs: {'words': 16}",
        "tokens: supervisor 251 + sub-agents 150 = 401",
        # One trace: its token total is the supervisor's and both sub-agents' ...
        "30 spans, tokens 325 in / 76 out",
        # ... and both sub-agents' spans (their model calls and tools) nest under the supervisor,
        # each agent call as a chat-model run named after its endpoint.
        "supervisor  AGENT  ",
        "    │   └── research  TOOL  ",
        "    │           └── research-agent  CHAT_MODEL  ",
        "    │               └── research-agent  AGENT  ",
        "    │                           │   └── search_docs  TOOL  ",
        "    │                               └── ChatDatabricksServing  CHAT_MODEL  ",
        "    │   └── write  TOOL  ",
        "    │           └── writer-agent  CHAT_MODEL  ",
        "    │               └── writer-agent  AGENT  ",
        "    │                               └── ChatDatabricksServing  CHAT_MODEL  ",
    ],
    "11_long_running_agents.py": [
        "submitted: ['endpoint', 'id'] in_progress",
        "result: Three studies agree: caching halves latency.",
        "progress: run in_progress (attempt 1)",
        "invoke(background=True): Three studies agree: caching halves latency.",
        "streamed: Three |studies |agree: |caching |halves |latency.\nresumes: 1",
        "conversation id after the crash: chat-42::attempt-2",
        "approval asked: warehouse.drop_table({'table': 'staging.tmp'})",
        "after approval: Dropped staging.tmp.",
        "graph paused for: warehouse.drop_table",
        "graph after approval: Dropped staging.tmp.",
    ],
}


def offline_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATABRICKS_")}
    env["PYTHONPATH"] = str(ROOT)
    return env


def test_every_script_has_expectations() -> None:
    scripts = sorted(p.name for p in (ROOT / "cookbook").glob("[0-9]*.py"))
    assert scripts == sorted(EXPECTED)


@pytest.mark.parametrize("script", sorted(EXPECTED))
def test_script_runs_offline(script: str) -> None:
    if script.startswith("09_") and shutil.which("java") is None:
        # CI checks that Java is present (.ci/run), so this never skips there.
        pytest.skip("cookbook/09 runs Spark in local mode, which needs Java 17+ on PATH")
    result = subprocess.run(
        [sys.executable, str(ROOT / "cookbook" / script)],
        capture_output=True,
        text=True,
        env=offline_env(),
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    for line in EXPECTED[script]:
        assert line in result.stdout, (line, result.stdout)
