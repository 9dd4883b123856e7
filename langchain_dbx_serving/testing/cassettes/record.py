"""Record cassettes against a local serving endpoint: no workspace needed.

Starts a :class:`~langchain_dbx_serving.testing.LocalEndpoint` serving the given backends with
a fresh ``dapi``-shaped token and runs pytest in a child process with ``DATABRICKS_HOST`` and
``DATABRICKS_TOKEN`` pointing at it and ``--record-mode=rewrite`` (``--mode`` to change), so the
plugin's fixtures run live against the endpoint and write scrubbed cassettes. Afterwards the
``--scan`` directories (default ``cassettes`` if it exists) are checked for the token, the
endpoint's address and token-shaped strings.

Usage::

    python -m langchain_dbx_serving.testing.record cassettes/backends.py -- tests/cassettes
    python -m langchain_dbx_serving.testing.record cassettes/backends.py:FAQ -- cookbook/07_*.py

``BACKENDS`` is ``FILE.py[:NAME]`` (``NAME`` defaults to ``BACKENDS``: a mapping of endpoint
names to backends, or one backend for every name), a JSON script of replies, or ``echo``.
"""

from __future__ import annotations

import argparse
import os
import runpy
import secrets
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["load_backends", "main", "recording_env"]

_CLEARED = (
    "DATABRICKS_CLIENT_ID",
    "DATABRICKS_CLIENT_SECRET",
    "DATABRICKS_CONFIG_PROFILE",
    "DATABRICKS_AUTH_TYPE",
)


def load_backends(spec: str) -> Any:
    """What ``LocalEndpoint`` should serve, from ``FILE.py[:NAME]``, a JSON script or ``echo``.

    Example::

        load_backends("cassettes/backends.py")       # its BACKENDS
        load_backends("cassettes/backends.py:FAQ")
    """
    path, _, name = spec.partition(".py:")
    if spec.endswith(".py") or name:
        file = path if spec.endswith(".py") else path + ".py"
        namespace = runpy.run_path(file)
        key = name or "BACKENDS"
        if key not in namespace:
            raise SystemExit(f"record: {file} defines no {key!r}")
        return namespace[key]
    return spec


def recording_env(host: str, token: str) -> dict[str, str]:
    """This process's environment with the Databricks variables pointing at ``host``."""
    env = {k: v for k, v in os.environ.items() if k not in _CLEARED}
    env.update(DATABRICKS_HOST=host, DATABRICKS_TOKEN=token)
    return env


def _leaks(directories: Sequence[str], token: str, address: str) -> list[str]:
    """Files in ``directories`` holding the token, the endpoint address or token shapes."""
    from langchain_dbx_serving.testing.scan import scan_paths

    existing = [d for d in directories if Path(d).exists()]
    findings, _ = scan_paths(existing)
    problems = [str(finding) for finding in findings]
    for directory in existing:
        for file in Path(directory).rglob("*.yaml"):
            text = file.read_text(encoding="utf-8", errors="replace")
            problems += [
                f"{file}: holds the {what}"
                for what, value in (("token", token), ("endpoint address", address))
                if value in text
            ]
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    """The CLI; returns pytest's exit code, or 1 when a cassette leaks."""
    parser = argparse.ArgumentParser(
        prog="python -m langchain_dbx_serving.testing.record",
        description="Record cassettes against a local Databricks serving endpoint.",
    )
    parser.add_argument("backends", help="FILE.py[:NAME], a JSON script of replies, or 'echo'")
    parser.add_argument("pytest_args", nargs=argparse.REMAINDER, help="arguments for pytest")
    parser.add_argument("--mode", default="rewrite", choices=["rewrite", "once", "new_episodes"])
    parser.add_argument(
        "--chat-agent",
        action="append",
        default=[],
        metavar="NAME",
        help="an endpoint that answers chat in ChatAgent shape (repeatable)",
    )
    parser.add_argument(
        "--scan",
        action="append",
        default=None,
        metavar="DIR",
        help="directory to check for leaks afterwards (default: cassettes)",
    )
    args = parser.parse_args(argv)
    pytest_args = list(args.pytest_args)
    if pytest_args[:1] == ["--"]:
        pytest_args = pytest_args[1:]

    from langchain_dbx_serving.testing.local_endpoint.server import LocalEndpoint

    token = "dapi" + secrets.token_hex(16)
    endpoint = LocalEndpoint(load_backends(args.backends), token=token, chat_agents=args.chat_agent)
    with endpoint as ep:
        print(f"record: local endpoint at {ep.host}; pytest --record-mode={args.mode}", flush=True)
        command = [sys.executable, "-m", "pytest", f"--record-mode={args.mode}", *pytest_args]
        code = subprocess.call(command, env=recording_env(ep.host, token))
    problems = _leaks(args.scan or ["cassettes"], token, f"{ep.bind_host}:{ep.port}")
    for problem in problems:
        print(f"record: {problem}", file=sys.stderr)
    return code or (1 if problems else 0)


if __name__ == "__main__":
    sys.exit(main())
