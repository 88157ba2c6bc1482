"""Section 3: export throughput to a local rotel collector, and the share spent encoding.

rotel-agent (tests/servers.py ``start_rotel``, blackhole exporter) listens on
127.0.0.1. The SDK's OTLP exporters (HTTP/protobuf and gRPC) export batches of 512 real
otel-lunary spans (user message, event, reply, feedback), as the BatchSpanProcessor
would hand them over. "encode" is the exporter's own encoding step alone
(``encode_spans(batch).SerializeToString()``), timed on the same batches; its share is
encode time / whole export time. The file exporter (OTLP JSON Lines into a temporary
file) is measured the same way with ``encode_line``.

    python bench/export_rotel.py [--quick]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import common
from spans import record_turns

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace.export import SpanExportResult

from otel_lunary.export.file import OtlpJsonFileExporter
from otel_lunary.export.otlp_json import encode_line

BATCH = 512


def timed_rounds(fn, batches, rounds: int) -> list[float]:
    times = []
    for i in range(rounds):
        batch = batches[i % len(batches)]
        t0 = time.perf_counter()
        fn(batch)
        times.append(time.perf_counter() - t0)
    return times


def measure(name: str, export, encode, batches, rounds: int) -> dict:
    export(batches[0])  # connect, warm up
    encode(batches[0])
    export_times, encode_times = [], []
    for _ in range(3):  # interleave export and encode passes against noise
        export_times += timed_rounds(export, batches, rounds // 3)
        encode_times += timed_rounds(encode, batches, rounds // 3)
    n = len(export_times) * BATCH
    per_batch_export = common.stats([t * 1000 for t in export_times])
    per_batch_encode = common.stats([t * 1000 for t in encode_times])
    return {
        "spans": n,
        "spans_per_s": n / sum(export_times),
        "encode_spans_per_s": n / sum(encode_times),
        "encode_share": sum(encode_times) / sum(export_times),
        "batch_ms": per_batch_export,
        "encode_batch_ms": per_batch_encode,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    spans_total = 30_000 if args.quick else 150_000
    rounds = max(3, spans_total // BATCH)
    spans = record_turns(BATCH)  # 4 batches of distinct spans
    batches = [spans[i : i + BATCH] for i in range(0, len(spans), BATCH)]
    from helpers.servers import start_rotel
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

    def proto(batch):
        return encode_spans(batch).SerializeToString()

    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="otel-lunary-bench-") as tmp:
        with start_rotel(Path(tmp), export_endpoint=None, exporter="blackhole") as rotel:
            http = HttpExporter(endpoint=rotel.http_endpoint + "/v1/traces")
            grpc = GrpcExporter(endpoint=rotel.grpc_endpoint, insecure=True)
            for name, exporter in (("otlp_http", http), ("otlp_grpc", grpc)):
                def export(batch, exporter=exporter):
                    if exporter.export(batch) is not SpanExportResult.SUCCESS:
                        raise RuntimeError(f"{name} export failed")
                results[name] = measure(name, export, proto, batches, rounds)
                exporter.shutdown()
        file_exporter = OtlpJsonFileExporter(str(Path(tmp) / "bench.jsonl"), max_bytes=256 * 2**20, backups=0)

        def export_file(batch):
            if file_exporter.export(batch) is not SpanExportResult.SUCCESS:
                raise RuntimeError("file export failed")

        results["file"] = measure("file", export_file, encode_line, batches, rounds)
        file_exporter.shutdown()
    common.emit({"batch": BATCH, "results": results})


if __name__ == "__main__":
    sys.exit(main())
