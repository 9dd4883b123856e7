"""The documented door to cassette recording against a local endpoint.

Defined in :mod:`langchain_dbx_serving.testing.cassettes.record`; see its docstring. Usage::

    python -m langchain_dbx_serving.testing.record cassettes/backends.py -- tests/cassettes
"""

from __future__ import annotations

import sys

from langchain_dbx_serving.testing.cassettes.record import load_backends, main, recording_env

__all__ = ["load_backends", "main", "recording_env"]

if __name__ == "__main__":
    sys.exit(main())
