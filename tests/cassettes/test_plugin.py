"""The pytest plugin as a user runs it (pytester): record live, replay offline, fail loudly.

Each test writes a small user project (test files, sometimes a conftest), records it against a
local endpoint through the plugin's fixtures with a secret token in the environment, and then
runs it again with the endpoint stopped and ``--disable-socket`` (no socket of any kind).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpcore  # noqa: F401  (see below)
import pytest

from langchain_dbx_serving.testing import LocalEndpoint
from langchain_dbx_serving.testing.plugin import PLACEHOLDER_HOST
from langchain_dbx_serving.testing.record import load_backends
from langchain_dbx_serving.testing.scan import scan_paths
from tests.cassettes.workflows import BACKENDS_FILE

pytest_plugins = ["pytester"]
# pytester's in-process runs drop the modules first imported during a run. httpx imports httpcore
# on its first request and caches httpcore's exception classes for good: were that first request
# made inside a run, later httpcore errors would escape httpx's mapping (importing it here above
# keeps one httpcore for the whole session).

BACKENDS = load_backends(str(BACKENDS_FILE))

USER_TEST = """
import json, os
from langchain_core.prompts import ChatPromptTemplate

def test_chain(dbx_chat, dbx_serving):
    chain = ChatPromptTemplate.from_template("What is the {thing}?") | dbx_chat
    reply = chain.invoke({"thing": "QUESTION"})
    agent = dbx_serving.responses("support-agent")
    pieces = [chunk.text for chunk in agent.stream("Where is order 7?")]
    with open(os.environ["RESULTS"], "a") as out:
        out.write(json.dumps({"live": dbx_serving.live, "text": reply.text, "pieces": pieces}))
        out.write("\\n")
"""


def user_test(question: str = "capital of France") -> str:
    return USER_TEST.replace("QUESTION", question)


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A user project with no Databricks environment; results go to ``results.jsonl``."""
    for name in ("HOST", "TOKEN", "CLIENT_ID", "CLIENT_SECRET", "CONFIG_PROFILE"):
        monkeypatch.delenv(f"DATABRICKS_{name}", raising=False)
    monkeypatch.setenv("RESULTS", str(pytester.path / "results.jsonl"))
    # Only the plugins that matter here (see PLUGINS); entry-point loading has its own test.
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    return pytester


@pytest.fixture
def token() -> str:
    return "dapi" + secrets.token_hex(16)  # built at run time: no token shape in this file


@pytest.fixture
def endpoint(token: str) -> Iterator[LocalEndpoint]:
    with LocalEndpoint(BACKENDS, token=token) as ep:
        yield ep


PLUGINS = ("pytest_recording.plugin", "pytest_socket", "langchain_dbx_serving.testing.plugin")


def plugin_args() -> list[str]:
    return ["-p", "no:cacheprovider", *(arg for name in PLUGINS for arg in ("-p", name))]


def run(project: pytest.Pytester, *args: str) -> pytest.RunResult:
    return project.runpytest(*plugin_args(), "--dbx-chat-endpoint=faq-model", *args)


def record(
    project: pytest.Pytester, ep: LocalEndpoint, monkeypatch: pytest.MonkeyPatch, *args: str
) -> pytest.RunResult:
    """Run the project live against ``ep``, recording missing cassettes."""
    with monkeypatch.context() as env:
        env.setenv("DATABRICKS_HOST", ep.host)
        env.setenv("DATABRICKS_TOKEN", ep.token or "")
        return run(project, "--record-mode=once", *args)


