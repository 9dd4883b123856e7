"""pytest plugin: test chains and agents on recorded Databricks serving traffic.

Registered as ``langchain_dbx_serving`` through the ``pytest11`` entry point, on top of
pytest-recording and vcrpy. It defines fixtures, options and hooks only: a test that uses none
of them runs exactly as before, and vcrpy is imported only when a cassette is set up.

Fixtures:

- ``dbx_chat``: a ``ChatDatabricksServing`` for the endpoint named by ``--dbx-chat-endpoint`` (or
  the ``dbx_chat_endpoint`` ini option); ``dbx_serving``: a :class:`ServingTarget` that builds any
  chat model or agent client. Both give a test its cassette (by default
  ``tests/cassettes/<module>/<test>.yaml``) and run **live** when ``DATABRICKS_HOST`` and
  credentials (``DATABRICKS_TOKEN``, or ``DATABRICKS_CLIENT_ID`` and ``DATABRICKS_CLIENT_SECRET``)
  are set and the record mode allows recording (``--record-mode=once|rewrite|new_episodes|all``);
  otherwise they **replay**, and a request the cassette does not hold fails.
- ``dbx_vcr_config``: the configuration (see :func:`databricks_vcr_config`) to merge into your
  own ``vcr_config`` for tests that use other clients under ``@pytest.mark.vcr``.

A replayed request that the cassette does not hold (the code now sends a different body) fails
with what changed first (the body diff), then the command that re-records that test
(``pytest '<test id>' --record-mode=rewrite``), then the test line that sent it; pass ``--tb=``
to see the full traceback after that.

Option: ``--dbx-fail-unplayed`` (ini ``dbx_fail_unplayed = true``) fails a replayed test that
leaves recorded interactions unplayed (its workflow now makes fewer calls than recorded).

Example::

    def test_my_chain(dbx_chat):
        chain = ChatPromptTemplate.from_template("Capital of {country}?") | dbx_chat
        assert "Paris" in chain.invoke({"country": "France"}).text
"""

from __future__ import annotations

import contextvars
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from langchain_dbx_serving.testing.cassettes import _drift
from langchain_dbx_serving.testing.cassettes._vcr_config import (
    PLACEHOLDER_HOST,
    REPLAY_TOKEN,
    databricks_vcr_config,
    is_databricks_config,
    live_host,
)

if TYPE_CHECKING:
    from langchain_dbx_serving.agents import AgentEndpoint
    from langchain_dbx_serving.chat_models import ChatDatabricksResponses, ChatDatabricksServing

__all__ = [
    "PLACEHOLDER_HOST",
    "REPLAY_TOKEN",
    "ServingTarget",
    "databricks_cassette",
    "databricks_vcr_config",
]

DEFAULT_CHAT_ENDPOINT = "databricks-claude-sonnet-4"
_USES_TARGET = "dbx_serving"
# The request of the pytest-recording ``vcr`` fixture being set up, for its configure hook.
_SETTING_UP: contextvars.ContextVar[Any] = contextvars.ContextVar("dbx_vcr_setup", default=None)


def databricks_cassette(path: str | Path, *, record_mode: str = "none", **options: Any) -> Any:
    """A vcrpy cassette with the Databricks configuration, for use outside pytest fixtures.

    Example::

        with databricks_cassette("demo.yaml", record_mode="once"):
            llm.invoke("hi")
    """
    from langchain_dbx_serving.testing.cassettes._vcr_setup import databricks_cassette as cassette

    return cassette(path, record_mode=record_mode, **options)


@dataclass(frozen=True)
class ServingTarget:
    """Where a test's clients go: the live workspace, or the cassette on replay.

    ``live`` says which; ``host`` is the workspace (the placeholder on replay); ``token`` is set
    on replay only (live clients take credentials from the environment, as in production).

    Example::

        def test_agent(dbx_serving):
            agent = dbx_serving.agent("support-agent")
            assert agent.invoke("Where is order 42?").text
    """

    live: bool
    host: str
    token: str | None = None
    cassette: Any = field(default=None, repr=False, compare=False)

    def connection(self, **overrides: Any) -> dict[str, Any]:
        """``host`` (and the replay ``token``) for any client of ours, under ``overrides``."""
        values: dict[str, Any] = {"host": self.host}
        if self.token is not None:
            values["token"] = self.token
        return {**values, **overrides}

    def chat(self, endpoint: str, **kwargs: Any) -> ChatDatabricksServing:
        """A ``ChatDatabricksServing`` (chat completions) for ``endpoint``."""
        from langchain_dbx_serving.chat_models import ChatDatabricksServing

        return ChatDatabricksServing(endpoint=endpoint, **self.connection(**kwargs))

    def responses(self, endpoint: str, **kwargs: Any) -> ChatDatabricksResponses:
        """A ``ChatDatabricksResponses`` (responses agents) for ``endpoint``."""
        from langchain_dbx_serving.chat_models import ChatDatabricksResponses

        return ChatDatabricksResponses(endpoint=endpoint, **self.connection(**kwargs))

    def agent(self, endpoint: str, **kwargs: Any) -> AgentEndpoint:
        """An ``AgentEndpoint`` runnable for ``endpoint``."""
        from langchain_dbx_serving.agents import AgentEndpoint

        return AgentEndpoint(endpoint, **self.connection(**kwargs))


