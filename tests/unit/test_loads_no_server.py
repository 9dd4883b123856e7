"""Unit tests load only what they use: importing them (with the root conftest and the plugins
it registers) imports no server, so they run without starlette and uvicorn installed.

Checked in a fresh interpreter, because this process has long since imported the servers for
the loopback tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SERVERS = ("starlette", "uvicorn", "langchain_dbx_serving.testing.endpoint")

PROBE = """
import importlib, json, pathlib, sys
import tests.conftest
for plugin in tests.conftest.pytest_plugins:
    importlib.import_module(plugin)
importlib.import_module("langchain_dbx_serving.testing.plugin")  # the pytest11 entry point
modules = sorted(p.stem for p in pathlib.Path("tests/unit").glob("test_*.py"))
for name in modules:
    importlib.import_module("tests.unit." + name)
print(json.dumps({"modules": modules, "loaded": sorted(sys.modules)}))
"""


def probe() -> dict[str, list[str]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def test_importing_the_unit_tests_imports_no_server() -> None:
    seen = probe()
    assert "test_sse" in seen["modules"] and "test_loads_no_server" in seen["modules"]
    assert "tests.unit.test_sse" in seen["loaded"]  # the probe did import them
    assert [name for name in SERVERS if name in seen["loaded"]] == []
