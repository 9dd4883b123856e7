"""The documented door to the local endpoint: ``LocalEndpoint``, ``DEFAULT_TOKEN`` and the CLI.

The endpoint itself lives in :mod:`langchain_dbx_serving.testing.local_endpoint` (this module
imports its server, hence uvicorn and starlette). As a CLI (runs until Ctrl-C)::

    python -m langchain_dbx_serving.testing.endpoint --port 8080 --token T
    python -m langchain_dbx_serving.testing.endpoint --backend script.json --chat-agent
"""

from __future__ import annotations

import sys

from langchain_dbx_serving.testing.local_endpoint.server import DEFAULT_TOKEN, LocalEndpoint, main

__all__ = ["DEFAULT_TOKEN", "LocalEndpoint", "main"]

if __name__ == "__main__":
    sys.exit(main())
