"""Fixtures of the migration tests: the shared local endpoint (tests/support/serving.py)."""

from tests.support.serving import _serving, make_chat, serving  # noqa: F401  (fixtures)
