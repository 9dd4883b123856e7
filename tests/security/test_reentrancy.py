"""Redaction never deadlocks: it runs in logging filters, which GC finalizers can reach."""

from __future__ import annotations

import threading

from langchain_dbx_serving import _redact


def test_redact_works_while_its_own_thread_holds_the_secrets_lock() -> None:
    # What CI hit: inside remember(), a garbage collection ran weakref.finalize(client.close);
    # httpcore logged the close at DEBUG; the RedactingFilter called redact(), which waited
    # for the lock its own thread held, forever.
    secret = "reentrant-secret-0123456789"
    _redact.remember(secret)
    seen: list[str] = []

    def inside_remember() -> None:
        with _redact._lock:
            seen.append(_redact.redact(f"token {secret} and Bearer abcdefgh12345678"))

    worker = threading.Thread(target=inside_remember, daemon=True)
    worker.start()
    worker.join(timeout=30)

    assert not worker.is_alive(), "redact() blocked on the lock its own thread holds"
    assert seen == ["token *** and Bearer ***"]
