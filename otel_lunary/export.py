"""Where spans go when otel-lunary sets up the TracerProvider itself.

``configure()`` calls ``build_tracer_provider(ExportOptions(...))`` when the application
has no SDK TracerProvider of its own; ``otel_lunary.flush()``/``shutdown()`` call
``flush``/``shutdown`` here. Every setting resolves explicit argument > environment >
default; an invalid explicit option raises ``ValueError``, an invalid environment value
logs a warning and falls back to the default.

Choosing the exporter(s) (the first rule that applies wins):

1. ``ExportOptions.exporter``: ``"otlp"``, ``"file"``, ``"console"``, ``"none"``, or
   several (a comma-separated string or a sequence);
2. an explicit ``endpoint`` or ``protocol``: ``otlp``;
3. ``OTEL_LUNARY_EXPORTER`` (same names);
4. ``OTEL_TRACES_EXPORTER`` (``otlp``, ``console``, ``none``; an unknown value falls back
   to ``otlp``, never to the file);
5. ``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``,
   ``OTEL_EXPORTER_OTLP_PROTOCOL`` or ``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`` set: ``otlp``;
6. otherwise the embedded default, ``file`` (``otel_lunary.file_exporter``).

OTLP uses the SDK's own exporters (gRPC or HTTP/protobuf) behind the SDK's
``BatchSpanProcessor``; they read ``OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT``, ``_HEADERS``,
``_COMPRESSION``, ``_TIMEOUT`` (seconds, as the Python SDK reads it), ``_CERTIFICATE``...
themselves; the processor reads ``OTEL_BSP_SCHEDULE_DELAY``, ``OTEL_BSP_MAX_QUEUE_SIZE``,
``OTEL_BSP_MAX_EXPORT_BATCH_SIZE``, ``OTEL_BSP_EXPORT_TIMEOUT``; the resource reads
``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES``. This module only resolves what the
SDK does not (the protocol, the exporter choice) and replaces env values the SDK would
choke on. ``OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL``: ``http/protobuf`` (default, as the
spec says) or ``grpc``. An explicit HTTP ``endpoint`` is a base URL like
``OTEL_EXPORTER_OTLP_ENDPOINT`` (``/v1/traces`` is appended unless the path already ends
with it); a gRPC endpoint is used as given.

Losing spans is counted, never silent: ``dropped_spans()`` is the number of spans that
will never reach the exporter's destination: the processor queue was full
(``OTEL_BSP_MAX_QUEUE_SIZE``, default 2048: the oldest waiting span goes), an export
failed (after the OTLP exporter's own retries), a span ended after shutdown, or shutdown
gave up on spans still queued. ``drop_counts()`` splits it by reason. Drops are logged on
one WARNING line with the running count, at most once a minute.

``flush(provider, t)`` and ``shutdown(provider, t)`` return within ``t`` seconds whatever
the collector does (down, or accepting connections and never answering): the SDK's
blocking calls run in a daemon thread that is abandoned at the deadline, and on a
shutdown deadline the exporters are shut down to cut their retry loops. The provider
built here does not install the SDK's own exit hook (which can block ~30 s); it installs
one that runs ``shutdown(provider, OTEL_LUNARY_EXIT_TIMEOUT)`` (default 2 s) instead.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from otel_lunary._export_settings import env_str, resolve_float, resolve_int, url_problem, warn_env

__all__ = [
    "ExportOptions",
    "build_tracer_provider",
    "drop_counts",
    "dropped_spans",
    "flush",
    "resolve_exporters",
    "resolve_protocol",
    "shutdown",
]

_logger = logging.getLogger("otel_lunary.export")

ENV_EXPORTER = "OTEL_LUNARY_EXPORTER"
ENV_EXIT_TIMEOUT = "OTEL_LUNARY_EXIT_TIMEOUT"
ENV_TRACES_EXPORTER = "OTEL_TRACES_EXPORTER"
ENV_ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT"
ENV_TRACES_ENDPOINT = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
ENV_PROTOCOL = "OTEL_EXPORTER_OTLP_PROTOCOL"
ENV_TRACES_PROTOCOL = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
ENV_COMPRESSION = "OTEL_EXPORTER_OTLP_COMPRESSION"
ENV_TRACES_COMPRESSION = "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION"
ENV_TIMEOUT = "OTEL_EXPORTER_OTLP_TIMEOUT"
ENV_TRACES_TIMEOUT = "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT"

EXPORTERS = ("otlp", "file", "console", "none")
PROTOCOLS = ("http/protobuf", "grpc")
COMPRESSIONS = ("gzip", "deflate", "none")
DEFAULT_PROTOCOL = "http/protobuf"
DEFAULT_HTTP_ENDPOINT = "http://localhost:4318/v1/traces"
DEFAULT_GRPC_ENDPOINT = "http://localhost:4317"
DEFAULT_OTLP_TIMEOUT_S = 10.0
DEFAULT_EXIT_TIMEOUT_S = 2.0
DROP_LOG_INTERVAL_S = 60.0
_TRACES_PATH = "/v1/traces"


@dataclass(frozen=True)
class ExportOptions:
    """Explicit export settings from ``configure()``; None means: resolve from env."""

    exporter: str | Sequence[str] | None = None  # "otlp" | "file" | "console" | "none", or several
    endpoint: str | None = None
    protocol: str | None = None  # "grpc" | "http/protobuf"
    headers: dict[str, str] | None = None
    file_path: str | None = None
    service_name: str | None = None
    compression: str | None = None  # "gzip" | "deflate" (HTTP only) | "none"
    timeout_s: float | None = None  # per OTLP export request, retries included
    file_max_bytes: int | None = None
    file_backups: int | None = None
    exit_timeout_s: float | None = None  # bounded shutdown run at interpreter exit
    resource_attributes: Mapping[str, str] | None = None  # merged over OTEL_RESOURCE_ATTRIBUTES


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


_drops = _DropCounter()


def dropped_spans() -> int:
    """How many spans this process lost since it started (all reasons, all providers)."""
    return _drops.total()


def drop_counts() -> dict[str, int]:
    """``dropped_spans()`` by reason: queue_full, export_failed, after_shutdown, shutdown_timeout."""
    return _drops.snapshot()


class _DropCountingMetrics:
    """Wraps the BatchProcessor's processor-metrics hook, the one place the SDK reports a
    dropped span (``drop_items(count, error_type)``), to count drops exactly."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def register_queue_size(self, get_queue_size: Callable[[], int]) -> None:
        self._inner.register_queue_size(get_queue_size)

    def drop_items(self, count: int, error_type: str = "queue_full") -> None:
        _drops.add("after_shutdown" if error_type == "already_shutdown" else "queue_full", count)
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
            _drops.add("export_failed", len(spans))
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


