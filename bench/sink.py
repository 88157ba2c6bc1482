"""A local stand-in for Lunary's API and an OTLP/HTTP receiver: answers every POST 200 on 127.0.0.1.

It counts what it received, so a bench can check that everything it measured was
delivered: OTLP spans (``/v1/traces``, protobuf, gzip or not) and Lunary events (any other
path, JSON ``{"events": [...]}``). ``GET /counts`` answers ``{"spans": n, "events": m}``;
``GET /counts?reset=1`` answers the same and sets both back to zero.

    python bench/sink.py   # prints the port on stdout, serves until killed (max 1 hour)
"""

from __future__ import annotations

import gzip
import json
import sys
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_LIFETIME_S = 3600.0
_counts = {"spans": 0, "events": 0}
_lock = threading.Lock()


def _count(path: str, body: bytes, encoding: str) -> None:
    if encoding == "gzip":
        body = gzip.decompress(body)
    elif encoding == "deflate":
        body = zlib.decompress(body)
    if path.startswith("/v1/traces"):
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        request = ExportTraceServiceRequest.FromString(body)
        n = sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
        key = "spans"
    else:
        try:
            n = len(json.loads(body).get("events", ()))
        except (ValueError, AttributeError):
            n = 0
        key = "events"
    with _lock:
        _counts[key] += n


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        return None

    def _answer(self, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        try:
            _count(self.path, body, self.headers.get("Content-Encoding", ""))
        except Exception:  # noqa: BLE001 - a sink answers 200 whatever it got
            pass
        if self.path.startswith("/v1/traces"):
            self._answer(b"", "application/x-protobuf")
        else:
            self._answer(b"{}")

    def do_GET(self) -> None:  # noqa: N802
        if self.path.startswith("/counts"):
            with _lock:
                body = json.dumps(_counts).encode()
                if "reset=1" in self.path:
                    _counts.update(spans=0, events=0)
            self._answer(body)
            return
        self._answer(b"{}")


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    threading.Timer(MAX_LIFETIME_S, server.shutdown).start()
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
