"""Module sizes the architecture promises (docs/architecture.md, issue #15): no module of the
package past 600 lines, and the responses stream decoder, the event dispatch over its ledger
and reply metadata, under 350."""

from __future__ import annotations

from pathlib import Path

import langchain_dbx_serving

ROOT = Path(langchain_dbx_serving.__file__).parent
LIMIT = 600
DECODER_LIMIT = 350


def _lines(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())


def test_no_module_is_over_600_lines() -> None:
    sizes = {str(p.relative_to(ROOT)): _lines(p) for p in ROOT.rglob("*.py")}
    assert len(sizes) > 50  # the check sees the package
    too_long = {name: n for name, n in sizes.items() if n > LIMIT}
    assert too_long == {}, f"split these modules (one job each, <= {LIMIT} lines): {too_long}"


def test_the_responses_stream_decoder_stays_a_dispatch() -> None:
    lines = _lines(ROOT / "protocols" / "_responses_stream.py")
    assert lines < DECODER_LIMIT, (
        f"_responses_stream.py has {lines} lines: per-item state belongs in _responses_ledger, "
        "reply metadata in _responses_reply, chunk shapes in _responses_chunks"
    )
