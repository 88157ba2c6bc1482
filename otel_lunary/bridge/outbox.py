"""What a 200 promises: an acknowledged event's spans are on disk, and leave from there.

The bridge records spans through a TracerProvider per project whose only processor is
``OutboxWriter``: each ended span is encoded and spooled into the state store's
``outbox`` table, in the same SQLite transaction as the state it goes with (run ids,
turns). The answer goes out after that transaction commits. ``Delivery``, a thread, reads
the outbox in order, rebuilds the spans and hands them to the exporters; a row is
deleted only once every exporter reported success. So:

- a request whose transaction rolls back (disk full, lock timeout) emitted nothing, and
  the client's retry records it once;
- a bridge killed after the answer exports the spans when it starts again on the same
  file, and a resend of the batch is a duplicate that costs nothing;
- delivery is at least once: a crash between an export and the delete sends those spans
  again (same trace and span ids).

A span that no exporter accepts on its own while others go through (one that a
collector's encoder refuses) is dropped and counted, so it cannot hold the queue. When
several processes share one state file, one of them delivers at a time (an ``flock``).
"""

from __future__ import annotations

import fcntl
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any, ClassVar, cast

from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Span, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from otel_lunary.bridge.store import StateStore, connect

logger = logging.getLogger("otel_lunary.bridge")

BATCH = 512
IDLE_POLL_S = 1.0
MAX_BACKOFF_S = 30.0
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_MAX_TIME_NS = 2**63 - 1


# --- encoding ---------------------------------------------------------------------------


def _representable(value: Any) -> Any:
    """An attribute value OTLP can carry: an integer past 64 bits becomes a float."""
    if isinstance(value, int) and not isinstance(value, bool) and not _INT64_MIN <= value <= _INT64_MAX:
        return float(value)
    if isinstance(value, (tuple, list)):
        return [_representable(item) for item in value]
    return value


