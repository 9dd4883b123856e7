"""Fixtures of the adversarial suite: DEBUG logs of every HTTP library, captured."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterator

import pytest

from langchain_dbx_serving.transport import client as transport_client

LOGGERS = ("httpx", "httpcore", "urllib3", "databricks.sdk", "langchain_dbx_serving", "vcr")


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def text(self) -> str:
        lines = []
        for record in self.records:
            lines.append(record.getMessage())
            lines.append(repr(record.args))
            if record.exc_info and record.exc_info[1] is not None:
                lines.append("".join(traceback.format_exception(record.exc_info[1])))
        return "\n".join(lines)


@pytest.fixture
def debug_logs() -> Iterator[_Collect]:
    """Every record of the HTTP and auth libraries' loggers, at DEBUG."""
    handler = _Collect()
    loggers = [logging.getLogger(name) for name in LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
        logger.addHandler(handler)
    try:
        yield handler
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transport_client, "_INITIAL_BACKOFF", 0.001)


@pytest.fixture(autouse=True)
def clean_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """No Databricks settings, proxies or profiles from the machine running the tests."""
    import os

    for name in list(os.environ):
        upper = name.upper()
        if upper.startswith(("DATABRICKS_", "ARM_")) or upper.endswith("_PROXY"):
            monkeypatch.delenv(name)
    empty = tmp_path_factory.mktemp("home") / ".databrickscfg"
    empty.write_text("")
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(empty))