class _LunaryBatchSpanProcessor(BatchSpanProcessor):
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
        batch = getattr(self, "_batch_processor", None)
        if batch is not None and hasattr(batch, "_metrics"):
            batch._metrics = _DropCountingMetrics(batch._metrics)
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



# --- resolution -----------------------------------------------------------------------


def _split_names(value: str | Iterable[str]) -> list[str]:
    items = value.split(",") if isinstance(value, str) else list(value)
    return [str(item).strip().lower() for item in items if str(item).strip()]


def _normalise_exporters(names: list[str]) -> tuple[str, ...]:
    if "none" in names:
        return ()
    return tuple(dict.fromkeys(names))


def resolve_exporters(options: ExportOptions) -> tuple[str, ...]:
    """The exporters to install (``()`` for none), per the rules in the module docstring."""
    if options.exporter is not None:
        if not isinstance(options.exporter, (str, Iterable)):
            raise ValueError(f"exporter must be a name or a list of names, got {options.exporter!r}")
        names = _split_names(options.exporter)
        unknown = [n for n in names if n not in EXPORTERS]
        if unknown or not names:
            raise ValueError(f"unknown exporter {', '.join(unknown) or repr(options.exporter)}: use one of {', '.join(EXPORTERS)}")
        return _normalise_exporters(names)
    if options.endpoint is not None or options.protocol is not None:
        return ("otlp",)
    raw = env_str(ENV_EXPORTER)
    if raw is not None:
        names = _split_names(raw)
        valid = [n for n in names if n in EXPORTERS]
        if len(valid) != len(names):
            warn_env(ENV_EXPORTER, raw, f"exporters are {', '.join(EXPORTERS)}", valid or "the next setting")
        if valid:
            return _normalise_exporters(valid)
    raw = env_str(ENV_TRACES_EXPORTER)
    if raw is not None:
        names = _split_names(raw)
        valid = [n for n in names if n in ("otlp", "console", "none")]
        if len(valid) != len(names):
            warn_env(ENV_TRACES_EXPORTER, raw, "otel-lunary supports otlp, console and none", valid or ["otlp"])
        return _normalise_exporters(valid or ["otlp"])
    if any(env_str(name) for name in (ENV_ENDPOINT, ENV_TRACES_ENDPOINT, ENV_PROTOCOL, ENV_TRACES_PROTOCOL)):
        return ("otlp",)
    return ("file",)


