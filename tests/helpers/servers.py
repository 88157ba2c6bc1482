"""Real servers for tests, started on 127.0.0.1 and torn down by their owner.

Two starters, both plain functions (no pytest needed) returning context managers:

* ``start_rotel(tmp_path, export_endpoint=...)``: the rotel-agent OTLP collector that
  the ``rotel`` wheel ships (a Rust binary inside the package), receiving OTLP on free
  gRPC and HTTP ports and exporting over OTLP/HTTP, OTLP/gRPC or to a blackhole.
* ``start_phoenix(tmp_path)``: ``phoenix serve`` from the ``arize-phoenix`` package, with
  its SQLite database in ``tmp_path``, plus helpers reading its REST API.

Usage::

    with start_phoenix(tmp_path) as phoenix, start_rotel(
        tmp_path, export_endpoint=phoenix.url
    ) as rotel:
        exporter = OTLPSpanExporter(endpoint=rotel.http_endpoint + "/v1/traces")
        ...
        spans = poll_until(lambda: phoenix.spans(), timeout=30)

Both binaries are found from the running interpreter (``sys.executable`` and the
imported ``rotel`` package), never from a fixed path. Readiness is polled with a
deadline. Phoenix takes 10-15 s to become ready on a 2-core machine, rotel well under a
second.

Facts these helpers rely on (rotel 0.0.1a15, arize-phoenix 20.26, checked by
tests/test_servers_smoke.py):

* rotel exports over gRPC by default; ``--otlp-exporter-protocol http`` switches to
  OTLP/HTTP protobuf, gzip-compressed by default. In both cases the endpoint is a base URL
  (``http://host:port``) and rotel appends ``/v1/traces`` for HTTP. It batches for
  ``--batch-timeout`` (default 200ms) or ``--batch-max-size`` spans (default 8192); the
  starter sets 10ms. Failed exports are retried from ``--otlp-exporter-retry-initial-backoff``
  (default 5s); the starter sets 100ms, capped at 1s, so outage tests recover quickly.
  Without ``--daemon`` rotel stays in the foreground, logs to stdout and writes no pid file.
* Phoenix answers ``GET /healthz`` with 200 once it serves requests. ``POST /v1/traces``
  takes OTLP protobuf only. ``GET /v1/projects/{name}/spans`` returns
  ``{"data": [span, ...], "next_cursor": str | None}``, newest first, where a span is
  ``{"id", "name", "context": {"trace_id", "span_id"}, "span_kind", "parent_id",
  "start_time", "end_time", "status_code", "status_message", "attributes": {flat dotted
  keys}, "events": [...]}`` (``openinference.span.kind`` moves from the attributes to
  ``span_kind``, UNKNOWN when absent). ``GET /v1/projects/{name}/sessions`` returns
  ``{"data": [{"id", "session_id", "project_id", "start_time", "end_time",
  "traces": [{"id", "trace_id", "start_time", "end_time"}], "token_count_*"}],
  "next_cursor"}``; ``GET /v1/sessions/{session_id}`` returns ``{"data": session}``.
  Pages continue with ``?cursor=<next_cursor>``. An unknown project is a 404 (a project
  exists once its first span arrived).
* Phoenix's gRPC OTLP listener binds every interface whatever ``PHOENIX_HOST`` says; the
  starter gives it a free port but tests should send to the HTTP endpoint.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import zlib
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Literal, Self, TypeVar

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

__all__ = [
    "PhoenixProcess",
    "RotelProcess",
    "free_port",
    "poll_until",
    "rotel_agent_path",
    "start_phoenix",
    "start_rotel",
    "wait_for_port",
]


HOST = "127.0.0.1"
T = TypeVar("T")


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago (bind to port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def poll_until(fn: Callable[[], T], *, timeout: float, interval: float = 0.1, what: str = "") -> T:
    """Call ``fn`` until it returns something truthy and return that; TimeoutError after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = fn()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise TimeoutError(f"gave up after {timeout}s waiting for {what or fn}")
        time.sleep(interval)


