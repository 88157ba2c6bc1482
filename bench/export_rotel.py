"""Section 3: encoding and export throughput, otel-lunary's encoders against the stock ones.

Encoders, on the same batches of 512 real otel-lunary spans (user message, event, reply,
feedback; every message's text distinct, so no encoder gains from repeated content),
timed in interleaved rounds:

- protobuf: the SDK's ``encode_spans(batch).SerializeToString()`` (what its OTLP
  exporters send) against ``otel_lunary.export.otlp_proto.encode_request``;
- OTLP JSON: the file exporter's previous encoder (the SDK's ``encode_spans`` then a walker
  to OTLP JSON, ``otlp_json.request_to_dict``) and protobuf's own
  ``json_format.MessageToJson`` of the SDK's request, against ``otlp_json.encode_line``.

Both outputs are proven equal to the SDK encoder's by tests/test_otlp_encoding.py.

Export: rotel-agent (tests/servers.py ``start_rotel``, blackhole exporter) on 127.0.0.1
receives batches from the SDK's OTLP exporters (HTTP/protobuf and gRPC) and from
otel-lunary's (the same exporters with the body encoding replaced); the file exporter
writes OTLP JSON Lines to a temporary file. "encoding share" is encode time / export time.

    python bench/export_rotel.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import common
from spans import record_turns

from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace.export import SpanExportResult

from otel_lunary.export.file import OtlpJsonFileExporter
from otel_lunary.export.otlp_exporters import OtlpHttpSpanExporter, grpc_span_exporter
from otel_lunary.export.otlp_json import encode_line, request_to_dict
from otel_lunary.export.otlp_proto import encode_request

BATCH = 512
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False, check_circular=False).encode


def sdk_protobuf(batch: Sequence[Any]) -> bytes:
    return encode_spans(batch).SerializeToString()


def walker_json(batch: Sequence[Any]) -> bytes:
    """The file exporter's encoder before otlp_json wrote the text directly."""
    return (_dumps(request_to_dict(encode_spans(batch))) + "\n").encode()


def message_to_json(batch: Sequence[Any]) -> bytes:
    return json_format.MessageToJson(encode_spans(batch), indent=None).encode()


def interleaved_rates(fns: dict[str, Callable[[Any], Any]], batches: list[Any], rounds: int) -> dict[str, dict[str, Any]]:
    """spans/s of each function, rounds interleaved (A B C, B C A, ...) over the same batches."""
    names = list(fns)
    for fn in fns.values():
        fn(batches[0])  # warm up caches, imports
    seconds: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        batch = batches[r % len(batches)]
        for name in names[r % len(names):] + names[: r % len(names)]:
            t0 = time.perf_counter()
            fns[name](batch)
            seconds[name].append(time.perf_counter() - t0)
    return {n: {"spans_per_s": BATCH * len(s) / sum(s), "batch_ms": common.stats([t * 1000 for t in s])} for n, s in seconds.items()}


def measure_export(export: Callable[[Any], None], encode: Callable[[Any], Any], batches: list[Any], rounds: int) -> dict[str, Any]:
    export(batches[0])  # connect, warm up
    export_times, encode_times = [], []
    for r in range(rounds):  # interleave export and encode against noise
        batch = batches[r % len(batches)]
        t0 = time.perf_counter()
        export(batch)
        t1 = time.perf_counter()
        encode(batch)
        encode_times.append(time.perf_counter() - t1)
        export_times.append(t1 - t0)
    n = len(export_times) * BATCH
    return {
        "spans": n,
        "spans_per_s": n / sum(export_times),
        "encode_spans_per_s": n / sum(encode_times),
        "encode_share": sum(encode_times) / sum(export_times),
        "batch_ms": common.stats([t * 1000 for t in export_times]),
    }


def checked(exporter: Any, name: str) -> Callable[[Any], None]:
    def export(batch: Any) -> None:
        if exporter.export(batch) is not SpanExportResult.SUCCESS:
            raise RuntimeError(f"{name} export failed")

    return export


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    spans_total = 30_000 if args.quick else 150_000
    rounds = max(6, spans_total // BATCH)
    spans = record_turns(BATCH, distinct_content=True)  # 4 batches of distinct spans
    batches = [spans[i : i + BATCH] for i in range(0, len(spans), BATCH)]
    from helpers.servers import start_rotel
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as StockGrpcExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as StockHttpExporter

    encoders = {
        "protobuf": interleaved_rates({"sdk": sdk_protobuf, "otel_lunary": encode_request}, batches, rounds),
        "json": interleaved_rates(
            {"walker": walker_json, "message_to_json": message_to_json, "otel_lunary": encode_line}, batches, max(6, rounds // 3)
        ),
    }
    export: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="otel-lunary-bench-") as tmp:
        with start_rotel(Path(tmp), export_endpoint=None, exporter="blackhole") as rotel:
            http_url = rotel.http_endpoint + "/v1/traces"
            variants = [
                ("otlp_http (SDK)", StockHttpExporter(endpoint=http_url), sdk_protobuf),
                ("otlp_http", OtlpHttpSpanExporter(endpoint=http_url), encode_request),
                ("otlp_grpc (SDK)", StockGrpcExporter(endpoint=rotel.grpc_endpoint, insecure=True), sdk_protobuf),
                ("otlp_grpc", grpc_span_exporter(endpoint=rotel.grpc_endpoint, insecure=True), encode_request),
            ]
            for name, exporter, encode in variants:
                export[name] = measure_export(checked(exporter, name), encode, batches, rounds)
                exporter.shutdown()
        file_exporter = OtlpJsonFileExporter(str(Path(tmp) / "bench.jsonl"), max_bytes=256 * 2**20, backups=0)
        export["file"] = measure_export(checked(file_exporter, "file"), encode_line, batches, rounds)
        file_exporter.shutdown()
    common.emit({"batch": BATCH, "encoders": encoders, "results": export})


if __name__ == "__main__":
    sys.exit(main())
