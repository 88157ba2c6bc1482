"""Counters and rate-limited warnings for what tracking calls drop or alter.

A tracking call never raises into the application, so problems must be visible some
other way: each is counted (read with ``otel_lunary.stats()``) and logged, at most once
per kind every few seconds so a hot loop of bad calls cannot flood the log.
"""

from __future__ import annotations

import logging
import threading
import time

logger = logging.getLogger("otel_lunary")

LOG_INTERVAL_S = 10.0

_lock = threading.Lock()
_counts: dict[str, int] = {}
_last_logged: dict[tuple[str, str], float] = {}


def report(kind: str, message: str, *args: object, exc_info: bool = False, n: int = 1) -> None:
    """Count ``n`` occurrences of ``kind``; log it unless the same message was logged very recently."""
    now = time.monotonic()
    with _lock:
        count = _counts.get(kind, 0) + n
        _counts[kind] = count
        last = _last_logged.get((kind, message))
        should_log = last is None or now - last >= LOG_INTERVAL_S
        if should_log:
            _last_logged[(kind, message)] = now
    if should_log:
        logger.warning(message + " (%s so far: %d)", *args, kind, count, exc_info=exc_info)


def count(kind: str) -> None:
    """Count without logging: for expected, user-visible alterations such as truncation."""
    with _lock:
        _counts[kind] = _counts.get(kind, 0) + 1


def counts() -> dict[str, int]:
    with _lock:
        return dict(_counts)


def reset() -> None:
    """Forget all counts; for tests and long-running processes that poll deltas."""
    with _lock:
        _counts.clear()
        _last_logged.clear()
