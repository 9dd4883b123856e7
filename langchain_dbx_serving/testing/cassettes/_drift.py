"""The failure a user reads when a replayed request no longer matches its cassette.

vcrpy raises ``CannotOverwriteExistingCassetteException`` from inside httpx, so pytest's report
opens with some 25 library frames and buries the one thing that matters, how the request changed,
in the exception's last lines. :func:`drift_report` puts first what changed (the body diff from
our ``match_json_body`` matcher, or whichever matchers failed), then how to re-record that test,
then the line of the test that sent the request. Nothing here imports vcr.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

VCR_ERROR = "CannotOverwriteExistingCassetteException"


def cassette_error(exc: BaseException | None) -> BaseException | None:
    """vcrpy's "cannot overwrite" error in ``exc``'s chain (it may be wrapped), else ``None``."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if type(exc).__name__ == VCR_ERROR and type(exc).__module__.startswith("vcr"):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def _what_changed(error: Any) -> list[str]:
    """The failed matchers of the closest recorded request(s), body diff included."""
    try:
        matches = error.cassette.find_requests_with_most_matches(error.failed_request)
    except Exception:  # a foreign cassette object: fall back to vcrpy's own message
        matches = []
    if not matches:
        return [str(error)]
    _, _, failed = matches[0]
    if not failed:
        return [
            "the cassette holds this request, but its recorded answers were all played already "
            "(the test now makes more calls than when it was recorded)"
        ]
    lines: list[str] = []
    if len(matches) > 1:
        lines.append(f"({len(matches)} recorded requests are equally close; the first is shown)")
    for matcher, message in failed:
        text = str(message).strip()
        lines.append(text if matcher == "body" or "\n" in text else f"{matcher} differs: {text}")
    return lines


def drift_report(error: Any, nodeid: str, test_line: str | None) -> str:
    """The text of the failure: what changed, how to re-record, where the test sent it."""
    request = error.failed_request
    path = getattr(error.cassette, "_path", None)
    lines = [
        f"{VCR_ERROR}: this test sent a request its cassette does not hold; on replay nothing "
        "is sent, so the test failed here.",
        f"  request:  {request.method} {urlsplit(request.uri).path}",
        f"  cassette: {path}",
        "",
        *_what_changed(error),
        "",
        "If the change is intended, re-record this test's cassette (with DATABRICKS_HOST and "
        "DATABRICKS_TOKEN set, or through python -m langchain_dbx_serving.testing.record):",
        f"    pytest '{nodeid}' --record-mode=rewrite",
    ]
    if test_line:
        lines += ["", f"sent from {test_line}"]
    return "\n".join(lines)