# -- options and collection ------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("langchain_dbx_serving", "Databricks serving cassettes")
    group.addoption(
        "--dbx-fail-unplayed",
        action="store_true",
        default=None,
        help="fail a replayed test that leaves recorded interactions unplayed",
    )
    group.addoption(
        "--dbx-chat-endpoint",
        default=None,
        help=f"serving endpoint of the dbx_chat fixture (default: {DEFAULT_CHAT_ENDPOINT})",
    )
    parser.addini(
        "dbx_fail_unplayed",
        "fail a replayed test that leaves recorded interactions unplayed",
        type="bool",
        default=False,
    )
    parser.addini("dbx_chat_endpoint", "serving endpoint of the dbx_chat fixture", default="")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # A test that asks for dbx_serving (or dbx_chat) gets its cassette without a vcr mark.
    for item in items:
        names = getattr(item, "fixturenames", ())
        if _USES_TARGET in names and item.get_closest_marker("vcr") is None:
            item.add_marker(pytest.mark.vcr)


# -- configuring pytest-recording's cassettes --------------------------------------------------


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(fixturedef: Any, request: Any) -> Iterator[Any]:
    if fixturedef.argname != "vcr":
        return (yield)
    token = _SETTING_UP.set(request)
    try:
        return (yield)
    finally:
        _SETTING_UP.reset(token)


@pytest.hookimpl(optionalhook=True)
def pytest_recording_configure(config: pytest.Config, vcr: Any) -> None:
    """pytest-recording's hook, called with each test's fresh ``VCR`` before its cassette."""
    from langchain_dbx_serving.testing.cassettes import _vcr_setup

    request = _SETTING_UP.get()
    uses_target = request is not None and _USES_TARGET in getattr(request.node, "fixturenames", ())
    configured = request is not None and _configured(request)
    _vcr_setup.register(vcr, readable=uses_target or configured)
    if uses_target and not configured:
        # The test did not merge dbx_vcr_config into vcr_config: ours become the defaults,
        # under whatever its vcr_config and marks do set.
        _vcr_setup.apply_defaults(vcr, request.getfixturevalue("dbx_vcr_config"))


def _configured(request: Any) -> bool:
    """Whether the test's vcr_config and vcr marks (merged as pytest-recording does) are ours."""
    merged = dict(request.getfixturevalue("vcr_config"))
    for marker in reversed(request.getfixturevalue("vcr_markers")):
        merged.update(marker.kwargs)
    return is_databricks_config(merged)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    result = yield
    if _fail_unplayed(item.config):
        cassette = getattr(item, "funcargs", {}).get("vcr")
        if cassette is not None and hasattr(cassette, "all_played"):
            _check_all_played(cassette)
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[Any]:
    report = yield
    if report.when == "call" and report.failed and call.excinfo is not None:
        error = _drift.cassette_error(call.excinfo.value)
        if error is not None and hasattr(error, "failed_request"):
            summary = _drift.drift_report(error, item.nodeid, _test_line(item, call.excinfo))
            if item.config.getoption("tbstyle", "auto") == "auto":
                report.longrepr = summary  # the frames below the test say nothing here
            else:  # the user asked for a traceback style: keep it, after the summary
                report.longrepr = f"{summary}\n\n{report.longrepr}"
    return report


def _test_line(item: pytest.Item, excinfo: pytest.ExceptionInfo[BaseException]) -> str | None:
    """``file:line: source`` of the deepest frame in the test's own file."""
    here = getattr(item, "path", None)
    for entry in reversed(excinfo.traceback):
        if here is not None and Path(entry.path) == Path(here):
            source = str(entry.statement).strip()
            return f"{Path(entry.path).name}:{entry.lineno + 1}: {source}"
    return None


def _fail_unplayed(config: pytest.Config) -> bool:
    option = config.getoption("--dbx-fail-unplayed")
    return bool(option if option is not None else config.getini("dbx_fail_unplayed"))