def results(project: pytest.Pytester) -> list[dict]:
    lines = (project.path / "results.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_records_live_then_replays_offline(
    project: pytest.Pytester, endpoint: LocalEndpoint, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.makepyfile(test_user=user_test())
    record(project, endpoint, monkeypatch).assert_outcomes(passed=1)
    assert len(endpoint.requests) == 2
    endpoint.stop()

    cassette = project.path / "cassettes" / "test_user" / "test_chain.yaml"
    text = cassette.read_text()
    assert token not in text and f"127.0.0.1:{endpoint.port}" not in text
    assert PLACEHOLDER_HOST in text and "authorization" not in text.lower()
    assert scan_paths([cassette])[0] == []
    assert "text/event-stream" in text
    assert any(line.strip() == "data: [DONE]" for line in text.splitlines())

    # Credentials set but record mode "none" (the default): replay, with no socket at all.
    with monkeypatch.context() as env:
        env.setenv("DATABRICKS_HOST", endpoint.host)
        env.setenv("DATABRICKS_TOKEN", token)
        run(project, "--disable-socket").assert_outcomes(passed=1)
    # Recording allowed but no credentials: replay too.
    run(project, "--disable-socket", "--record-mode=new_episodes").assert_outcomes(passed=1)

    live, *replays = results(project)
    assert live["live"] is True and "Paris" in live["text"]
    assert len(live["pieces"]) > 3
    for replay in replays:
        assert replay == {**live, "live": False}


def test_a_drifted_prompt_fails_with_a_diff(
    project: pytest.Pytester, endpoint: LocalEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.makepyfile(test_user=user_test())
    record(project, endpoint, monkeypatch).assert_outcomes(passed=1)
    endpoint.stop()

    project.makepyfile(test_user=user_test("largest planet"))
    result = run(project, "--disable-socket")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*CannotOverwriteExistingCassetteException*",
            "*request body differs from the recording*",
            '*-*"content": "What is the capital of France?"*',
            '*+*"content": "What is the largest planet?"*',
        ]
    )
    assert len(results(project)) == 1  # the replay never got an answer


def test_a_drifted_prompt_shows_the_diff_first_and_how_to_re_record(
    project: pytest.Pytester, endpoint: LocalEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.makepyfile(test_user=user_test())
    record(project, endpoint, monkeypatch).assert_outcomes(passed=1)

    project.makepyfile(test_user=user_test("largest planet"))
    result = run(project, "--disable-socket")
    result.assert_outcomes(failed=1)
    start = next(i for i, line in enumerate(result.outlines) if "FAILURES" in line)
    failure = result.outlines[start:]
    shown = "\n".join(failure)
    # What changed comes first, before any frame: the diff within the first lines of the report.
    first = "\n".join(failure[:15])
    assert '-      "content": "What is the capital of France?",' in first
    assert '+      "content": "What is the largest planet?",' in first
    assert "pytest 'test_user.py::test_chain' --record-mode=rewrite" in shown
    assert 'sent from test_user.py:6: reply = chain.invoke({"thing": "largest planet"})' in shown
    assert "httpx_stubs.py" not in shown and "_client.py" not in shown  # no library frames

    # Following the advice re-records the cassette, and the new prompt then replays offline.
    with monkeypatch.context() as env:
        env.setenv("DATABRICKS_HOST", endpoint.host)
        env.setenv("DATABRICKS_TOKEN", endpoint.token or "")
        run(project, "test_user.py::test_chain", "--record-mode=rewrite").assert_outcomes(passed=1)
    endpoint.stop()
    run(project, "--disable-socket").assert_outcomes(passed=1)
    assert "planet" in results(project)[-1]["text"].lower()


def test_an_explicit_traceback_style_keeps_the_frames_after_the_diff(
    project: pytest.Pytester, endpoint: LocalEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.makepyfile(test_user=user_test())
    record(project, endpoint, monkeypatch).assert_outcomes(passed=1)
    endpoint.stop()

    project.makepyfile(test_user=user_test("largest planet"))
    result = run(project, "--disable-socket", "--tb=short")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            '*+*"content": "What is the largest planet?"*',
            "*--record-mode=rewrite*",
            "*httpx_stubs.py*",
            "E   vcr.errors.CannotOverwriteExistingCassetteException*",
        ]
    )


def test_fail_unplayed_option(
    project: pytest.Pytester, endpoint: LocalEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.makepyfile(test_user=user_test())
    record(project, endpoint, monkeypatch).assert_outcomes(passed=1)
    endpoint.stop()
    # The workflow now skips its second call.
    project.makepyfile(test_user=user_test().replace('agent.stream("Where is order 7?")', "[]"))

    run(project, "--disable-socket").assert_outcomes(passed=1)
    result = run(project, "--disable-socket", "--dbx-fail-unplayed")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*1 of 2 recorded interactions were never requested (--dbx-fail-unplayed)*",
            "*#2: POST /serving-endpoints/responses*",
        ]
    )


