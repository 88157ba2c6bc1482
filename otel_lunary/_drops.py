"""Counting the spans otel-lunary loses, so losing them is never silent.

Losing spans is counted, never silent: ``dropped_spans()`` is the number of spans that
will never reach the exporter's destination: the processor queue was full
(``OTEL_BSP_MAX_QUEUE_SIZE``, default 2048: the oldest waiting span goes), an export
failed (after the OTLP exporter's own retries), a span ended after shutdown, or shutdown
gave up on spans still queued. ``drop_counts()`` splits it by reason. Drops are logged on
one WARNING line with the running count, at most once a minute.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from otel_lunary._export_settings import resolve_int

_logger = logging.getLogger("otel_lunary.export")

DROP_LOG_INTERVAL_S = 60.0

# --- the drop counter -------------------------------------------------------------------

_REASONS = ("queue_full", "export_failed", "after_shutdown", "shutdown_timeout")


class _DropCounter:
    """Process-wide count of lost spans, with one rate-limited log line."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(_REASONS, 0)
        self._last_log = float("-inf")

    def add(self, reason: str, count: int) -> None:
        if count <= 0:
            return
        with self._lock:
            self._counts[reason] = self._counts.get(reason, 0) + count
            now = time.monotonic()
            if now - self._last_log < DROP_LOG_INTERVAL_S:
                return
            self._last_log = now
            counts = dict(self._counts)
        _logger.warning(
            "otel-lunary dropped %d spans so far (queue full: %d, export failed: %d, after shutdown: %d, "
            "abandoned at shutdown: %d); is the collector reachable? next report in %ds at the earliest",
            sum(counts.values()),
            counts["queue_full"],
            counts["export_failed"],
            counts["after_shutdown"],
            counts["shutdown_timeout"],
            int(DROP_LOG_INTERVAL_S),
        )

    def total(self) -> int:
        with self._lock:
            return sum(self._counts.values())

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


counter = _DropCounter()


def dropped_spans() -> int:
    """How many spans this process lost since it started (all reasons, all providers)."""
    return counter.total()


def drop_counts() -> dict[str, int]:
    """``dropped_spans()`` by reason: queue_full, export_failed, after_shutdown, shutdown_timeout."""
    return counter.snapshot()


class _DropCountingMetrics:
    """Wraps the BatchProcessor's processor-metrics hook, the one place the SDK reports a
    dropped span (``drop_items(count, error_type)``), to count drops exactly."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def register_queue_size(self, get_queue_size: Callable[[], int]) -> None:
        self._inner.register_queue_size(get_queue_size)

    def drop_items(self, count: int, error_type: str = "queue_full") -> None:
        counter.add("after_shutdown" if error_type == "already_shutdown" else "queue_full", count)
        self._inner.drop_items(count, error_type)

    def finish_items(self, count: int) -> None:
        self._inner.finish_items(count)


class _QueueFullFilter(logging.Filter):
    """Drops the SDK's own per-span "Queue full, dropping Span." warning: our counter
    reports the same drops, with the count, on one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.msg == "Queue full, dropping %s." and record.args == ("Span",))


_queue_full_filter = _QueueFullFilter()


# --- processor and exporter wrappers ------------------------------------------------------


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
            counter.add("export_failed", len(spans))
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
        batch_processor = getattr(self, "_batch_processor", None)
        if batch_processor is not None and hasattr(batch_processor, "_metrics"):
            batch_processor._metrics = _DropCountingMetrics(batch_processor._metrics)
        else:  # pragma: no cover - a future SDK moved its internals
            _logger.debug("otel-lunary: cannot count queue overflow with this opentelemetry-sdk version")
        logging.getLogger("opentelemetry.sdk._shared_internal").addFilter(_queue_full_filter)

    def queued(self) -> int:
        queue = getattr(getattr(self, "_batch_processor", None), "_queue", None)
        return len(queue) if queue is not None else 0

    def shutdown(self) -> None:
        batch = getattr(self, "_batch_processor", None)
        if batch is None:  # pragma: no cover
            super().shutdown()
            return
        remaining = 30.0 if self.shutdown_deadline is None else self.shutdown_deadline - time.monotonic()
        batch.shutdown(timeout_millis=max(0.0, remaining) * 1000)
