"""Where spans go when otel-lunary sets up the TracerProvider itself: options to a provider.

``configure()`` calls ``build_tracer_provider(ExportOptions(...))`` when the application
has no SDK TracerProvider of its own. Every setting resolves explicit argument > environment >
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
6. otherwise the embedded default, ``file`` (``otel_lunary.export.file``).

OTLP uses the SDK's own exporters (gRPC or HTTP/protobuf) behind the SDK's
``BatchSpanProcessor``, with otel-lunary's faster encoder in place of theirs
(``otel_lunary.export.otlp_exporters``); they read ``OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT``, ``_HEADERS``,
``_COMPRESSION``, ``_TIMEOUT`` (seconds, as the Python SDK reads it), ``_CERTIFICATE``...
themselves; the processor reads ``OTEL_BSP_SCHEDULE_DELAY``, ``OTEL_BSP_MAX_QUEUE_SIZE``,
``OTEL_BSP_MAX_EXPORT_BATCH_SIZE``, ``OTEL_BSP_EXPORT_TIMEOUT``; the resource reads
``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES``. This module only resolves what the
SDK does not (the protocol, the exporter choice) and replaces env values the SDK would
choke on. ``OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL``: ``http/protobuf`` (default, as the
spec says) or ``grpc``. An explicit HTTP ``endpoint`` is a base URL like
``OTEL_EXPORTER_OTLP_ENDPOINT`` (``/v1/traces`` is appended unless the path already ends
with it); a gRPC endpoint is used as given.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter

from otel_lunary._adoption import HoldingProcessor
from otel_lunary._settings import env_str, resolve_float, split_names, url_problem, warn_env
from otel_lunary.export.processor import DEFAULT_EXIT_TIMEOUT_S, LunaryBatchSpanProcessor, register

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


# --- resolution -----------------------------------------------------------------------


def _normalise_exporters(names: list[str]) -> tuple[str, ...]:
    if "none" in names:
        return ()
    return tuple(dict.fromkeys(names))


def resolve_exporters(options: ExportOptions) -> tuple[str, ...]:
    """The exporters to install (``()`` for none), per the rules in the module docstring."""
    if options.exporter is not None:
        if not isinstance(options.exporter, (str, Iterable)):
            raise ValueError(f"exporter must be a name or a list of names, got {options.exporter!r}")
        names = split_names(options.exporter)
        unknown = [n for n in names if n not in EXPORTERS]
        if unknown or not names:
            raise ValueError(f"unknown exporter {', '.join(unknown) or repr(options.exporter)}: use one of {', '.join(EXPORTERS)}")
        return _normalise_exporters(names)
    if options.endpoint is not None or options.protocol is not None:
        return ("otlp",)
    raw = env_str(ENV_EXPORTER)
    if raw is not None:
        names = split_names(raw)
        valid = [n for n in names if n in EXPORTERS]
        if len(valid) != len(names):
            warn_env(ENV_EXPORTER, raw, f"exporters are {', '.join(EXPORTERS)}", valid or "the next setting")
        if valid:
            return _normalise_exporters(valid)
    raw = env_str(ENV_TRACES_EXPORTER)
    if raw is not None:
        names = split_names(raw)
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

        from otel_lunary.export.otlp_exporters import grpc_span_exporter

        grpc_compression = {None: None, "gzip": GrpcCompression.Gzip, "none": GrpcCompression.NoCompression}
        return grpc_span_exporter(endpoint=endpoint, headers=headers, timeout=timeout, compression=grpc_compression[compression])
    from opentelemetry.exporter.otlp.proto.http import Compression as HttpCompression

    from otel_lunary.export.otlp_exporters import OtlpHttpSpanExporter

    http_compression = {
        None: None,
        "gzip": HttpCompression.Gzip,
        "deflate": HttpCompression.Deflate,
        "none": HttpCompression.NoCompression,
    }
    return OtlpHttpSpanExporter(endpoint=endpoint, headers=headers, timeout=timeout, compression=http_compression[compression])


def _make_exporter(name: str, options: ExportOptions) -> SpanExporter:
    if name == "otlp":
        return _otlp_exporter(options)
    if name == "file":
        from otel_lunary.export.file import OtlpJsonFileExporter

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


def build_exporters(options: ExportOptions) -> list[SpanExporter]:
    """The exporters ``build_tracer_provider`` puts behind its processors, for a caller that
    queues, retries and counts spans itself (the bridge's outbox)."""
    return [_make_exporter(name, options) for name in resolve_exporters(options)]


def _provider(options: ExportOptions) -> tuple[TracerProvider, list[LunaryBatchSpanProcessor]]:
    """The provider and its processors, not yet added to it; flushed and shut down by ``processor``."""
    names = resolve_exporters(options)
    exit_timeout = resolve_float(options.exit_timeout_s, ENV_EXIT_TIMEOUT, DEFAULT_EXIT_TIMEOUT_S, 0.0, "exit_timeout_s")
    exporters = [_make_exporter(name, options) for name in names]  # raises before anything starts
    provider = TracerProvider(resource=_resource(options.service_name, options.resource_attributes), shutdown_on_exit=False)
    processors = [LunaryBatchSpanProcessor(exporter) for exporter in exporters]
    register(provider, processors, exit_timeout if exit_timeout is not None else DEFAULT_EXIT_TIMEOUT_S)
    _logger.debug("otel-lunary exporting to %s", ", ".join(names) or "nowhere")
    return provider, processors


def build_tracer_provider(options: ExportOptions) -> TracerProvider:
    """A TracerProvider exporting where ``options`` and the ``OTEL_*`` env say."""
    provider, processors = _provider(options)
    for processor in processors:
        provider.add_span_processor(processor)
    return provider


def build_provisional_provider(options: ExportOptions) -> tuple[TracerProvider, HoldingProcessor]:
    """``build_tracer_provider``, for recording until the application sets its own provider:
    finished spans are held a few seconds in the returned processor, which can hand them
    over to the application's provider (``otel_lunary._adoption``)."""
    provider, processors = _provider(options)
    holding = HoldingProcessor(processors)
    provider.add_span_processor(holding)
    return provider, holding
