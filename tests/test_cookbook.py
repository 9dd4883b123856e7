"""Every cookbook script runs offline from a clean environment and prints what it promises."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXPECTED = {
    "01_quickstart.py": [
        "invoke: Paris.",
        "stream: About |299,792 |km |per |second.|",
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
    "07_testing_with_cassettes.py": [
        "07_testing_with_cassettes.py::test_chain_answers PASSED",
        "07_testing_with_cassettes.py::test_chain_streams PASSED",
        "2 passed",
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
