"""The HTTP side: ``POST /v1/runs/ingest`` as Lunary's backend answers it, plus CORS.

Served by uvicorn (an ASGI server) with Starlette's request and response types, because
the bridge faces the internet (browser app keys are public) and the standard library's
``http.server`` is not built for that. What an outsider controls is bounded:

- the listen backlog (``BACKLOG``), the number of open connections
  (``--max-connections``: above it requests get 503), a deadline for a request's headers
  (``HEADER_TIMEOUT_S``, so idle or slow sockets are closed) and for its body
  (``BODY_TIMEOUT_S``: 408), keep-alive between requests (``KEEP_ALIVE_S``);
- memory: bodies over ``SMALL_BODY`` share a budget of ``LARGE_BODIES_IN_FLIGHT`` times
  ``--max-body`` bytes; the others wait unread in their sockets (uvicorn stops reading a
  connection whose body is not consumed). Small bodies (what the SDKs send) do not wait
  for it, so clients trickling large bodies cannot hold them up. Bodies are parsed and
  ingested one at a time, on one worker thread, so the event loop keeps accepting and
  answering while a batch is processed;
- a declared body over ``--max-body`` is refused before it is read (413); chunked
  bodies get 411; conflicting ``Content-Length`` headers are a 400 (h11).

Answers: request-level problems get a 4xx and ``{"error": "..."}``; a problem with one
event is reported in its ``results`` entry and the rest of the batch lands. A state file
that cannot be written right now (locked by another process past the busy timeout, disk
full) and a full outbox answer 503 with ``Retry-After``: nothing of that request was
recorded, so a retry is safe. Anything unexpected answers 500 at once.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import socket
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import uvicorn
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from otel_lunary.bridge.config import BridgeConfig
from otel_lunary.bridge.ingest import Ingestor
from otel_lunary.bridge.wire import BodyError, parse_body

logger = logging.getLogger("otel_lunary.bridge")

INGEST_PATH = "/v1/runs/ingest"
HEALTH_PATH = "/healthz"
BACKLOG = 2048
KEEP_ALIVE_S = 10.0
HEADER_TIMEOUT_S = 10.0
BODY_TIMEOUT_S = 30.0
SMALL_BODY = 64 * 1024
LARGE_BODIES_IN_FLIGHT = 4
GRACEFUL_S = 10
# A refused body up to this size is read and dropped before answering, so the client
# (still sending) gets the answer rather than a reset connection; larger ones are cut.
DISCARD_LIMIT = 8 * 1024 * 1024
RETRY_AFTER_S = 2
# The /healthz counters one request moves (maintenance moves "unfinished" on its own).
_REQUEST_COUNTS = ("events", "rejected", "duplicates")


class Refused(Exception):
    """A request answered with ``status`` and ``{"error": message}``."""

    def __init__(self, status: int, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


def store_problem(error: sqlite3.Error) -> str:
    """What an operator should read for a SQLite failure."""
    text = str(error)
    if "locked" in text or "busy" in text:
        return f"the state file is locked by another process ({text}); retry"
    if "full" in text:
        return f"the state file's disk is full ({text}); retry once space is freed"
    if "readonly" in text:
        return f"the state file is read-only ({text})"
    return f"the state file failed: {text}"


class Ingestion:
    """Parses and ingests one body at a time (the worker thread's side), and keeps the
    health that ``/healthz`` reports."""

    def __init__(self, config: BridgeConfig, ingestor: Ingestor, backlog: Callable[[], int] | None) -> None:
        self.config = config
        self.ingestor = ingestor
        self.backlog = backlog
        self.store_error: str | None = None

    def __call__(self, project: str, key: str, body: bytes) -> list[dict[str, Any]]:
        try:
            events = parse_body(body)
        except BodyError as problem:
            raise Refused(400, str(problem)) from None
        if len(events) > self.config.max_events:
            raise Refused(413, f"{len(events)} events is over the {self.config.max_events}-event limit")
        counted = {name: self.ingestor.counts[name] for name in _REQUEST_COUNTS}
        try:
            if self.backlog is not None and self.backlog() >= self.config.max_pending:
                raise Refused(503, f"{self.config.max_pending} spans are waiting for the exporter; retry later", retry_after=RETRY_AFTER_S * 5)
            results = self.ingestor.ingest(project, key, events)
        except sqlite3.Error as problem:
            self.ingestor.counts.update(counted)  # rolled back: nothing of it was recorded
            self.store_error = store_problem(problem)
            logger.warning("otel-lunary bridge: request not recorded: %s", self.store_error)
            raise Refused(503, self.store_error, retry_after=RETRY_AFTER_S) from None
        self.store_error = None
        return results


class ByteBudget:
    """Bytes of request bodies allowed in memory at once; ``take`` waits, in arrival order,
    until they fit (one body alone always fits). Used on the event loop only."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._waiting: collections.deque[tuple[int, asyncio.Future[None]]] = collections.deque()

    async def take(self, amount: int) -> None:
        if amount <= 0:
            return
        if not self._waiting and self._fits(amount):
            self.used += amount
            return
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((amount, granted))
        try:
            await granted
        except BaseException:
            if granted.done() and not granted.cancelled():
                self.give(amount)  # granted just as the waiter went away: hand it back
            elif (amount, granted) in self._waiting:
                self._waiting.remove((amount, granted))
            raise

    def give(self, amount: int) -> None:
        if amount <= 0:
            return
        self.used -= amount
        while self._waiting and self._fits(self._waiting[0][0]):
            wanted, granted = self._waiting.popleft()
            if granted.done():  # its request went away meanwhile
                continue
            self.used += wanted
            granted.set_result(None)

    def _fits(self, amount: int) -> bool:
        return self.used + amount <= self.limit or self.used == 0


class BridgeApp:
    """The ASGI application: routes, auth, CORS, body limits, then ``Ingestion`` on a worker thread."""

    def __init__(self, config: BridgeConfig, ingestion: Ingestion, health: Callable[[], dict[str, Any]]) -> None:
        self.config = config
        self.ingestion = ingestion
        self.health = health
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="otel-lunary-bridge-ingest")
        self.large_bodies = ByteBudget(LARGE_BODIES_IN_FLIGHT * config.max_body_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        try:
            response = await self._route(request)
        except Refused as refused:
            response = await self._refuse(request, refused)
        except Exception:  # noqa: BLE001 - nothing takes the server down, and nothing waits
            logger.warning("otel-lunary bridge: internal error", exc_info=True)
            response = self._json(request, 500, {"error": "internal error"}, close=True)
        await response(scope, receive, send)

    # --- responses -----------------------------------------------------------------------
    def _cors(self, request: Request) -> dict[str, str]:
        allowed = self.config.allows_origin(request.headers.get("origin"))
        if allowed is None:
            return {}
        return {"Access-Control-Allow-Origin": allowed} if allowed == "*" else {"Access-Control-Allow-Origin": allowed, "Vary": "Origin"}

    def _json(self, request: Request, status: int, payload: Any, *, close: bool = False, headers: dict[str, str] | None = None) -> Response:
        extra = {**self._cors(request), **(headers or {})}
        if close:
            extra["Connection"] = "close"
        return Response(json.dumps(payload), status, headers=extra, media_type="application/json")

    async def _refuse(self, request: Request, refused: Refused) -> Response:
        close = request.method == "POST" and not getattr(request.state, "body_read", False)
        if close and not getattr(request.state, "abandoned", False):
            await self._discard(request)
        headers = {"Retry-After": str(refused.retry_after)} if refused.retry_after is not None else None
        return self._json(request, refused.status, {"error": str(refused)}, close=close, headers=headers)

    async def _discard(self, request: Request) -> None:
        """Read and drop a refused body (up to ``DISCARD_LIMIT``, briefly) so the client sees the answer."""
        try:
            declared = int(request.headers.get("content-length") or 0)
        except ValueError:
            return
        if declared > DISCARD_LIMIT:
            return

        async def drain() -> None:
            async for _ in request.stream():
                pass

        try:
            await asyncio.wait_for(drain(), 5.0)
        except (asyncio.TimeoutError, ClientDisconnect, RuntimeError):
            pass

    # --- routes --------------------------------------------------------------------------
    async def _route(self, request: Request) -> Response:
        path = request.url.path.rstrip("/") or "/"
        if path == HEALTH_PATH and request.method == "GET":
            health = self.health()
            return self._json(request, 200 if health["ok"] else 503, health)
        if path != INGEST_PATH:
            raise Refused(404, f"no route {path}")
        if request.method == "OPTIONS":
            return self._preflight(request)
        if request.method != "POST":
            raise Refused(405, f"{request.method} is not allowed on {INGEST_PATH}")
        return await self._ingest(request)

    def _preflight(self, request: Request) -> Response:
        allowed = self.config.allows_origin(request.headers.get("origin"))
        if allowed is None:
            raise Refused(403, "origin not allowed")
        headers = {
            **self._cors(request),
            "Access-Control-Allow-Methods": "POST, OPTIONS",
            "Access-Control-Allow-Headers": "Authorization, Content-Type",
            "Access-Control-Max-Age": "600",
        }
        return Response(status_code=204, headers=headers)

    async def _ingest(self, request: Request) -> Response:
        config = self.config
        scheme, _, key = (request.headers.get("authorization") or "").strip().partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            raise Refused(401, "missing Authorization: Bearer <app key>")
        project = config.keys.get(key)
        if project is None:
            raise Refused(401, "unknown app key")
        if "chunked" in (request.headers.get("transfer-encoding") or "").lower():
            raise Refused(411, "send the body with a Content-Length")
        lengths = request.headers.getlist("content-length")
        if len(lengths) > 1:  # h11 already refuses differing ones; equal repeats are refused too
            raise Refused(400, "more than one Content-Length header")
        try:
            length = int(lengths[0]) if lengths else -1
        except ValueError:
            raise Refused(411, "Content-Length required") from None
        if length < 0:
            raise Refused(411, "Content-Length required")
        if length > config.max_body_bytes:
            raise Refused(413, f"body of {length} bytes is over the {config.max_body_bytes}-byte limit")
        share = length if length > SMALL_BODY else 0
        await self.large_bodies.take(share)
        try:
            body = await self._read(request, length)
            request.state.body_read = True
            loop = asyncio.get_running_loop()
            results = await loop.run_in_executor(self.worker, self.ingestion, project, key, body)
        finally:
            self.large_bodies.give(share)
        return self._json(request, 200, {"results": results})

    async def _read(self, request: Request, length: int) -> bytes:
        """The body, at most ``length`` bytes, within ``BODY_TIMEOUT_S``."""
        chunks: list[bytes] = []
        size = 0

        async def read() -> None:
            nonlocal size
            async for chunk in request.stream():
                size += len(chunk)
                if size > length:
                    raise Refused(400, "body longer than its Content-Length")
                chunks.append(chunk)

        try:
            await asyncio.wait_for(read(), BODY_TIMEOUT_S)
        except asyncio.TimeoutError:
            request.state.abandoned = True  # answer and close; waiting for the rest is what the deadline refuses
            raise Refused(408, f"body not received within {BODY_TIMEOUT_S:.0f} s") from None
        except ClientDisconnect:
            request.state.abandoned = True
            raise Refused(400, "client went away before sending its body") from None
        return b"".join(chunks)


class _HeadDeadline:
    """A deadline for each request's head, mixed into uvicorn's HTTP protocols: a connection
    that has not sent a whole request head within ``HEADER_TIMEOUT_S`` of opening (or of its
    previous answer) is closed, so slow or idle sockets cannot pile up. (uvicorn's own
    keep-alive timeout is reset by any byte, so a trickling client defeats it.)"""

    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    _head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)  # type: ignore[misc]

    def on_response_complete(self) -> None:
        self._arm()  # first: a pipelined request handled by super() disarms it again
        super().on_response_complete()  # type: ignore[misc]

    def _arm(self) -> None:
        self._disarm()
        self._head_deadline = self.loop.call_later(HEADER_TIMEOUT_S, self._too_slow)

    def _disarm(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _too_slow(self) -> None:
        self._head_deadline = None
        if not self.transport.is_closing():
            self.transport.close()


class _H11Protocol(_HeadDeadline, H11Protocol):
    def handle_events(self) -> None:
        super().handle_events()
        if self.cycle is not None and not self.cycle.response_complete:
            self._disarm()


def _protocol() -> type[asyncio.Protocol]:
    """httptools' C parser when it is installed (``uvicorn[standard]``), else h11."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:
        return _H11Protocol

    class _HttpToolsProtocol(_HeadDeadline, HttpToolsProtocol):
        def on_headers_complete(self) -> None:
            super().on_headers_complete()
            self._disarm()

    return _HttpToolsProtocol


def listening_socket(host: str, port: int) -> socket.socket:
    """Bound and listening now, so the URL (and a free port's number) is known before serving."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(BACKLOG)
    except OSError:
        sock.close()
        raise
    return sock


class HttpServer:
    """uvicorn serving ``BridgeApp`` on its own thread and event loop; ``start()``/``stop()``."""

    def __init__(self, config: BridgeConfig, app: BridgeApp) -> None:
        self.app = app
        self.socket = listening_socket(config.host, config.port)
        self._uvicorn = uvicorn.Server(
            uvicorn.Config(
                app,
                http=_protocol(),
                lifespan="off",
                log_config=None,
                log_level="warning",
                access_log=False,
                backlog=BACKLOG,
                limit_concurrency=config.max_connections,
                timeout_keep_alive=int(KEEP_ALIVE_S),
                timeout_graceful_shutdown=GRACEFUL_S,
                server_header=False,
                headers=[("server", "otel-lunary-bridge")],
            )
        )
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.socket.getsockname()[:2]
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def start(self, timeout_s: float = 20.0) -> None:
        self._thread = threading.Thread(target=self._serve, name="otel-lunary-bridge-http", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._uvicorn.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the bridge's HTTP server did not start")
            time.sleep(0.01)

    def _serve(self) -> None:
        asyncio.run(self._uvicorn.serve(sockets=[self.socket]))

    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        """Stop accepting, let requests under way finish (``GRACEFUL_S`` at most), close."""
        self._uvicorn.should_exit = True
        if self._thread is not None:
            self._thread.join(GRACEFUL_S + 5)
        self.socket.close()
        self.app.worker.shutdown(wait=True)


class Maintenance(threading.Thread):
    """Ends turns and closes runs past their timeouts and prunes the store, until stopped."""

    def __init__(self, ingestor: Ingestor, interval_s: float, ingestion: Ingestion) -> None:
        super().__init__(name="otel-lunary-bridge-maintenance", daemon=True)
        self.ingestor = ingestor
        self.interval_s = interval_s
        self.ingestion = ingestion
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval_s):
            self.pass_once()

    def pass_once(self) -> None:
        """One pass; each step is tried on its own, so a failing one does not stop the other."""
        steps: list[tuple[str, Callable[[], object]]] = [
            ("closing turns and runs past their timeouts", self.ingestor.close_stale_runs),
            ("pruning the state", self.ingestor.store.prune),
        ]
        for what, step in steps:
            try:
                step()
            except sqlite3.Error as problem:
                self.ingestion.store_error = store_problem(problem)
                logger.warning("otel-lunary bridge: %s failed: %s", what, self.ingestion.store_error)
            except Exception:  # noqa: BLE001
                logger.warning("otel-lunary bridge: %s failed", what, exc_info=True)
