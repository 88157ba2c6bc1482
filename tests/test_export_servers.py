"""Real servers for the export tests, on 127.0.0.1: an OTLP/HTTP sink, rotel, Phoenix.

Helpers only (no tests here). ``OtlpSink`` is a real OTLP/HTTP receiver (protobuf, gzip)
that keeps what it received; rotel is the Rust collector shipped in the ``rotel`` wheel;
Phoenix is ``phoenix serve``. Each can be stopped and started again on the same port.
"""

from __future__ import annotations

import gzip
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate: Callable[[], object], timeout: float, what: str) -> None:
    """Poll ``predicate`` until it is true; fail with ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class OtlpSink:
    """An OTLP/HTTP trace receiver keeping every span and the request headers."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.spans: list = []  # opentelemetry.proto Span messages
        self.resources: list = []
        self.headers: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> OtlpSink:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                encoding = self.headers.get("Content-Encoding", "")
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "deflate":
                    body = zlib.decompress(body)
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                with sink._lock:
                    sink.headers.append({k.lower(): v for k, v in self.headers.items()})
                    for rs in request.resource_spans:
                        for ss in rs.scope_spans:
                            for span in ss.spans:
                                sink.spans.append(span)
                                sink.resources.append(rs.resource)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def count(self) -> int:
        with self._lock:
            return len(self.spans)

    def names(self) -> list[str]:
        with self._lock:
            return [span.name for span in self.spans]


def rotel_binary() -> str:
    import rotel

    return str(Path(rotel.__file__).parent / "rotel-agent")


class Rotel:
    """rotel-agent receiving OTLP on gRPC and HTTP, exporting OTLP/HTTP to ``export_to``."""

    def __init__(self, workdir: Path, export_to: str) -> None:
        self.grpc_port = free_port()
        self.http_port = free_port()
        self.export_to = export_to
        self.workdir = workdir
        self.process: subprocess.Popen | None = None

    @property
    def http_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def grpc_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.grpc_port}"

    def start(self) -> Rotel:
        self.workdir.mkdir(parents=True, exist_ok=True)
        command = [
            rotel_binary(), "start",
            "--otlp-grpc-endpoint", f"127.0.0.1:{self.grpc_port}",
            "--otlp-http-endpoint", f"127.0.0.1:{self.http_port}",
            "--exporter", "otlp",
            "--otlp-exporter-protocol", "http",
            "--otlp-exporter-endpoint", self.export_to,
            "--batch-timeout", "50ms",
            "--pid-file", str(self.workdir / "rotel.pid"),
            "--log-file", str(self.workdir / "rotel.log"),
        ]  # fmt: skip
        log = open(self.workdir / "rotel.out", "ab")  # noqa: SIM115 - owned by the process
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_until(lambda: port_open(self.http_port) and port_open(self.grpc_port), 20, "rotel to listen")
        return self

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        self.process = None
        wait_until(lambda: not port_open(self.http_port), 10, "rotel to stop listening")


class Phoenix:
    """``phoenix serve`` on 127.0.0.1 with its SQLite in ``workdir``."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.grpc_port = free_port()
        self.workdir = workdir
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 90) -> Phoenix:
        import urllib.request

        self.workdir.mkdir(parents=True, exist_ok=True)
        env = dict(
            os.environ,
            PHOENIX_HOST="127.0.0.1",
            PHOENIX_PORT=str(self.port),
            PHOENIX_GRPC_PORT=str(self.grpc_port),
            PHOENIX_WORKING_DIR=str(self.workdir),
            PHOENIX_TELEMETRY_ENABLED="false",
        )
        phoenix = shutil.which("phoenix", path=str(Path(sys.executable).parent)) or "phoenix"
        log = open(self.workdir / "phoenix.out", "ab")  # noqa: SIM115
        self.process = subprocess.Popen([phoenix, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

        def ready() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"phoenix exited: see {self.workdir / 'phoenix.out'}")
            try:
                with urllib.request.urlopen(f"{self.url}/v1/projects", timeout=1) as response:
                    return response.status == 200
            except OSError:
                return False

        wait_until(ready, timeout, "phoenix to answer")
        return self

    def stop(self) -> None:
        if self.process is None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)
        self.process = None
