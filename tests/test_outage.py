"""Collector down or silent: tracking stays fast, memory bounded, losses counted, exit prompt."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import otel_lunary as lunary
from otel_lunary import _health, export
from otel_lunary.export import ExportOptions, build_tracer_provider
from helpers.servers import OtlpSink, poll_until, start_rotel

REPO = Path(__file__).resolve().parent.parent
# Not a speed assertion (speed is measured in bench/): a call that waited on the network
# would take at least a second (the OTLP exporter's first retry back-off, or the silent
# collector's timeout); half a second leaves room for GC pauses on a loaded CI machine.
NEVER_WAITED_S = 0.5


pytestmark = pytest.mark.usefixtures("clean_otel_env")


@pytest.fixture
def drops() -> None:
    """Drop counts and their rate-limited log line start at zero: both are process-wide."""
    _health.reset()


@pytest.fixture
def silent_collector() -> Iterator[int]:
    """A TCP port on 127.0.0.1 that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(2)
    for conn in held:
        conn.close()
    server.close()


def track_turn(thread: lunary.Thread, i: int) -> float:
    """One user message and its reply (three spans: the turn and its two messages); returns
    the seconds the two calls took."""
    start = time.perf_counter()
    thread.track_message({"role": "user", "content": f"question {i}"})
    thread.track_message({"role": "assistant", "content": f"answer {i}"})
    return time.perf_counter() - start


class TestCollectorOutage:
    def test_outage_never_blocks_calls_and_counts_what_overflowed(self, tmp_path: Path, drops: None, monkeypatch: pytest.MonkeyPatch) -> None:
        """Collector down: calls never wait on it; back up: what fit the queue arrives, the rest is counted."""
        monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "200")
        monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "50")
        monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "60")  # the in-flight batch keeps retrying
        sink = OtlpSink().start()
        rotel = start_rotel(tmp_path / "rotel", export_endpoint=sink.endpoint)
        provider = build_tracer_provider(ExportOptions(endpoint=rotel.http_endpoint))
        lunary.configure(tracer_provider=provider)
        try:
            thread = lunary.open_thread(tags=["outage"])
            for i in range(5):
                track_turn(thread, i)
            assert export.flush(provider, 10.0)
            poll_until(lambda: sink.count() == 15, timeout=20, what="the first spans through rotel")

            rotel.stop()
            slowest = max(track_turn(thread, i) for i in range(5, 1005))  # 3000 spans, queue holds 200
            assert slowest < NEVER_WAITED_S
            assert export.dropped_spans() > 0

            rotel.start()
            assert export.flush(provider, 60.0)
            dropped = export.dropped_spans()
            poll_until(lambda: sink.count() >= 3015 - dropped, timeout=30, what=f"{3015 - dropped} spans at the sink")
            assert 200 <= sink.count() - 15 <= 3000 - export.drop_counts()["queue_full"] + 2  # the queue's worth arrived
            assert export.drop_counts()["export_failed"] == 0
            # The SDK checks "queue full" and appends without a lock, so a drop racing the
            # worker's pop can be counted for a span that was kept: allow a couple.
            assert 3015 <= sink.count() + export.dropped_spans() <= 3017
        finally:
            lunary.shutdown()
            export.shutdown(provider, 2.0)
            rotel.stop()
            sink.stop()


class TestSilentCollector:
    @pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
    def test_flush_and_shutdown_return_within_their_timeout(self, protocol: str, silent_collector: int, drops: None) -> None:
        """A collector that never answers cannot hold flush(1s) or shutdown(1s) past ~2 s."""
        provider = build_tracer_provider(ExportOptions(endpoint=f"http://127.0.0.1:{silent_collector}", protocol=protocol))
        lunary.configure(tracer_provider=provider)
        try:
            thread = lunary.open_thread()
            for i in range(20):
                assert track_turn(thread, i) < NEVER_WAITED_S
            start = time.monotonic()
            assert export.flush(provider, 1.0) is False
            assert time.monotonic() - start < 2.0
            start = time.monotonic()
            export.shutdown(provider, 1.0)
            assert time.monotonic() - start < 2.0
            assert export.dropped_spans() > 0
        finally:
            lunary.shutdown()

    @pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
    def test_a_process_that_tracks_and_exits_finishes_promptly(self, protocol: str, silent_collector: int) -> None:
        """An app that tracks then exits without shutdown() ends within the exit budget (2 s)."""
        script = textwrap.dedent("""
            import otel_lunary as lunary
            thread = lunary.open_thread(tags=["exit"])
            for i in range(50):
                thread.track_message({"role": "user", "content": "hi"})
            print("tracked", flush=True)
        """)
        env = dict(
            os.environ,
            PYTHONPATH=str(REPO),
            OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{silent_collector}",
            OTEL_EXPORTER_OTLP_PROTOCOL=protocol,
            OTEL_BSP_SCHEDULE_DELAY="50",
        )
        start = time.monotonic()
        done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=30)
        elapsed = time.monotonic() - start
        assert done.returncode == 0, done.stderr
        assert "tracked" in done.stdout
        assert elapsed < 8.0, f"exit took {elapsed:.1f}s"