def resolve_protocol(explicit: str | None) -> str:
    """``grpc`` or ``http/protobuf``: explicit > ``..._TRACES_PROTOCOL`` > ``..._PROTOCOL`` > default."""
    if explicit is not None:
        value = str(explicit).strip().lower()
        if value not in PROTOCOLS:
            raise ValueError(f"unknown OTLP protocol {explicit!r}: use one of {', '.join(PROTOCOLS)}")
        return value
    for name in (ENV_TRACES_PROTOCOL, ENV_PROTOCOL):
        raw = env_str(name)
        if raw is None:
            continue
        if raw.lower() in PROTOCOLS:
            return raw.lower()
        warn_env(name, raw, f"protocols are {', '.join(PROTOCOLS)}", DEFAULT_PROTOCOL)
        return DEFAULT_PROTOCOL
    return DEFAULT_PROTOCOL


def _grpc_host_port(value: str) -> bool:
    host, sep, port = value.rpartition(":")
    return bool(sep and host and "/" not in value and port.isdigit())


def _env_endpoint_problem(value: str, protocol: str) -> str | None:
    """Env endpoints: a URL; for gRPC also ``host:port`` (TLS unless OTEL_EXPORTER_OTLP_INSECURE), as the SDK reads it."""
    problem = url_problem(value)
    if problem and protocol == "grpc" and _grpc_host_port(value):
        return None
    return problem


def _http_traces_url(base: str) -> str:
    stripped = base.rstrip("/")
    return stripped if stripped.endswith(_TRACES_PATH) else stripped + _TRACES_PATH


def _resolve_endpoint(explicit: str | None, protocol: str) -> str | None:
    """The endpoint to pass to the exporter, or None to let the SDK read the env itself."""
    if explicit is not None:
        problem = url_problem(explicit) if isinstance(explicit, str) else "not a string"
        if problem:
            raise ValueError(
                f"bad OTLP endpoint {explicit!r}: {problem} (use http://host:port for plaintext, https:// for TLS)"
            )
        return explicit if protocol == "grpc" else _http_traces_url(explicit)
    for name in (ENV_TRACES_ENDPOINT, ENV_ENDPOINT):
        raw = env_str(name)
        if raw is None:
            continue
        problem = _env_endpoint_problem(raw, protocol)
        if problem is None:
            return None  # valid: the SDK exporter reads it (with the spec's path rules)
        default = DEFAULT_GRPC_ENDPOINT if protocol == "grpc" else DEFAULT_HTTP_ENDPOINT
        warn_env(name, raw, problem, default)
        return default
    return DEFAULT_GRPC_ENDPOINT if protocol == "grpc" else None


def _resolve_compression(explicit: str | None, protocol: str) -> str | None:
    """A compression name to pass explicitly, or None to let the SDK read the env."""
    allowed = COMPRESSIONS if protocol == "http/protobuf" else ("gzip", "none")
    if explicit is not None:
        value = str(explicit).strip().lower()
        if value not in allowed:
            raise ValueError(f"unknown compression {explicit!r} for {protocol}: use one of {', '.join(allowed)}")
        return value
    for name in (ENV_TRACES_COMPRESSION, ENV_COMPRESSION):
        raw = env_str(name)
        if raw is None:
            continue
        if raw.lower() in allowed:
            return None
        warn_env(name, raw, f"compressions are {', '.join(allowed)}", "none")
        return "none"
    return None


def _resolve_timeout(explicit: float | None) -> float | None:
    """A timeout to pass explicitly, or None to let the SDK read the env."""
    if explicit is not None:
        return resolve_float(explicit, None, None, 0.001, "timeout_s")
    for name in (ENV_TRACES_TIMEOUT, ENV_TIMEOUT):
        raw = env_str(name)
        if raw is None:
            continue
        try:
            if float(raw) > 0:
                return None
        except ValueError:
            pass
        warn_env(name, raw, "must be a positive number of seconds", DEFAULT_OTLP_TIMEOUT_S)
        return DEFAULT_OTLP_TIMEOUT_S
    return None