def wait_for_port(port: int, *, timeout: float, process: subprocess.Popen | None = None) -> None:
    """Wait until 127.0.0.1:``port`` accepts TCP connections; fail early if ``process`` exits."""
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process {process.pid} exited with {process.returncode} before port {port} opened")
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"port {port} did not open within {timeout}s") from None
            time.sleep(0.05)


class OtlpHttpHandler(BaseHTTPRequestHandler):
    """What every in-process OTLP/HTTP receiver here shares: an empty protobuf answer, no log."""

    protocol_version = "HTTP/1.1"

    def answer(self, status: int) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return None


def serve_http(handler: type[BaseHTTPRequestHandler], port: int = 0) -> ThreadingHTTPServer:
    """A threading HTTP server on 127.0.0.1 (``port``, or a free one), answering from a daemon
    thread: stop it with ``stop_http``."""
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def stop_http(server: ThreadingHTTPServer) -> None:
    server.shutdown()
    server.server_close()


def stop_process(process: subprocess.Popen | None, timeout: float) -> None:
    """SIGTERM, then SIGKILL after ``timeout`` seconds; nothing when it is gone or never started."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)


def _clean_env(prefix: str) -> dict[str, str]:
    """The current environment without variables that would reconfigure the server behind our back."""
    return {key: value for key, value in os.environ.items() if not key.startswith(prefix)}


def log_tail(path: Path, lines: int = 30) -> str:
    """The last ``lines`` lines of a server's log, for an error message (empty when unreadable)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def rotel_agent_path() -> Path:
    """Path of the rotel-agent binary inside the installed ``rotel`` wheel."""
    import rotel

    return Path(rotel.__file__).resolve().parent / "rotel-agent"


class StopsOnExit:
    """A server that a ``with`` block stops at its end (``stop()`` is the subclass's)."""

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class RotelProcess(StopsOnExit):
    """A rotel-agent run from ``args`` (command line) and ``env`` (extra ROTEL_* variables).

    ``start_rotel`` builds and starts one; construct it directly to run other settings,
    e.g. an env file from collector-config/rotel/. Stopping twice is harmless.
    """

    def __init__(
        self,
        args: list[str],
        *,
        grpc_port: int,
        http_port: int,
        log_path: Path,
        startup_timeout: float = 15.0,
        env: dict[str, str] | None = None,
    ):
        self._args = args
        self._env = {**_clean_env("ROTEL_"), **(env or {})}
        self.grpc_port = grpc_port
        self.http_port = http_port
        self.log_path = log_path
        self._startup_timeout = startup_timeout
        self._process: subprocess.Popen | None = None

    @property
    def grpc_endpoint(self) -> str:
        """``127.0.0.1:P``, what ``OTLPSpanExporter(endpoint=..., insecure=True)`` (gRPC) takes."""
        return f"{HOST}:{self.grpc_port}"

    @property
    def http_endpoint(self) -> str:
        """``http://127.0.0.1:P``; append ``/v1/traces`` for the OTLP/HTTP span exporter."""
        return f"http://{HOST}:{self.http_port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self) -> RotelProcess:
        """Start the agent and wait until both receiver ports accept connections."""
        if self._process is not None and self._process.poll() is None:
            return self
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                self._args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=self._env
            )
        try:
            for port in (self.grpc_port, self.http_port):
                wait_for_port(port, timeout=self._startup_timeout, process=self._process)
        except Exception as exc:
            self.stop()
            raise RuntimeError(f"rotel-agent did not start: {exc}\n{log_tail(self.log_path)}") from exc
        return self

    def stop(self) -> None:
        """Stop the agent (SIGTERM, then SIGKILL after 5 s)."""
        stop_process(self._process, timeout=5)

    def restart(self) -> RotelProcess:
        """Stop and start again on the same ports (for outage tests)."""
        self.stop()
        return self.start()

    def log(self) -> str:
        """Everything the agent printed so far."""
        return log_tail(self.log_path, lines=10_000)


