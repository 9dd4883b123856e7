"""The secret scanner: names file and line of each token-shaped string, exits non-zero.

Token-shaped values are assembled at run time so this file itself stays clean for the scanner.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from langchain_dbx_serving.testing.scan import main, scan_text
from tests.cassettes.workflows import ROOT

PAT = "dapi" + "0a1b2c3d" * 4
CLIENT_SECRET = "dose" + "9f8e7d6c" * 4
REFRESH = "doau" + "1234abcd" * 4
JWT = ".".join(["eyJ" + "hbGciOiJSUzI1NiJ9", "eyJ" + "zdWIiOiJzcC0xIn0", "c2lnbmF0dXJlLXBhcnQ"])
LONG_BEARER = "Bearer " + "Zx9" * 12


@pytest.mark.parametrize(
    ("line", "kind"),
    [
        (f"token = {PAT}", "Databricks personal access token"),
        (f"      - {PAT}-2", "Databricks personal access token"),
        (f'{{"client_secret": "{CLIENT_SECRET}"}}', "Databricks OAuth client secret"),
        (f"refresh={REFRESH}", "Databricks OAuth refresh token"),
        (f'"access_token": "{JWT}"', "JWT (OAuth access token)"),
        (f"authorization: {LONG_BEARER}", "bearer token"),
        ("grant_type=client_credentials&client_secret=" + "q" * 20, "client secret"),
    ],
)
def test_each_token_shape_is_found(line: str, kind: str) -> None:
    hits = list(scan_text(f"first line\n{line}\n"))
    assert [(number, found) for number, found, _ in hits][:1] == [(2, kind)]


@pytest.mark.parametrize(
    "line",
    [
        "authorization: Bearer <redacted>",
        "Bearer ***",
        'headers = {"Authorization": f"Bearer {token}"}',
        '"client_secret": "<redacted:client-secret>"',
        "dapi is how Databricks tokens start; dapi1234 is too short",
        "uri: https://databricks-workspace.invalid/serving-endpoints/x/invocations",
    ],
)
def test_placeholders_and_prose_are_not_flagged(line: str) -> None:
    assert list(scan_text(line)) == []


def test_cli_names_file_and_line_and_masks_the_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cassette = tmp_path / "cassettes" / "leaky.yaml"
    cassette.parent.mkdir()
    cassette.write_text(f'interactions:\n- request:\n    body: \'{{"token": "{PAT}"}}\'\n')
    (tmp_path / "cassettes" / "clean.yaml").write_text("interactions: []\n")
    (tmp_path / "cassettes" / "blob.bin").write_bytes(b"\0\1" + PAT.encode())

    assert main([str(tmp_path / "cassettes")]) == 1
    out = capsys.readouterr().out
    assert f"{cassette}:3: Databricks personal access token (dapi... 36 chars)" in out
    assert PAT not in out
    assert "blob.bin" not in out  # binary files are skipped


def test_cli_passes_clean_trees_and_rejects_missing_paths(tmp_path: Path) -> None:
    (tmp_path / "ok.yaml").write_text("Authorization: Bearer <redacted>\n")
    assert main([str(tmp_path)]) == 0
    assert main([str(tmp_path / "missing")]) == 2


def test_module_entry_point_fails_on_a_leak(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(f"ACCESS = {JWT!r}\n")
    done = subprocess.run(
        [sys.executable, "-m", "langchain_dbx_serving.testing.scan", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "conftest.py:1: JWT (OAuth access token)" in done.stdout


def test_the_repository_cassettes_and_tests_are_clean() -> None:
    # What CI runs before pytest (.ci/run).
    assert main([str(ROOT / "cassettes"), str(ROOT / "tests")]) == 0