def test_a_missing_cassette_says_how_to_record(project: pytest.Pytester) -> None:
    project.makepyfile(test_user=user_test())
    result = run(project, "--disable-socket")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*no recorded interactions in *test_chain.yaml*--record-mode=once*"]
    )


def test_disabled_recording_skips_without_credentials(project: pytest.Pytester) -> None:
    project.makepyfile(test_user=user_test())
    result = run(project, "--disable-recording", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*recording is disabled and DATABRICKS_HOST*"])


OTHER_CLIENT_TEST = """
import os, httpx, pytest

@pytest.mark.vcr
def test_raw_http():
    host = os.environ.get("DATABRICKS_HOST", "https://databricks-workspace.invalid")
    token = os.environ.get("DATABRICKS_TOKEN", "replay-token")
    reply = httpx.post(
        f"{host}/serving-endpoints/faq-model/invocations",
        json={"messages": [{"role": "user", "content": "Largest planet?"}]},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert reply.json()["choices"][0]["message"]["content"] == "Jupiter is the largest planet."
"""


def test_dbx_vcr_config_merges_into_a_users_vcr_config(
    project: pytest.Pytester, endpoint: LocalEndpoint, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.makeconftest(
        """
import pytest

@pytest.fixture
def vcr_config(dbx_vcr_config):
    return {**dbx_vcr_config, "record_mode": "once"}
"""
    )
    project.makepyfile(test_other=OTHER_CLIENT_TEST)
    record(project, endpoint, monkeypatch).assert_outcomes(passed=1)
    endpoint.stop()
    text = (project.path / "cassettes" / "test_other" / "test_raw_http.yaml").read_text()
    assert token not in text and f"127.0.0.1:{endpoint.port}" not in text
    run(project, "--disable-socket").assert_outcomes(passed=1)


def test_other_vcr_tests_are_left_alone(
    project: pytest.Pytester, endpoint: LocalEndpoint, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A vcr test that does not use the plugin records exactly as pytest-recording does by
    # default: the real host, the authorization header, vcrpy's own YAML style.
    project.makepyfile(test_other=OTHER_CLIENT_TEST)
    record(project, endpoint, monkeypatch).assert_outcomes(passed=1)
    text = (project.path / "cassettes" / "test_other" / "test_raw_http.yaml").read_text()
    assert f"127.0.0.1:{endpoint.port}" in text
    assert "authorization" in text.lower()
    assert "databricks-workspace.invalid" not in text


def test_refuses_to_record_with_a_config_that_would_leak(
    project: pytest.Pytester, endpoint: LocalEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.makeconftest(
        """
import pytest

@pytest.fixture
def vcr_config():
    return {"before_record_request": [lambda request: request]}
"""
    )
    project.makepyfile(test_user=user_test())
    result = record(project, endpoint, monkeypatch)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*would record your Databricks token or host*"])
    assert not (project.path / "cassettes").exists()
    assert endpoint.requests == []


def test_registered_plugin_stays_cheap(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_plain="""
import sys

def test_plain(request):
    assert request.config.pluginmanager.has_plugin("langchain_dbx_serving")
    assert "vcr" not in sys.modules
"""
    )
    # Entry points load as for any user (only unrelated slow plugins are left out).
    slow = ("hypothesispytest", "langsmith_plugin", "codspeed", "benchmark")
    args = [arg for name in ("cacheprovider", *slow) for arg in ("-p", f"no:{name}")]
    pytester.runpytest_subprocess(*args).assert_outcomes(passed=1)
    probe = "import sys, langchain_dbx_serving.testing.plugin; print('vcr' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_record_cli_records_against_a_local_endpoint(tmp_path: Path) -> None:
    tests = tmp_path / "test_cli.py"
    tests.write_text(user_test().replace('os.environ["RESULTS"]', f"{str(tmp_path / 'r')!r}"))
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\nasyncio_default_fixture_loop_scope = function\n"
    )
    command = [
        sys.executable,
        "-m",
        "langchain_dbx_serving.testing.record",
        "--scan",
        str(tmp_path / "cassettes"),
        str(BACKENDS_FILE),
        "--",
        str(tests),
        *plugin_args(),
        "--dbx-chat-endpoint=faq-model",
    ]
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    done = subprocess.run(
        command, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "cassettes" / "test_cli" / "test_chain.yaml").exists()
    assert json.loads((tmp_path / "r").read_text())["live"] is True
