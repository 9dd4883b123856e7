"""``import langchain_dbx_serving`` stays light: fast, and without the heavy optional modules."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("databricks.sdk", "mlflow", "vcr", "starlette", "uvicorn", "openai", "pandas", "numpy")

PROBE = f"""
import json, sys, time
start = time.perf_counter()
import langchain_dbx_serving
elapsed = time.perf_counter() - start
print(json.dumps({{"seconds": elapsed, "heavy": [m for m in {HEAVY!r} if m in sys.modules]}}))
"""


def _probe() -> dict:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=60
    )
    return json.loads(out.stdout)


def test_import_is_fast_and_leaves_heavy_modules_out() -> None:
    # Best of three fresh interpreters, so one cold disk cache does not decide the result.
    runs = [_probe() for _ in range(3)]
    assert all(run["heavy"] == [] for run in runs), runs
    assert min(run["seconds"] for run in runs) < 0.3, runs


def test_every_public_name_resolves() -> None:
    import langchain_dbx_serving as pkg

    for name in pkg.__all__:
        assert getattr(pkg, name) is not None, name
    assert set(pkg.__all__) <= set(dir(pkg))
