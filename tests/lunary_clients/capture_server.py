#!/usr/bin/env python3
"""Throwaway capture server for the Lunary ingestion protocol.

Listens on 127.0.0.1 (a free port unless --port is given), answers every
``POST`` with 200 and ``{"results": [{"id": <runId>, "success": true}, ...]}``
(one entry per ``events[]`` element, like Lunary's own backend), answers CORS
preflight (``OPTIONS``) so a browser page on another origin can post to it, and
appends one JSON line per request to ``--out``::

    {"ts": ..., "method": "POST", "path": "/v1/runs/ingest",
     "headers": {...}, "body": {...} | null, "raw": "<only if not JSON>"}

Usage::

    python tests/lunary_clients/capture_server.py --out /tmp/cap.jsonl \
        [--port 0] [--url-file /tmp/cap.url] [--status 200]

It prints ``CAPTURE_URL=http://127.0.0.1:PORT`` on stdout once listening (and
writes the URL to --url-file if given). ``--status 500`` (or 400, ...) makes
every POST fail with that status, to see what the SDKs do with errors.
``GET /__captured`` returns the captured lines as a JSON array.

Stdlib only; not part of the test suite.
"""
from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST, PATCH, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type",
    "Access-Control-Max-Age": "600",
}


def make_handler(out_path: str, status: int, lock: threading.Lock, store: list):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "lunary-capture/0"

        def log_message(self, fmt, *args):  # keep stderr quiet
            pass

        def _record(self, body_bytes: bytes | None):
            rec = {
                "ts": time.time(),
                "method": self.command,
                "path": self.path,
                "headers": {k: v for k, v in self.headers.items()},
                "body": None,
            }
            if body_bytes:
                try:
                    rec["body"] = json.loads(body_bytes)
                except ValueError:
                    rec["raw"] = body_bytes.decode("utf-8", "replace")
            with lock:
                store.append(rec)
                with open(out_path, "a", encoding="utf-8") as f:
                    f.write(json.dumps(rec, ensure_ascii=False) + "\n")
            return rec

        def _send(self, code: int, payload) -> None:
            data = json.dumps(payload).encode()
            self.send_response(code)
            for k, v in CORS_HEADERS.items():
                self.send_header(k, v)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_OPTIONS(self):  # CORS preflight
            self._record(None)
            self.send_response(204)
            for k, v in CORS_HEADERS.items():
                self.send_header(k, v)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self):
            if self.path == "/__captured":
                with lock:
                    self._send(200, list(store))
                return
            self._record(None)
            self._send(404, {"error": "capture server: nothing here"})

        def _do_write(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            rec = self._record(body)
            if status >= 400:
                self._send(status, {"error": f"capture server forced {status}"})
                return
            events = (rec.get("body") or {}).get("events") if isinstance(rec.get("body"), dict) else None
            results = [
                {"id": e.get("runId") if isinstance(e, dict) else None, "success": True}
                for e in (events or [])
            ]
            self._send(200, {"results": results})

        do_POST = _do_write
        do_PATCH = _do_write
        do_PUT = _do_write

    return Handler


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="JSONL file to append captured requests to")
    ap.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    ap.add_argument("--url-file", help="write the base URL here once listening")
    ap.add_argument("--status", type=int, default=200, help="status for every POST (>=400 to simulate failures)")
    args = ap.parse_args(argv)

    lock = threading.Lock()
    store: list = []
    httpd = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(args.out, args.status, lock, store))
    url = f"http://127.0.0.1:{httpd.server_address[1]}"
    if args.url_file:
        with open(args.url_file, "w") as f:
            f.write(url + "\n")
    print(f"CAPTURE_URL={url}", flush=True)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