def start_rotel(
    tmp_path: Path,
    *,
    export_endpoint: str | None,
    export_protocol: Literal["http", "grpc"] = "http",
    exporter: Literal["otlp", "blackhole"] = "otlp",
    batch_timeout: str = "10ms",
    extra_args: Sequence[str] = (),
    startup_timeout: float = 15.0,
) -> RotelProcess:
    """Start rotel-agent on 127.0.0.1 with free gRPC and HTTP receiver ports.

    ``export_endpoint`` is the base URL of the next hop (``http://127.0.0.1:P``) for
    either protocol; it may be None only with ``exporter="blackhole"``. Files (log, pid
    file) go to ``tmp_path``. Returns a started ``RotelProcess``, usable as a context
    manager; ``extra_args`` are appended to the command line.
    """
    if exporter == "otlp" and not export_endpoint:
        raise ValueError("export_endpoint is required with the otlp exporter")
    if export_protocol not in ("http", "grpc"):
        raise ValueError(f"export_protocol must be 'http' or 'grpc', not {export_protocol!r}")
    if exporter not in ("otlp", "blackhole"):
        raise ValueError(f"exporter must be 'otlp' or 'blackhole', not {exporter!r}")
    tmp_path.mkdir(parents=True, exist_ok=True)
    grpc_port, http_port = free_port(), free_port()
    while http_port == grpc_port:
        http_port = free_port()
    name = f"rotel-{grpc_port}"
    args = [
        str(rotel_agent_path()),
        "start",
        "--otlp-grpc-endpoint", f"{HOST}:{grpc_port}",
        "--otlp-http-endpoint", f"{HOST}:{http_port}",
        "--pid-file", str(tmp_path / f"{name}.pid"),
        "--log-file", str(tmp_path / f"{name}.daemon.log"),
        "--batch-timeout", batch_timeout,
        "--exporter", exporter,
    ]
    if exporter == "otlp":
        args += [
            "--otlp-exporter-endpoint", export_endpoint,
            "--otlp-exporter-protocol", export_protocol,
            "--otlp-exporter-retry-initial-backoff", "100ms",
            "--otlp-exporter-retry-max-backoff", "1s",
        ]
    args += list(extra_args)
    process = RotelProcess(
        args, grpc_port=grpc_port, http_port=http_port, log_path=tmp_path / f"{name}.log", startup_timeout=startup_timeout
    )
    return process.start()