def _check_all_played(cassette: Any) -> None:
    # Only a replay-only cassette says "the test asked for less than was recorded"; while
    # recording, interactions are appended as they happen.
    if not cassette.write_protected or cassette.all_played:
        return
    unplayed = [
        f"  #{index + 1}: {request.method} {request.path}"
        for index, request in enumerate(cassette.requests)
        if cassette.play_counts[index] == 0
    ]
    raise AssertionError(
        f"{len(unplayed)} of {len(cassette)} recorded interactions were never requested "
        f"(--dbx-fail-unplayed):\n" + "\n".join(unplayed) + "\nThe test now makes fewer calls "
        "than when it was recorded: re-record it with --record-mode=rewrite."
    )


# -- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def dbx_vcr_config() -> dict[str, Any]:
    """The Databricks vcrpy configuration; merge it into your ``vcr_config`` fixture:

    ``return {**dbx_vcr_config, "record_mode": "once"}`` (don't mutate it: it is shared).
    """
    return databricks_vcr_config()


def _cassette(request: pytest.FixtureRequest) -> Any:
    try:
        return request.getfixturevalue("vcr")
    except pytest.FixtureLookupError:
        raise pytest.UsageError(
            "dbx_serving needs pytest-recording: pip install pytest-recording vcrpy"
        ) from None


def _cassette_path(request: pytest.FixtureRequest) -> str:
    directory = request.getfixturevalue("vcr_cassette_dir")
    return os.path.join(directory, request.getfixturevalue("default_cassette_name") + ".yaml")


def _check_scrubbing(cassette: Any, host: str) -> None:
    """Refuse to record when the active configuration would write credentials or the host."""
    from vcr.request import Request

    fake = "dapi" + "0123456789abcdef" * 2
    url = f"{host.rstrip('/')}/serving-endpoints/x/invocations"
    headers = {"Authorization": f"Bearer {fake}", "X-Databricks-GCP-SA-Access-Token": fake[::-1]}
    probe = Request("POST", url, b"{}", headers)
    kept = cassette.filter_request(probe)
    if kept is None:
        return
    recorded = f"{kept.uri} {dict(kept.headers)}"
    leaked = fake in recorded or fake[::-1] in recorded
    if leaked or host.split("://")[-1].rstrip("/") in recorded:
        raise pytest.UsageError(
            "this test's vcr_config would record your Databricks token or host: merge the "
            "plugin's configuration into it, e.g. `return {**dbx_vcr_config, ...}`, and extend "
            "its before_record_request list instead of replacing it"
        )


@pytest.fixture
def dbx_serving(request: pytest.FixtureRequest) -> ServingTarget:
    """Where this test's serving clients go: live (recording) or the cassette (replaying)."""
    cassette = _cassette(request)
    host = live_host()
    if cassette is None:  # --disable-recording: live or nothing
        if host is None:
            pytest.skip("recording is disabled and DATABRICKS_HOST/credentials are not set")
        return ServingTarget(live=True, host=host)
    if not cassette.write_protected and host is not None:
        _check_scrubbing(cassette, host)
        return ServingTarget(live=True, host=host, cassette=cassette)
    if not cassette.write_protected:
        # Recording is allowed but there is nothing to record with: replay strictly, so a
        # missing interaction fails at once instead of reaching for the placeholder host.
        from vcr.record_mode import RecordMode

        cassette.record_mode = RecordMode.NONE
    if not len(cassette):
        pytest.fail(
            f"no recorded interactions in {_cassette_path(request)}, and this run cannot record "
            "them. Record against your workspace: set DATABRICKS_HOST and DATABRICKS_TOKEN and "
            "run pytest with --record-mode=once; or against a local endpoint: python -m "
            "langchain_dbx_serving.testing.record BACKENDS.py -- <this test file>",
            pytrace=False,
        )
    return ServingTarget(live=False, host=PLACEHOLDER_HOST, token=REPLAY_TOKEN, cassette=cassette)


@pytest.fixture
def dbx_chat(dbx_serving: ServingTarget, pytestconfig: pytest.Config) -> ChatDatabricksServing:
    """A ``ChatDatabricksServing`` for ``--dbx-chat-endpoint`` / ini ``dbx_chat_endpoint``."""
    endpoint = (
        pytestconfig.getoption("--dbx-chat-endpoint")
        or pytestconfig.getini("dbx_chat_endpoint")
        or DEFAULT_CHAT_ENDPOINT
    )
    return dbx_serving.chat(endpoint)
