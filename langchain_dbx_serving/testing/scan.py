"""A secret scanner for cassettes and test files: finds token-shaped strings before they ship.

Flags Databricks personal access tokens (``dapi`` + 32 hex), OAuth client secrets (``dose`` + 32
hex) and refresh tokens (``doau`` + 32 hex), JWT-shaped OAuth access tokens (``eyJ...`` +
``.eyJ...`` + ``.``), Google access tokens (``ya29.``), ``Bearer``/``Basic`` credentials, and
``client_secret`` / ``access_token`` / ``refresh_token`` keys with a value (URL-encoded too).
Redaction placeholders (``<redacted:...>``) are not flagged.

Cassettes (YAML or JSON files with ``interactions``) are read as cassettes: every body is
decoded (base64 ``!!binary``, gzip/deflate/br/zstd per its ``content-encoding``) and every
header is checked, so a token inside a compressed reply, or a credential header such as
``X-Databricks-GCP-SA-Access-Token`` with any value, is found too (reported at line 0).

Exits 1 and names file and line for each finding (the secret itself is masked in the report),
0 when clean, 2 for a missing path.

Usage::

    python -m langchain_dbx_serving.testing.scan cassettes tests

The same patterns drive the cassette scrubbers of the pytest plugin, so whatever the scanner
would flag is what recording removes.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from langchain_dbx_serving._redact import TOKEN_SHAPES

__all__ = ["SECRET_PATTERNS", "Finding", "main", "scan_paths", "scan_text"]

SECRET_PATTERNS = TOKEN_SHAPES
"""``(kind, pattern)`` pairs; the ``secret`` group of each match is the token itself (the rest
is context, such as ``Bearer`` or the ``client_secret`` key, that a replacement keeps). Owned by
``langchain_dbx_serving._redact``, whose error masking uses the same shapes."""

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


def _cassette_findings(path: Path, text: str) -> list[tuple[str, str]] | None:
    """``(kind, masked preview)`` for secrets in a cassette's headers and decoded bodies, or
    ``None`` when the file is not a cassette."""
    if path.suffix.lower() not in (".yaml", ".yml", ".json") or "interactions" not in text:
        return None
    try:
        if path.suffix.lower() == ".json":
            import json

            data = json.loads(text)
        else:
            import yaml

            data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except Exception:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("interactions"), list):
        return None
    from langchain_dbx_serving.testing.cassettes import _codec
    from langchain_dbx_serving.testing.cassettes._vcr_config import is_secret_header

    out = []
    for index, interaction in enumerate(data["interactions"], start=1):
        for side in ("request", "response"):
            part = (interaction or {}).get(side) or {}
            headers = part.get("headers") or {}
            for name, value in headers.items():
                values = [v for v in (value if isinstance(value, list) else [value]) if v]
                if (
                    values
                    and is_secret_header(str(name))
                    and str(name).lower() != "www-authenticate"
                ):
                    where = f"interaction {index} {side} header {name}"
                    out.append((f"credential header ({where})", _mask(str(values[0]))))
            body = part.get("body")
            raw = body.get("string") if isinstance(body, dict) else body
            if isinstance(raw, str):
                raw = raw.encode("utf-8", "surrogateescape")
            if not isinstance(raw, bytes) or not raw:
                continue
            encoding = next(
                (v for k, v in headers.items() if k.lower() == "content-encoding"), None
            )
            try:
                decoded = _codec.decode(raw, encoding).decode("utf-8", "replace")
            except Exception:
                out.append((f"undecodable body (interaction {index} {side})", f"{encoding}"))
                continue
            out += [(kind, preview) for _, kind, preview in scan_text(decoded)]
    return out


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
            seen = {(f.kind, f.preview) for f in findings if f.path == file}
            for kind, preview in _cassette_findings(file, text) or ():
                if (kind, preview) not in seen:  # the same secret, already found in the text
                    seen.add((kind, preview))
                    findings.append(Finding(file, 0, kind, preview))
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
