"""What tracking calls and the export path lose or alter: counted, logged sparingly, never raised.

A tracking call never raises into the application and export never blocks it, so their
problems must be visible some other way: each is counted (``otel_lunary.stats()``,
``otel_lunary.export.drop_counts()``) and logged at most once per kind in an interval, so
a hot loop of bad calls or a collector that is down cannot flood the log. ``never_raises``
is the one boundary every public tracking call runs behind.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar

logger = logging.getLogger("otel_lunary")

F = TypeVar("F", bound=Callable[..., Any])


class RateLimitedCounter:
    """Counts by kind; ``add`` says whether a log line about ``key`` is due (once per interval)."""

    def __init__(self, interval_s: float, kinds: tuple[str, ...] = ()) -> None:
        self.interval_s = interval_s
        self._kinds = kinds
        self._lock = threading.Lock()
        self._counts: dict[str, int] = dict.fromkeys(kinds, 0)
        self._last_logged: dict[object, float] = {}

    def add(self, kind: str, count: int = 1, log_key: object = None) -> tuple[int, dict[str, int] | None]:
        """Count ``count`` of ``kind``; returns the new count of ``kind`` and, when a log line
        about ``log_key`` is due, a snapshot of every count (None otherwise, or without a key)."""
        with self._lock:
            total = self._counts[kind] = self._counts.get(kind, 0) + count
            if log_key is None:
                return total, None
            now = time.monotonic()
            last = self._last_logged.get(log_key)
            if last is not None and now - last < self.interval_s:
                return total, None
            self._last_logged[log_key] = now
            return total, dict(self._counts)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def total(self) -> int:
        with self._lock:
            return sum(self._counts.values())

    def reset(self) -> None:
        with self._lock:
            self._counts = dict.fromkeys(self._kinds, 0)
            self._last_logged.clear()


# Tracking calls: a warning per kind and message every 10 s.
tracking = RateLimitedCounter(10.0)
# Export: spans lost for good, by reason; one summary line a minute.
DROP_REASONS = ("queue_full", "export_failed", "after_shutdown", "shutdown_timeout")
drops = RateLimitedCounter(60.0, DROP_REASONS)
_drop_logger = logging.getLogger("otel_lunary.export")


def report(kind: str, message: str, *args: object, exc_info: Any = False, key: object = None, n: int = 1) -> None:
    """Count ``n`` occurrences of ``kind``; log it unless the same message (or ``key``) was
    logged very recently."""
    count, due = tracking.add(kind, n, (kind, message if key is None else key))
    if due is not None:
        logger.warning(message + " (%s so far: %d)", *args, kind, count, exc_info=exc_info)


def count(kind: str) -> None:
    """Count without logging: for expected, user-visible alterations such as truncation."""
    tracking.add(kind)


def counts() -> dict[str, int]:
    return tracking.snapshot()


def count_drops(reason: str, spans: int) -> None:
    """Count ``spans`` lost for ``reason`` (one of ``DROP_REASONS``), with the summary line when due."""
    if spans <= 0:
        return
    _, due = drops.add(reason, spans, "drops")
    if due is not None:
        _drop_logger.warning(
            "otel-lunary dropped %d spans so far (queue full: %d, export failed: %d, after shutdown: %d, "
            "abandoned at shutdown: %d); is the collector reachable? next report in %ds at the earliest",
            sum(due.values()),
            due["queue_full"],
            due["export_failed"],
            due["after_shutdown"],
            due["shutdown_timeout"],
            int(drops.interval_s),
        )


def reset() -> None:
    """Forget all counts; for tests and long-running processes that poll deltas."""
    tracking.reset()
    drops.reset()


class never_raises:  # noqa: N801 - reads as the policy it enforces
    """The boundary of every tracking call: an ``Exception`` inside is counted under ``kind``,
    logged (rate-limited, ``what`` says what was skipped) and swallowed; the application's
    exceptions that are not an ``Exception`` (``KeyboardInterrupt``, a cancelled task) pass.

    As a context manager, the block is left at the failure; as a decorator, the call
    returns ``default`` (None unless given). One instance may be reused: it holds no state.
    """

    __slots__ = ("what", "kind", "default")

    def __init__(self, what: str, kind: str = "internal_errors", default: Any = None) -> None:
        self.what = what
        self.kind = kind
        self.default = default

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> bool:
        if exc_type is None or not issubclass(exc_type, Exception):
            return False
        self._report((exc_type, exc, tb))
        return True

    def __call__(self, func: F) -> F:
        # The same boundary as ``with self:``, written as try/except: the wrapper is on the
        # hot path (track_message), where the context manager's two calls show.
        default, report_failure = self.default, self._report

        @functools.wraps(func)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            try:
                return func(*args, **kwargs)
            except Exception:  # noqa: BLE001 - the whole point of this boundary
                report_failure(True)
                return default

        return guarded  # type: ignore[return-value]

    def _report(self, exc_info: Any) -> None:
        report(self.kind, "otel_lunary: %s", self.what, exc_info=exc_info, key=self.what)
