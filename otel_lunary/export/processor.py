"""The batch processor of the providers otel-lunary builds: lost spans counted, shutdown bounded.

Losing spans is counted, never silent: ``dropped_spans()`` is the number of spans that
will never reach the exporter's destination: the processor queue was full
(``OTEL_BSP_MAX_QUEUE_SIZE``, default 2048: the oldest waiting span goes), an export
failed (after the OTLP exporter's own retries), a span ended after shutdown, or shutdown
gave up on spans still queued. ``drop_counts()`` splits it by reason. Drops are logged on
one WARNING line with the running count, at most once a minute (``otel_lunary._health``).

``flush(provider, t)`` and ``shutdown(provider, t)`` return within ``t`` seconds whatever
the collector does (down, or accepting connections and never answering): the SDK's
blocking calls run in a daemon thread that is abandoned at the deadline, and on a
shutdown deadline the exporters are shut down to cut their retry loops. A provider built
by ``otel_lunary.export`` does not install the SDK's own exit hook (which can block ~30 s);
the one here runs ``shutdown(provider, OTEL_LUNARY_EXIT_TIMEOUT)`` (default 2 s) instead.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from otel_lunary import _health
from otel_lunary._adoption import slim
from otel_lunary._settings import resolve_int
from otel_lunary.export.light_spans import LightSpan

_logger = logging.getLogger("otel_lunary.export")


def dropped_spans() -> int:
    """How many spans this process lost since it started (all reasons, all providers)."""
    return _health.drops.total()


def drop_counts() -> dict[str, int]:
    """``dropped_spans()`` by reason: queue_full, export_failed, after_shutdown, shutdown_timeout."""
    return _health.drops.snapshot()


class _DropCountingMetrics:
    """Wraps the BatchProcessor's processor-metrics hook (opentelemetry-sdk >= 1.41), the
    one place the SDK reports a span dropped from a full queue (``drop_items``), to count
    drops exactly; everything else goes to the SDK's own hook unchanged."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def drop_items(self, count: int, *reason: Any) -> None:
        # 1.45 added a reason argument; spans ended after shutdown never get here (on_end).
        _health.count_drops("after_shutdown" if reason[:1] == ("already_shutdown",) else "queue_full", count)
        self._inner.drop_items(count, *reason)


class _QueueFullFilter(logging.Filter):
    """Drops the SDK's own per-span "Queue full, dropping Span." warning: our counter
    reports the same drops, with the count, on one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.msg == "Queue full, dropping %s." and record.args == ("Span",))


_queue_full_filter = _QueueFullFilter()




class _CountingExporter(SpanExporter):
    """Counts the spans of failed exports; otherwise the wrapped exporter, unchanged."""

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner
        self._shut = False
        self._lock = threading.Lock()
        self._in_flight = 0
        self._abandoned = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with self._lock:
            self._in_flight = len(spans)
        try:
            result = self.inner.export(spans)
        except Exception:  # noqa: BLE001 - an exporter must not raise into the processor
            _logger.warning("otel-lunary: %s raised while exporting", type(self.inner).__name__, exc_info=True)
            result = SpanExportResult.FAILURE
        with self._lock:
            self._in_flight = 0
            counted = self._abandoned  # abandon() already counted this batch
            self._abandoned = False
        if result is not SpanExportResult.SUCCESS and not counted:
            _health.count_drops("export_failed", len(spans))
        return result

    def abandon(self) -> int:
        """The size of the batch being exported now, which a shutdown deadline gives up on."""
        with self._lock:
            if self._abandoned:
                return 0
            self._abandoned = self._in_flight > 0
            return self._in_flight

    def shutdown(self, timeout_millis: float = 30000) -> None:
        if self._shut:
            return
        self._shut = True
        try:
            try:
                self.inner.shutdown(timeout_millis=timeout_millis)  # type: ignore[call-arg]
            except TypeError:
                self.inner.shutdown()
        except Exception:  # noqa: BLE001
            _logger.debug("otel-lunary: exporter shutdown failed", exc_info=True)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


class LunaryBatchSpanProcessor(BatchSpanProcessor):
    """The SDK's BatchSpanProcessor, with exact drop counting and a shutdown deadline."""

    light_spans: ClassVar[str] = "end"  # reads ended spans as ReadableSpans only (export.light_spans)

    def __init__(self, exporter: SpanExporter) -> None:
        self.counting_exporter = _CountingExporter(exporter)
        try:
            super().__init__(self.counting_exporter)
        except ValueError as error:
            # OTEL_BSP_* values that are numbers but inconsistent (a batch bigger than the
            # queue...): the SDK raises; the environment must not break the app.
            queue = resolve_int(None, "OTEL_BSP_MAX_QUEUE_SIZE", 2048, 1, "max_queue_size")
            batch = min(queue, resolve_int(None, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512, 1, "max_export_batch_size"))
            delay = resolve_int(None, "OTEL_BSP_SCHEDULE_DELAY", 5000, 1, "schedule_delay_millis")
            _logger.warning(
                "Adjusting OTEL_BSP_* settings the SDK rejects (%s): queue %d, batch %d, delay %d ms", error, queue, batch, delay
            )
            super().__init__(self.counting_exporter, max_queue_size=queue, schedule_delay_millis=delay, max_export_batch_size=batch)
        self.shutdown_deadline: float | None = None
        self._stopped = False
        batch_processor = getattr(self, "_batch_processor", None)
        # The queue's own entry point, what BatchSpanProcessor.on_end calls for a sampled span.
        self._emit: Callable[[ReadableSpan], None] | None = getattr(batch_processor, "emit", None)
        if batch_processor is not None and hasattr(batch_processor, "_metrics"):
            batch_processor._metrics = _DropCountingMetrics(batch_processor._metrics)
        else:  # pragma: no cover - a future SDK moved its internals
            _logger.debug("otel-lunary: cannot count queue overflow with this opentelemetry-sdk version")
        logging.getLogger("opentelemetry.sdk._shared_internal").addFilter(_queue_full_filter)

    def queued(self) -> int:
        queue = getattr(getattr(self, "_batch_processor", None), "_queue", None)
        return len(queue) if queue is not None else 0

    def on_end(self, span: ReadableSpan) -> None:
        if self._stopped:  # the SDK drops it silently before 1.45: count it here, for every version
            _health.count_drops("after_shutdown", 1)
            return
        if type(span) is LightSpan and self._emit is not None:
            self._emit(span)  # sampled by construction, nothing to slim: straight into the queue
            return
        slim(span)
        super().on_end(span)

    def shutdown(self) -> None:
        self._stopped = True
        batch = getattr(self, "_batch_processor", None)
        if batch is None:  # pragma: no cover
            super().shutdown()
            return
        remaining = 30.0 if self.shutdown_deadline is None else self.shutdown_deadline - time.monotonic()
        batch.shutdown(timeout_millis=max(0.0, remaining) * 1000)


