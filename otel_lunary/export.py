"""Where spans go when otel-lunary sets up the TracerProvider itself.

STUB owned by the export work (issue 3): the interface below is fixed, the body is
minimal until then.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor


@dataclass(frozen=True)
class ExportOptions:
    """Explicit export settings from ``configure()``; None means: resolve from env."""

    exporter: str | None = None  # "otlp" | "file" | "console" | "none"
    endpoint: str | None = None
    protocol: str | None = None  # "grpc" | "http/protobuf"
    headers: dict[str, str] | None = None
    file_path: str | None = None
    service_name: str | None = None


def build_tracer_provider(options: ExportOptions) -> TracerProvider:
    """A TracerProvider exporting where ``options`` and the ``OTEL_*`` env say."""
    provider = TracerProvider(resource=Resource.create({} if options.service_name is None else {"service.name": options.service_name}))
    if options.exporter == "otlp" or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=options.endpoint)))
    return provider


def flush(provider: TracerProvider, timeout_s: float) -> bool:
    """Flush within ``timeout_s`` whatever the backend does."""
    return provider.force_flush(int(timeout_s * 1000))


def shutdown(provider: TracerProvider, timeout_s: float) -> None:
    """Shut down within ``timeout_s`` whatever the backend does."""
    provider.shutdown()
