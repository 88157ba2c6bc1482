"""Bounded flush and shutdown of the providers ``build_tracer_provider`` makes, and the exit hook.

``flush(provider, t)`` and ``shutdown(provider, t)`` return within ``t`` seconds whatever
the collector does (down, or accepting connections and never answering): the SDK's
blocking calls run in a daemon thread that is abandoned at the deadline, and on a
shutdown deadline the exporters are shut down to cut their retry loops. A provider
built by ``otel_lunary.export`` does not install the SDK's own exit hook (which can block
~30 s); the one here runs ``shutdown(provider, OTEL_LUNARY_EXIT_TIMEOUT)`` (default 2 s)
instead.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from opentelemetry.sdk.trace import TracerProvider

from otel_lunary import _drops

_logger = logging.getLogger("otel_lunary.export")

_processors: weakref.WeakKeyDictionary[TracerProvider, list[_drops.LunaryBatchSpanProcessor]] = weakref.WeakKeyDictionary()
_exit_timeouts: weakref.WeakKeyDictionary[TracerProvider, float] = weakref.WeakKeyDictionary()
_shut_down: weakref.WeakSet[TracerProvider] = weakref.WeakSet()
_flush_jobs: weakref.WeakKeyDictionary[TracerProvider, _Job] = weakref.WeakKeyDictionary()
_registry_lock = threading.Lock()


def register(provider: TracerProvider, processors: list[_drops.LunaryBatchSpanProcessor], exit_timeout_s: float) -> None:
    """Track ``provider`` for ``flush``/``shutdown`` and shut it down within ``exit_timeout_s`` at exit."""
    with _registry_lock:
        _processors[provider] = processors
        _exit_timeouts[provider] = exit_timeout_s


class _Job:
    """A call run in a daemon thread, so a caller can stop waiting at a deadline."""

    def __init__(self, fn: Callable[[], Any], name: str) -> None:
        self.result: Any = None
        self.done = threading.Event()
        self._fn = fn
        threading.Thread(target=self._run, name=name, daemon=True).start()

    def _run(self) -> None:
        try:
            self.result = self._fn()
        except Exception:  # noqa: BLE001
            _logger.warning("otel-lunary: %s failed", threading.current_thread().name, exc_info=True)
        finally:
            self.done.set()


def flush(provider: TracerProvider, timeout_s: float) -> bool:
    """Export what is queued, waiting at most ``timeout_s``; True if all of it was exported."""
    deadline = time.monotonic() + max(0.0, timeout_s)
    failed_before = _drops.counter.snapshot()["export_failed"]
    with _registry_lock:
        if provider in _shut_down:
            return False
        job = _flush_jobs.get(provider)
        if job is not None and job.done.is_set():
            job = None
    if job is not None:  # a flush still stuck from an earlier call: wait for it first
        if not job.done.wait(max(0.0, deadline - time.monotonic())):
            return False
    millis = int(max(0.0, deadline - time.monotonic()) * 1000)
    job = _Job(lambda: provider.force_flush(millis), "otel-lunary-flush")
    with _registry_lock:
        _flush_jobs[provider] = job
    if not job.done.wait(max(0.0, deadline - time.monotonic())):
        return False
    return bool(job.result) and _drops.counter.snapshot()["export_failed"] == failed_before


def shutdown(provider: TracerProvider, timeout_s: float) -> None:
    """Export what is queued and stop, returning within ``timeout_s`` whatever the backend does.

    Calling it twice is harmless. Spans still queued at the deadline are counted in
    ``dropped_spans()``.
    """
    with _registry_lock:
        if provider in _shut_down:
            return
        _shut_down.add(provider)
        processors = _processors.get(provider, [])
    deadline = time.monotonic() + max(0.0, timeout_s)
    for processor in processors:
        processor.shutdown_deadline = deadline
    job = _Job(provider.shutdown, "otel-lunary-shutdown")
    finished = job.done.wait(max(0.0, deadline - time.monotonic()))
    left = 0
    for processor in processors:
        in_flight = processor.counting_exporter.abandon()  # an export still running is given up
        if in_flight or not finished:
            processor.counting_exporter.shutdown(timeout_millis=0)  # cut the exporter's retry loop
        left += in_flight + processor.queued()
    _drops.counter.add("shutdown_timeout", left)
    if not finished or left:
        _logger.warning("otel-lunary: shutdown stopped at its %.1fs deadline; %d unsent spans dropped", timeout_s, left)


def _shutdown_at_exit() -> None:
    with _registry_lock:
        pending = [(p, t) for p, t in _exit_timeouts.items() if p not in _shut_down]
    for provider, timeout in pending:
        shutdown(provider, timeout)


atexit.register(_shutdown_at_exit)