def _check_headers(headers: Mapping[str, str] | None) -> dict[str, str] | None:
    if headers is None:
        return None
    if not isinstance(headers, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items()):
        raise ValueError(f"headers must be a dict of str to str, got {headers!r}")
    return dict(headers)


def _otlp_exporter(options: ExportOptions) -> SpanExporter:
    protocol = resolve_protocol(options.protocol)
    endpoint = _resolve_endpoint(options.endpoint, protocol)
    headers = _check_headers(options.headers)
    compression = _resolve_compression(options.compression, protocol)
    timeout = _resolve_timeout(options.timeout_s)
    if protocol == "grpc":
        from grpc import Compression as GrpcCompression
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        grpc_compression = {None: None, "gzip": GrpcCompression.Gzip, "none": GrpcCompression.NoCompression}
        return GrpcExporter(endpoint=endpoint, headers=headers, timeout=timeout, compression=grpc_compression[compression])
    from opentelemetry.exporter.otlp.proto.http import Compression as HttpCompression
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

    http_compression = {
        None: None,
        "gzip": HttpCompression.Gzip,
        "deflate": HttpCompression.Deflate,
        "none": HttpCompression.NoCompression,
    }
    return HttpExporter(endpoint=endpoint, headers=headers, timeout=timeout, compression=http_compression[compression])


def _make_exporter(name: str, options: ExportOptions) -> SpanExporter:
    if name == "otlp":
        return _otlp_exporter(options)
    if name == "file":
        from otel_lunary.file_exporter import OtlpJsonFileExporter

        return OtlpJsonFileExporter(options.file_path, options.file_max_bytes, options.file_backups)
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter

    return ConsoleSpanExporter()


def _resource(service_name: str | None, extra: Mapping[str, str] | None) -> Resource:
    attributes: dict[str, str] = dict(extra or {})
    if service_name is not None:
        if not isinstance(service_name, str) or not service_name.strip():
            raise ValueError(f"service_name must be a non-empty string, got {service_name!r}")
        attributes[SERVICE_NAME] = service_name
    return Resource.create(attributes)


# --- lifecycle ------------------------------------------------------------------------

_processors: weakref.WeakKeyDictionary[TracerProvider, list[_LunaryBatchSpanProcessor]] = weakref.WeakKeyDictionary()
_exit_timeouts: weakref.WeakKeyDictionary[TracerProvider, float] = weakref.WeakKeyDictionary()
_shut_down: weakref.WeakSet[TracerProvider] = weakref.WeakSet()
_flush_jobs: weakref.WeakKeyDictionary[TracerProvider, _Job] = weakref.WeakKeyDictionary()
_registry_lock = threading.Lock()


def build_tracer_provider(options: ExportOptions) -> TracerProvider:
    """A TracerProvider exporting where ``options`` and the ``OTEL_*`` env say."""
    names = resolve_exporters(options)
    exit_timeout = resolve_float(options.exit_timeout_s, ENV_EXIT_TIMEOUT, DEFAULT_EXIT_TIMEOUT_S, 0.0, "exit_timeout_s")
    exporters = [_make_exporter(name, options) for name in names]  # raises before anything starts
    provider = TracerProvider(resource=_resource(options.service_name, options.resource_attributes), shutdown_on_exit=False)
    processors = [_LunaryBatchSpanProcessor(exporter) for exporter in exporters]
    for processor in processors:
        provider.add_span_processor(processor)
    with _registry_lock:
        _processors[provider] = processors
        _exit_timeouts[provider] = exit_timeout if exit_timeout is not None else DEFAULT_EXIT_TIMEOUT_S
    _logger.debug("otel-lunary exporting to %s", ", ".join(names) or "nowhere")
    return provider


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
    failed_before = _drops.snapshot()["export_failed"]
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
    return bool(job.result) and _drops.snapshot()["export_failed"] == failed_before


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
    _drops.add("shutdown_timeout", left)
    if not finished or left:
        _logger.warning("otel-lunary: shutdown stopped at its %.1fs deadline; %d unsent spans dropped", timeout_s, left)


def _shutdown_at_exit() -> None:
    with _registry_lock:
        pending = [(p, t) for p, t in _exit_timeouts.items() if p not in _shut_down]
    for provider, timeout in pending:
        shutdown(provider, timeout)


atexit.register(_shutdown_at_exit)
