"""Where spans go when otel-lunary sets up the TracerProvider itself, and what it loses.

- ``provider``: ``ExportOptions`` and the ``OTEL_*`` environment to a TracerProvider
  (OTLP, the local file, the console);
- ``processor``: the batch processor behind it, counting every lost span, and flush and
  shutdown bounded in time;
- ``file``: the embedded default exporter, OTLP JSON Lines in a size-bounded file;
- ``otlp_json``: the OTLP JSON encoding that file (and ``otel-lunary replay``) uses;
- ``otlp_proto``: the OTLP protobuf encoding, what the SDK's encoder writes, ~5x faster;
- ``otlp_exporters``: the SDK's OTLP/HTTP and gRPC exporters with ``otlp_proto`` as encoder.

``otel_lunary.flush()``/``shutdown()`` call ``flush``/``shutdown`` here; see docs/export.md.
"""

from __future__ import annotations

from otel_lunary.export.processor import drop_counts, dropped_spans, flush, shutdown
from otel_lunary.export.provider import (
    ExportOptions,
    build_exporters,
    build_provisional_provider,
    build_tracer_provider,
    resolve_exporters,
    resolve_protocol,
)

__all__ = [
    "ExportOptions",
    "build_exporters",
    "build_provisional_provider",
    "build_tracer_provider",
    "drop_counts",
    "dropped_spans",
    "flush",
    "resolve_exporters",
    "resolve_protocol",
    "shutdown",
]