class PhoenixProcess(StopsOnExit):
    """A running ``phoenix serve``; see ``start_phoenix``. Stopping twice is harmless."""

    def __init__(self, process: subprocess.Popen, *, port: int, grpc_port: int, working_dir: Path, log_path: Path):
        self._process = process
        self.port = port
        self.grpc_port = grpc_port
        self.working_dir = working_dir
        self.log_path = log_path

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def otlp_http_endpoint(self) -> str:
        """Where OTLP/HTTP protobuf spans go (``url + "/v1/traces"``)."""
        return self.url + "/v1/traces"

    @property
    def pid(self) -> int:
        return self._process.pid

    def get_json(self, path: str, **params) -> dict | None:
        """GET ``path`` with query ``params``; the decoded JSON, or None on 404."""
        query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
        url = f"{self.url}{path}" + (f"?{query}" if query else "")
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return json.load(response)
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise

    def _paginate(self, path: str, **params) -> list[dict]:
        items: list[dict] = []
        cursor = None
        while True:
            page = self.get_json(path, cursor=cursor, **params)
            if page is None:
                return items
            items.extend(page["data"])
            cursor = page.get("next_cursor")
            if not cursor:
                return items

    def spans(self, project: str = "default", **filters) -> list[dict]:
        """Every span of ``project`` (newest first), following pagination; [] if the project does not exist yet.

        ``filters`` are passed as query parameters, e.g. ``trace_id=...`` or ``name=...``.
        """
        return self._paginate(f"/v1/projects/{urllib.parse.quote(project, safe='')}/spans", limit=1000, **filters)

    def sessions(self, project: str = "default") -> list[dict]:
        """Every session of ``project`` with its traces; [] if the project does not exist yet."""
        return self._paginate(f"/v1/projects/{urllib.parse.quote(project, safe='')}/sessions", limit=1000)

    def session(self, session_id: str) -> dict | None:
        """One session by its ``session.id`` value (in any project), or None."""
        page = self.get_json(f"/v1/sessions/{urllib.parse.quote(session_id, safe='')}")
        return page["data"] if page else None

    def projects(self) -> list[dict]:
        """Every project (``{"name", "description", "id"}``)."""
        return self._paginate("/v1/projects")

    def stop(self) -> None:
        """Stop Phoenix (SIGTERM, then SIGKILL after 15 s)."""
        stop_process(self._process, timeout=15)

    def log(self) -> str:
        return log_tail(self.log_path, lines=10_000)


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def start_phoenix(tmp_path: Path, *, startup_timeout: float = 90.0, extra_env: dict[str, str] | None = None) -> PhoenixProcess:
    """Start ``phoenix serve`` on 127.0.0.1 (free HTTP and gRPC ports, SQLite under ``tmp_path``).

    Runs Phoenix with the interpreter running the tests (``sys.executable -m
    phoenix.server.main serve``), with telemetry to Arize disabled, and waits until
    ``/healthz`` answers. ``extra_env`` adds ``PHOENIX_*`` settings (e.g. authentication).
    Returns a ``PhoenixProcess``, usable as a context manager.
    """
    working_dir = tmp_path / "phoenix"
    working_dir.mkdir(parents=True, exist_ok=True)
    port, grpc_port = free_port(), free_port()
    while grpc_port == port:
        grpc_port = free_port()
    env = _clean_env("PHOENIX_")
    env.update(
        PHOENIX_HOST=HOST,
        PHOENIX_PORT=str(port),
        PHOENIX_GRPC_PORT=str(grpc_port),
        PHOENIX_WORKING_DIR=str(working_dir),
        PHOENIX_TELEMETRY_ENABLED="false",
    )
    env.update(extra_env or {})
    log_path = tmp_path / "phoenix.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "phoenix.server.main", "serve"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    phoenix = PhoenixProcess(process, port=port, grpc_port=grpc_port, working_dir=working_dir, log_path=log_path)
    try:
        deadline = time.monotonic() + startup_timeout
        while not _healthy(phoenix.url):
            if process.poll() is not None:
                raise RuntimeError(f"phoenix exited with {process.returncode}")
            if time.monotonic() >= deadline:
                raise TimeoutError(f"phoenix not ready within {startup_timeout}s")
            time.sleep(0.2)
    except Exception as exc:
        phoenix.stop()
        raise RuntimeError(f"phoenix did not start: {exc}\n{log_tail(log_path)}") from exc
    return phoenix


class OtlpSink:
    """An OTLP/HTTP trace receiver keeping every span and the request headers."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.spans: list = []  # opentelemetry.proto Span messages
        self.resources: list = []
        self.headers: list[dict[str, str]] = []
        self.bodies: list[bytes] = []  # decompressed request bodies, exactly as received
        self.paths: list[str] = []  # the request path of each POST
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> OtlpSink:
        sink = self

        class Handler(OtlpHttpHandler):
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
                    sink.bodies.append(body)
                    sink.paths.append(self.path)
                    sink.headers.append({k.lower(): v for k, v in self.headers.items()})
                    for rs in request.resource_spans:
                        for ss in rs.scope_spans:
                            for span in ss.spans:
                                sink.spans.append(span)
                                sink.resources.append(rs.resource)
                self.answer(200)

        self._server = serve_http(Handler, self.port)
        return self

    def stop(self) -> None:
        if self._server is not None:
            stop_http(self._server)
            self._server = None

    def count(self) -> int:
        with self._lock:
            return len(self.spans)

    def names(self) -> list[str]:
        with self._lock:
            return [span.name for span in self.spans]
