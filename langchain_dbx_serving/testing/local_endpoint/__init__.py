"""The local Databricks Model Serving endpoint, one job per module.

- ``server``: :class:`LocalEndpoint` (uvicorn on loopback in a thread) and the CLI;
- ``_app``: ``ServingApp``, the parts below put together and the path of one request;
- ``_routes`` (URL table, endpoint lookup), ``_auth`` (bearer check), ``_recording`` (what
  was received), ``_faults`` (planned network faults, cut connections), ``_encoding`` (a
  backend's result as a whole body or SSE events), ``_exchange`` (one request being answered);
- ``replies`` and ``backends``: what a backend is and answers; ``_inbound``: requests decoded
  and validated; ``_wire``, ``_wire_responses``: the per-shape wire encoders;
  ``_error_replies``, ``_family_rules``, ``_long_running``, ``_trace``: HTTP errors, model
  family rules, the durable-agent-server routes and MLflow traces, as real endpoints give them.

This ``__init__`` imports nothing, so the pure parts (``replies``, ``_wire``) load without
starlette or uvicorn. The documented doors are :mod:`langchain_dbx_serving.testing` and its
``endpoint``, ``replies`` and ``backends`` modules.
"""