def _attributes(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    return {key: _representable(value) for key, value in (attributes or {}).items()}


def _time(nanoseconds: int | None) -> int:
    return min(max(nanoseconds or 0, 0), _MAX_TIME_NS)


def encode_span(span: ReadableSpan) -> str:
    """The span as one JSON text; anything OTLP could not encode is made representable
    (the wire checks refuse such input first; this is the last line, so one span can
    never fail the export of a batch)."""
    context, parent = cast(SpanContext, span.context), span.parent  # an ended SDK span always has one
    record = [
        span.name,
        f"{context.trace_id:032x}",
        f"{context.span_id:016x}",
        int(context.trace_flags),
        None if parent is None else [f"{parent.span_id:016x}", int(parent.trace_flags), parent.is_remote],
        span.kind.value,
        _time(span.start_time),
        _time(span.end_time),
        _attributes(span.attributes),
        [[event.name, _time(event.timestamp), _attributes(event.attributes)] for event in span.events],
        [span.status.status_code.value, span.status.description],
    ]
    return json.dumps(record, separators=(",", ":"))


def decode_span(text: str, resource: Resource, scope: InstrumentationScope) -> ReadableSpan:
    name, trace_id, span_id, flags, parent, kind, start, end, attributes, events, status = json.loads(text)
    trace = int(trace_id, 16)
    return ReadableSpan(
        name=name,
        context=SpanContext(trace, int(span_id, 16), is_remote=False, trace_flags=TraceFlags(flags)),
        parent=None if parent is None else SpanContext(trace, int(parent[0], 16), is_remote=bool(parent[2]), trace_flags=TraceFlags(parent[1])),
        resource=resource,
        attributes=attributes,
        events=[Event(event_name, event_attributes, timestamp) for event_name, timestamp, event_attributes in events],
        kind=SpanKind(kind),
        status=Status(StatusCode(status[0]), status[1]),
        start_time=start,
        end_time=end,
        instrumentation_scope=scope,
    )


class OutboxWriter(SpanProcessor):
    """Spools every ended span of one project into the store's transaction under way."""

    light_spans: ClassVar[str] = "end"  # reads ended spans as ReadableSpans only (export.light_spans)

    def __init__(self, store: StateStore, project: str) -> None:
        self.store = store
        self.project = project

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        return None

    def on_end(self, span: ReadableSpan) -> None:
        self.store.spool(self.project, encode_span(span))

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


# --- delivery ---------------------------------------------------------------------------


class Delivery(threading.Thread):
    """Exports the outbox in order and deletes what every exporter accepted."""

    def __init__(
        self,
        path: str,
        exporters: Sequence[SpanExporter],
        resource_of: Callable[[str], Resource],
        scope: InstrumentationScope,
        *,
        busy_timeout_s: float,
    ) -> None:
        super().__init__(name="otel-lunary-bridge-delivery", daemon=True)
        self.exporters = list(exporters)
        self.resource_of = resource_of
        self.scope = scope
        self._db = connect(path, busy_timeout_s)
        self._db_lock = threading.Lock()
        self._lock_path = path + "-delivery.lock"
        self._lock_file: IO[bytes] | None = None
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._drain_deadline = math.inf
        self._resources: dict[str, Resource] = {}
        self.counts = {"exported": 0, "undeliverable": 0, "export_failures": 0}
        self.last_error: str | None = None

    def wake(self) -> None:
        self._wake.set()

    def backlog(self) -> int:
        """Spans waiting in the outbox (all processes sharing the file)."""
        with self._db_lock:
            low, high = self._db.execute("SELECT MIN(seq), MAX(seq) FROM outbox").fetchone()
        return 0 if low is None else high - low + 1

    def stop(self, drain_s: float) -> None:
        """Deliver what is pending for up to ``drain_s`` seconds, then stop; what is left stays on disk."""
        self._drain_deadline = time.monotonic() + drain_s
        self._stopping.set()
        self._wake.set()
        if self.is_alive():
            self.join(drain_s + 5.0)
        with self._db_lock:
            self._db.close()
        if self._lock_file is not None:
            self._lock_file.close()  # releases the flock
            self._lock_file = None
        for exporter in self.exporters:
            try:
                exporter.shutdown()
            except Exception:  # noqa: BLE001 - shutting down must finish
                logger.debug("otel-lunary bridge: exporter shutdown failed", exc_info=True)

    # --- the loop ------------------------------------------------------------------------
    def run(self) -> None:
        backoff = 0.0
        while True:
            stopping = self._stopping.is_set()
            if stopping and time.monotonic() >= self._drain_deadline:
                return
            self._wake.clear()
            try:
                outcome = self._round()
            except Exception as problem:  # noqa: BLE001 - the thread must outlive a bad moment of the file
                logger.warning("otel-lunary bridge: outbox delivery failed: %s", problem)
                self.last_error = str(problem)
                outcome = False
            if outcome is None:  # nothing pending (or another process delivers)
                if stopping:
                    return
                backoff = 0.0
                self._wake.wait(IDLE_POLL_S)
            elif outcome:
                backoff = 0.0
            else:
                backoff = min(MAX_BACKOFF_S, max(0.2, backoff * 2))
                if stopping:
                    time.sleep(max(0.0, min(backoff, self._drain_deadline - time.monotonic())))
                else:
                    self._stopping.wait(backoff)

    def _round(self) -> bool | None:
        """None: nothing to do; True: delivered something; False: could not, back off."""
        with self._db_lock:
            rows = self._db.execute("SELECT seq, project, span FROM outbox ORDER BY seq LIMIT ?", (BATCH,)).fetchall()
        if not rows or not self._lease():
            return None
        spans: list[tuple[int, ReadableSpan]] = []
        unreadable: list[int] = []
        for seq, project, text in rows:
            try:
                spans.append((seq, decode_span(text, self._resource(project), self.scope)))
            except (ValueError, TypeError, KeyError, IndexError):
                unreadable.append(seq)
        if unreadable:
            logger.warning("otel-lunary bridge: %d unreadable outbox rows dropped", len(unreadable))
            self.counts["undeliverable"] += len(unreadable)
            self._forget(unreadable)
        if not spans:
            return True
        if self._export([span for _, span in spans]):
            self._forget([seq for seq, _ in spans])
            self.counts["exported"] += len(spans)
            self.last_error = None
            return True
        return self._isolate(spans)

    def _isolate(self, spans: list[tuple[int, ReadableSpan]]) -> bool:
        """The batch failed. If spans go through one by one, the exporters are fine and the
        ones refused alone are dropped; if the first two both fail, the destination is down."""
        delivered: list[int] = []
        refused: list[int] = []
        for seq, span in spans:
            if self._export([span]):
                delivered.append(seq)
            else:
                refused.append(seq)
                if not delivered and len(refused) >= 2:
                    break
        if delivered:
            self._forget(delivered + refused)
            self.counts["exported"] += len(delivered)
            if refused:
                self.counts["undeliverable"] += len(refused)
                logger.warning("otel-lunary bridge: %d spans refused by the exporter on their own were dropped", len(refused))
            return True
        self.counts["export_failures"] += 1
        self.last_error = "export failed; spans kept in the outbox"
        return False

    def _export(self, spans: list[ReadableSpan]) -> bool:
        ok = True
        for exporter in self.exporters:
            try:
                ok = exporter.export(spans) is SpanExportResult.SUCCESS and ok
            except Exception:  # noqa: BLE001 - an exporter must not stop delivery
                logger.warning("otel-lunary bridge: %s raised while exporting", type(exporter).__name__, exc_info=True)
                ok = False
        return ok

    def _resource(self, project: str) -> Resource:
        found = self._resources.get(project)
        if found is None:
            found = self._resources[project] = self.resource_of(project)
        return found

    def _forget(self, seqs: list[int]) -> None:
        marks = ",".join("?" * len(seqs))
        with self._db_lock:
            self._db.execute(f"DELETE FROM outbox WHERE seq IN ({marks})", seqs)  # noqa: S608 - only placeholders

    def _lease(self) -> bool:
        """Hold the delivery lock, so one process of several sharing the file delivers.

        An ``flock`` on a file beside the state: the kernel releases it when its holder dies,
        even by ``kill -9``, so a restarted bridge delivers at once. (SQLite files must be on
        a local disk anyway, where flock works.)"""
        if self._lock_file is not None:
            return True
        handle = open(self._lock_path, "a+b")  # noqa: SIM115 - kept open while the lock is held
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        self._lock_file = handle
        return True
