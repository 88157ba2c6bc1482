"""Load against a real ``otel-lunary bridge`` process (no tests here): many clients at once,
large bodies in parallel, slow sockets. Used by tests/test_bridge_load.py (which asserts
what a user relies on) and bench/bridge_bench.py (which reports the figures).

Each client opens a new connection per request, as the Python Lunary SDK does
(``requests.post`` without a session), so the listen backlog is exercised too.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from helpers import REPO

KEY = "pk-load"
INGEST = "/v1/runs/ingest"


@dataclass
class BridgeUnderLoad:
    url: str
    process: subprocess.Popen

    @property
    def host_port(self) -> tuple[str, int]:
        host, port = self.url.removeprefix("http://").rsplit(":", 1)
        return host, int(port)

    def rss_mb(self) -> float:
        return psutil.Process(self.process.pid).memory_info().rss / 2**20

    def threads(self) -> int:
        return psutil.Process(self.process.pid).num_threads()

    def health(self) -> dict:
        host, port = self.host_port
        conn = http.client.HTTPConnection(host, port, timeout=30)
        try:
            conn.request("GET", "/healthz")
            return json.loads(conn.getresponse().read())
        finally:
            conn.close()


@contextmanager
def bridge_command(tmp: Path, *extra: str, pythonpath: str | None = None) -> Iterator[BridgeUnderLoad]:
    """``otel-lunary bridge`` on a free port, file exporter in ``tmp``, stopped with SIGTERM at the end."""
    url_file = tmp / "bridge.url"
    env = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_")}
    env["PYTHONPATH"] = pythonpath or str(REPO)
    with open(tmp / "bridge.log", "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "otel_lunary", "bridge", "--port", "0", "--keys", f"{KEY}=load", "--state", str(tmp / "state.sqlite"),
             "--exporter", "file", "--file", str(tmp / "spans.jsonl"), "--url-file", str(url_file), *extra],
            env=env, cwd=tmp, stdout=log, stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 30
            while not (url_file.exists() and url_file.read_text().strip()):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"bridge did not start: {(tmp / 'bridge.log').read_text()[-2000:]}")
                time.sleep(0.05)
            yield BridgeUnderLoad(url_file.read_text().strip(), process)
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def small_body(events: int = 5) -> bytes:
    thread = str(uuid.uuid4())
    return json.dumps({"events": [
        {"event": "chat", "type": "thread", "runId": str(uuid.uuid4()), "parentRunId": thread, "timestamp": 1795924374366,
         "runtime": "lunary-js", "message": {"role": "user" if i % 2 == 0 else "assistant", "content": f"message {i}"}}
        for i in range(events)
    ]}).encode()


def large_body(size: int) -> bytes:
    """About ``size`` bytes: a few events whose content makes up the bulk (cheap to ingest, big to hold)."""
    pieces = 5
    content = "x" * ((size - 2000) // pieces)
    thread = str(uuid.uuid4())
    return json.dumps({"events": [
        {"event": "chat", "type": "thread", "runId": str(uuid.uuid4()), "parentRunId": thread, "timestamp": 1795924374366,
         "message": {"role": "user", "content": content}} for _ in range(pieces)
    ]}).encode()


@dataclass
class LoadResult:
    statuses: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)  # exception class name -> count (ConnectionResetError...)
    latencies_ms: list[float] = field(default_factory=list)
    elapsed_s: float = 0.0

    def p(self, quantile: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(len(ordered) * quantile))] if ordered else float("nan")


def _post(host: str, port: int, body: bytes, timeout: float) -> int:
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("POST", INGEST, body=body, headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def many_clients(bridge: BridgeUnderLoad, clients: int, requests: int, bodies: list[bytes] | None = None, timeout: float = 60) -> LoadResult:
    """``clients`` threads start together and each sends ``requests`` posts, a new connection each."""
    host, port = bridge.host_port
    result = LoadResult()
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)

    def client(index: int) -> None:
        start.wait()
        for n in range(requests):
            body = bodies[(index * requests + n) % len(bodies)] if bodies else small_body()
            began = time.perf_counter()
            try:
                status = _post(host, port, body, timeout)
                with lock:
                    result.statuses[status] += 1
                    result.latencies_ms.append((time.perf_counter() - began) * 1000)
            except Exception as problem:  # noqa: BLE001 - counted, that is the measurement
                with lock:
                    result.errors[type(problem).__name__] += 1

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    result.elapsed_s = time.perf_counter() - began
    return result


def peak_rss_during(bridge: BridgeUnderLoad, work: threading.Thread, interval_s: float = 0.01) -> float:
    """Start ``work`` and sample the bridge's RSS until it finishes; the peak in MiB."""
    peak = bridge.rss_mb()
    work.start()
    while work.is_alive():
        peak = max(peak, bridge.rss_mb())
        time.sleep(interval_s)
    return max(peak, bridge.rss_mb())


def open_slow_sockets(bridge: BridgeUnderLoad, count: int) -> list[socket.socket]:
    """Connections that send half a request head and then nothing (slowloris)."""
    host, port = bridge.host_port
    sockets = []
    for _ in range(count):
        sock = socket.create_connection((host, port), timeout=10)
        sock.sendall(b"POST /v1/runs/ingest HTTP/1.1\r\nHost: bridge\r\nAuthorization: Bearer ")
        sockets.append(sock)
    return sockets


def closed_by_server(sockets: list[socket.socket], timeout_s: float) -> int:
    """How many of ``sockets`` the server closed (EOF or reset) within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    closed = 0
    for sock in sockets:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            if sock.recv(1) == b"":
                closed += 1
        except (ConnectionResetError, BrokenPipeError):
            closed += 1
        except OSError:
            pass
    return closed
