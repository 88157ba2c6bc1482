"""The HTTP side: ``POST /v1/runs/ingest`` as Lunary's backend answers it, plus CORS.

Request-level problems get a 4xx and ``{"error": "..."}``: no or unknown app key (401),
no Content-Length (411), a body over the limit (413, not read), a body that is not
JSON (400), not ``{"events": [...]}`` (400), too many events (413). Anything else is
200 with one ``{"id", "success", "error"}`` per event, so good events of a batch land
whatever their neighbours look like. A handler never takes the server down: unexpected
errors answer 500 and are logged.
"""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from otel_lunary.bridge.config import BridgeConfig
from otel_lunary.bridge.ingest import Ingestor
from otel_lunary.bridge.wire import BodyError, parse_body

logger = logging.getLogger("otel_lunary.bridge")

INGEST_PATH = "/v1/runs/ingest"
HEALTH_PATH = "/healthz"
SOCKET_TIMEOUT_S = 30.0
# A refused body up to this size is read and dropped before answering, so the client
# (still sending) gets the answer rather than a reset connection; larger ones are cut.
DISCARD_LIMIT = 8 * 1024 * 1024


class BridgeHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, config: BridgeConfig, ingestor: Ingestor) -> None:
        self.config = config
        self.ingestor = ingestor
        super().__init__((config.host, config.port), _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        if isinstance(host, bytes):  # typed str | bytes; an AF_INET server's host is str
            host = host.decode()
        return f"http://{host}:{port}"

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.warning("otel-lunary bridge: error handling a request from %s", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "otel-lunary-bridge"
    timeout = SOCKET_TIMEOUT_S
    # Headers and body leave in one segment (the stdlib flushes after each request), and
    # without Nagle: otherwise keep-alive clients wait out a delayed ACK per request.
    wbufsize = 64 * 1024
    disable_nagle_algorithm = True
    server: BridgeHTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        logger.debug("otel-lunary bridge: " + format, *args)

    # --- responses -----------------------------------------------------------------------
    def _cors(self) -> None:
        allowed = self.server.config.allows_origin(self.headers.get("Origin"))
        if allowed is not None:
            self.send_header("Access-Control-Allow-Origin", allowed)
            if allowed != "*":
                self.send_header("Vary", "Origin")

    def _reply(self, status: int, payload: Any, *, close: bool = False) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self._cors()
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(data)

    def _fail(self, status: int, message: str, *, close: bool = False) -> None:
        if close and self.command == "POST":
            self._discard()
        self._reply(status, {"error": message}, close=close)

    def _discard(self) -> None:
        try:
            left = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return
        if left > DISCARD_LIMIT:
            return
        while left > 0:
            chunk = self.rfile.read(min(left, 65536))
            if not chunk:
                return
            left -= len(chunk)

    def _path(self) -> str:
        return self.path.split("?", 1)[0].rstrip("/") or "/"

    # --- methods -------------------------------------------------------------------------
    def do_OPTIONS(self) -> None:  # noqa: N802 - stdlib name
        if self._path() != INGEST_PATH:
            self._fail(404, f"no route {self._path()}")
            return
        allowed = self.server.config.allows_origin(self.headers.get("Origin"))
        if allowed is None:
            self._fail(403, "origin not allowed")
            return
        self.send_response(204)
        self._cors()
        self.send_header("Access-Control-Allow-Methods", "POST, OPTIONS")
        self.send_header("Access-Control-Allow-Headers", "Authorization, Content-Type")
        self.send_header("Access-Control-Max-Age", "600")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:  # noqa: N802
        if self._path() == HEALTH_PATH:
            self._reply(200, {"ok": True, **self.server.ingestor.counts})
            return
        self._fail(404, f"no route {self._path()}")

    def do_POST(self) -> None:  # noqa: N802
        try:
            self._post()
        except (ConnectionError, TimeoutError):
            self.close_connection = True
        except Exception:  # noqa: BLE001 - nothing takes the server down
            logger.warning("otel-lunary bridge: internal error", exc_info=True)
            try:
                self._fail(500, "internal error", close=True)
            except OSError:
                self.close_connection = True

    def _post(self) -> None:
        config = self.server.config
        if self._path() != INGEST_PATH:
            self._fail(404, f"no route {self._path()}", close=True)
            return
        scheme, _, key = (self.headers.get("Authorization") or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            self._fail(401, "missing Authorization: Bearer <app key>", close=True)
            return
        project = config.keys.get(key.strip())
        if project is None:
            self._fail(401, "unknown app key", close=True)
            return
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            self._fail(411, "send the body with a Content-Length", close=True)
            return
        try:
            length = int(self.headers.get("Content-Length") or "")
        except ValueError:
            self._fail(411, "Content-Length required", close=True)
            return
        if length < 0:
            self._fail(400, "bad Content-Length", close=True)
            return
        if length > config.max_body_bytes:
            self._fail(413, f"body of {length} bytes is over the {config.max_body_bytes}-byte limit", close=True)
            return
        body = self.rfile.read(length)
        try:
            events = parse_body(body)
        except BodyError as problem:
            self._fail(400, str(problem))
            return
        if len(events) > config.max_events:
            self._fail(413, f"{len(events)} events is over the {config.max_events}-event limit")
            return
        results = self.server.ingestor.ingest(project, key.strip(), events)
        self._reply(200, {"results": results})


class Maintenance(threading.Thread):
    """Closes runs past the run timeout and prunes the store, until stopped."""

    def __init__(self, ingestor: Ingestor, interval_s: float) -> None:
        super().__init__(name="otel-lunary-bridge-maintenance", daemon=True)
        self.ingestor = ingestor
        self.interval_s = interval_s
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval_s):
            try:
                self.ingestor.close_stale_runs()
                self.ingestor.store.prune()
            except Exception:  # noqa: BLE001
                logger.warning("otel-lunary bridge: maintenance failed", exc_info=True)
