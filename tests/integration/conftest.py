"""Fixtures of the loopback integration tests: the shared local endpoint (support/serving.py)."""

from tests.support.serving import _serving, make_chat, serving  # noqa: F401  (fixtures)
