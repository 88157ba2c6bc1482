"""Round trip through a real collector: SDK -> OTLP -> rotel -> OTLP -> capture -> JSON Lines -> replay.

rotel (the Rust collector in the ``rotel`` wheel) receives the SDK's OTLP/HTTP export and
forwards it over OTLP/HTTP protobuf to a capture server started here; the captured
requests are written as OTLP JSON Lines by ``otel_lunary.otlp_json`` and replayed. A
second test posts replay's own input file to rotel as OTLP JSON, checking that a real
collector accepts the file format and that nothing is lost through it.
"""

from __future__ import annotations

import gzip
import json
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest, ExportTraceServiceResponse
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from fixtures.replay import raw_conversation as raw
from fixtures.replay.sdk_conversation import record
from otel_lunary.otlp_json import encode_line, request_to_dict
from otel_lunary.replay import assemble_file
from servers import poll_until, start_rotel
from test_replay_roundtrip import assert_replays, only

pytestmark = pytest.mark.slow


class Capture:
    """An OTLP/HTTP endpoint keeping each request it receives as OTLP JSON."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        capture = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return None

            def do_POST(self) -> None:  # noqa: N802 - stdlib name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                capture.requests.append(request_to_dict(request))
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def span_count(self) -> int:
        return sum(len(s["spans"]) for r in self.requests for rs in r["resourceSpans"] for s in rs.get("scopeSpans", []))

    def write(self, path: Path) -> Path:
        path.write_text("".join(json.dumps(r) + "\n" for r in self.requests))
        return path


@pytest.fixture
def capture() -> Iterator[Capture]:
    server = Capture()
    thread = threading.Thread(target=server.server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()


class TestThroughRotel:
    def test_sdk_conversation_survives_rotel(self, tmp_path: Path, capture: Capture) -> None:
        """What the SDK tracked, exported over OTLP through rotel, replays exactly."""
        with start_rotel(tmp_path, export_endpoint=capture.url) as rotel:
            provider = TracerProvider()
            provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=rotel.http_endpoint + "/v1/traces")))
            provider.add_span_processor(SimpleSpanProcessor(sent := InMemorySpanExporter()))
            try:
                tracked = record(provider)
            finally:
                provider.shutdown()
            total = len(sent.get_finished_spans())
            poll_until(lambda: capture.span_count() >= total or None, timeout=20, what="spans through rotel")
        assert capture.span_count() == total
        conversations = assemble_file(capture.write(tmp_path / "captured.jsonl"))
        assert_replays(only(conversations, tracked.conversation_id), tracked)

    def test_otlp_json_file_accepted_by_rotel(self, tmp_path: Path, capture: Capture) -> None:
        """Our OTLP JSON lines, posted as JSON to rotel, come back out as the same conversation."""
        line = encode_line(raw.record())
        expected = len(json.loads(line)["resourceSpans"][0]["scopeSpans"][0]["spans"])
        with start_rotel(tmp_path, export_endpoint=capture.url) as rotel:
            post = urllib.request.Request(rotel.http_endpoint + "/v1/traces", data=line, headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(post, timeout=10) as response:
                assert response.status == 200
            poll_until(lambda: capture.span_count() >= expected or None, timeout=20, what="spans through rotel")
        conversation = only(assemble_file(capture.write(tmp_path / "captured.jsonl")), raw.CONVERSATION)
        assert [(m.role, m.content) for m in conversation.messages] == raw.EXPECTED_MESSAGES
        assert [m.feedback for m in conversation.messages][4:] == [{"thumb": "down", "comment": "too vague"}, {}, {"rating": 4}]
