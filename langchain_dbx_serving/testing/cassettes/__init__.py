"""The cassette plugin: record real (or local) serving traffic once, replay it in tests.

- ``plugin``: the pytest fixtures, options and hooks (registered through
  :mod:`langchain_dbx_serving.testing.plugin`);
- ``record``: cassettes recorded against a local endpoint (``python -m
  langchain_dbx_serving.testing.record``);
- ``_vcr_config``: scrubbing, request matching and the vcrpy configuration; ``_vcr_setup``:
  the cassette object vcrpy is given; ``_codec``: compressed bodies stored readable;
  ``_drift``: what a replayed request changed, said first.

This ``__init__`` imports nothing (vcrpy loads only when a cassette is set up).
"""