# --- bounded flush and shutdown of the providers built here, and the exit hook ---------------

_processors: weakref.WeakKeyDictionary[TracerProvider, list[LunaryBatchSpanProcessor]] = weakref.WeakKeyDictionary()
_exit_timeouts: weakref.WeakKeyDictionary[TracerProvider, float] = weakref.WeakKeyDictionary()
_shut_down: weakref.WeakSet[TracerProvider] = weakref.WeakSet()
_flush_jobs: weakref.WeakKeyDictionary[TracerProvider, _Job] = weakref.WeakKeyDictionary()
_registry_lock = threading.Lock()


# The longest flush or shutdown, what a timeout of inf waits: a real flush is done long
# before, and a collector that never answers must not hold the caller (or exit) forever.
MAX_TIMEOUT_S = 300.0
DEFAULT_EXIT_TIMEOUT_S = 2.0


def _bounded(timeout_s: float) -> float:
    """``timeout_s`` within [0, ``MAX_TIMEOUT_S``] (NaN: 0), so waiting on it cannot raise."""
    return min(max(timeout_s, 0.0), MAX_TIMEOUT_S) if timeout_s == timeout_s else 0.0


def register(provider: TracerProvider, processors: list[LunaryBatchSpanProcessor], exit_timeout_s: float) -> None:
    """Track ``provider`` for ``flush``/``shutdown`` and shut it down within ``exit_timeout_s`` at exit."""
    if not 0 <= exit_timeout_s <= MAX_TIMEOUT_S:  # OTEL_LUNARY_EXIT_TIMEOUT=inf: exit must still end
        _logger.warning(
            "otel_lunary: ignoring OTEL_LUNARY_EXIT_TIMEOUT / exit_timeout_s=%r: must be 0-%s seconds; using %s",
            exit_timeout_s,
            MAX_TIMEOUT_S,
            DEFAULT_EXIT_TIMEOUT_S,
        )
        exit_timeout_s = DEFAULT_EXIT_TIMEOUT_S
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
    """Export what is queued, waiting at most ``timeout_s`` (clamped to 0-300); True if all of it was exported."""
    deadline = time.monotonic() + _bounded(timeout_s)
    failed_before = _health.drops.snapshot()["export_failed"]
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
    return bool(job.result) and _health.drops.snapshot()["export_failed"] == failed_before


def shutdown(provider: TracerProvider, timeout_s: float) -> None:
    """Export what is queued and stop, returning within ``timeout_s`` (clamped to 0-300)
    whatever the backend does.

    Calling it twice is harmless. Spans still queued at the deadline are counted in
    ``dropped_spans()``.
    """
    with _registry_lock:
        if provider in _shut_down:
            return
        _shut_down.add(provider)
        processors = _processors.get(provider, [])
    deadline = time.monotonic() + _bounded(timeout_s)
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
    _health.count_drops("shutdown_timeout", left)
    if not finished or left:
        _logger.warning("otel-lunary: shutdown stopped at its %.1fs deadline; %d unsent spans dropped", timeout_s, left)


def _shutdown_at_exit() -> None:
    with _registry_lock:
        pending = [(p, t) for p, t in _exit_timeouts.items() if p not in _shut_down]
    for provider, timeout in pending:
        shutdown(provider, timeout)


atexit.register(_shutdown_at_exit)
