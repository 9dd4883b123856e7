"""A secret scanner for cassettes and test files: finds token-shaped strings before they ship.

Flags Databricks personal access tokens (``dapi`` + 32 hex), OAuth client secrets (``dose`` + 32
hex) and refresh tokens (``doau`` + 32 hex), JWT-shaped OAuth access tokens (``eyJ...`` +
``.eyJ...`` + ``.``), ``Bearer`` followed by a long token, and ``client_secret`` keys with a value.
Redaction placeholders (``<redacted:...>``) are not flagged. Exits 1 and names file and line for
each finding (the secret itself is masked in the report), 0 when clean, 2 for a missing path.

Usage::

    python -m langchain_dbx_serving.testing.scan cassettes tests

The same patterns drive the cassette scrubbers of the pytest plugin, so whatever the scanner
would flag is what recording removes.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SECRET_PATTERNS", "Finding", "main", "scan_paths", "scan_text"]

SECRET_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("Databricks personal access token", re.compile(r"(?P<secret>dapi[0-9a-fA-F]{32}(?:-\d+)?)")),
    ("Databricks OAuth client secret", re.compile(r"(?P<secret>dose[0-9a-fA-F]{32})")),
    ("Databricks OAuth refresh token", re.compile(r"(?P<secret>doau[0-9a-fA-F]{32})")),
    (
        "JWT (OAuth access token)",
        re.compile(r"(?P<secret>eyJ[\w-]{6,}\.eyJ[\w-]{6,}\.[\w-]*)"),
    ),
    ("bearer token", re.compile(r"Bearer\s+(?P<secret>[A-Za-z0-9._~+/=-]{24,})", re.I)),
    (
        "client secret",
        re.compile(
            r"""client_secret["']?\s*[:=]\s*["']?(?P<secret>[A-Za-z0-9._~+/=-]{12,})""", re.I
        ),
    ),
)
"""``(kind, pattern)`` pairs; the ``secret`` group of each match is the token itself (the rest
is context, such as ``Bearer`` or the ``client_secret`` key, that a replacement keeps)."""

_SKIPPED_DIRS = frozenset(
    {".git", "__pycache__", ".venv", "venv", "node_modules", ".ruff_cache", ".pytest_cache"}
)
_BINARY_SNIFF = 8192


@dataclass(frozen=True)
class Finding:
    """A token-shaped string at ``path:line``; ``preview`` is masked."""

    path: Path
    line: int
    kind: str
    preview: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.kind} ({self.preview})"


def _mask(secret: str) -> str:
    return f"{secret[:4]}... {len(secret)} chars"


def scan_text(text: str) -> Iterator[tuple[int, str, str]]:
    """``(line number, kind, masked preview)`` for each token-shaped string in ``text``."""
    for number, line in enumerate(text.splitlines(), start=1):
        for kind, pattern in SECRET_PATTERNS:
            for match in pattern.finditer(line):
                yield number, kind, _mask(match.group("secret"))


def _files(path: Path) -> Iterator[Path]:
    if path.is_file():
        yield path
        return
    for child in sorted(path.iterdir()):
        if child.is_dir():
            if child.name not in _SKIPPED_DIRS:
                yield from _files(child)
        elif child.is_file():
            yield child


def _read_text(path: Path) -> str | None:
    """The file's text, or ``None`` for binary files."""
    data = path.read_bytes()
    if b"\0" in data[:_BINARY_SNIFF]:
        return None
    return data.decode("utf-8", "replace")


def scan_paths(paths: Iterable[str | Path]) -> tuple[list[Finding], int]:
    """Scan files and directories (recursively); returns ``(findings, files scanned)``.

    Raises ``FileNotFoundError`` for a path that does not exist.
    """
    findings: list[Finding] = []
    scanned = 0
    for root in map(Path, paths):
        if not root.exists():
            raise FileNotFoundError(root)
        for file in _files(root):
            text = _read_text(file)
            if text is None:
                continue
            scanned += 1
            findings += [Finding(file, *hit) for hit in scan_text(text)]
    return findings, scanned


def main(argv: Sequence[str] | None = None) -> int:
    """The CLI: print findings, exit 1 when there are any."""
    parser = argparse.ArgumentParser(
        prog="python -m langchain_dbx_serving.testing.scan",
        description="Fail when files hold token-shaped strings (Databricks tokens, JWTs, ...).",
    )
    parser.add_argument("paths", nargs="+", help="files or directories to scan")
    args = parser.parse_args(argv)
    try:
        findings, scanned = scan_paths(args.paths)
    except FileNotFoundError as exc:
        print(f"scan: no such file or directory: {exc}", file=sys.stderr)
        return 2
    for finding in findings:
        print(finding)
    if findings:
        print(
            f"scan: {len(findings)} token-shaped string(s) in {scanned} files. Remove them "
            "(re-record the cassette with the plugin's scrubbing config); revoke any real token.",
            file=sys.stderr,
        )
        return 1
    print(f"scan: no token-shaped strings in {scanned} files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
