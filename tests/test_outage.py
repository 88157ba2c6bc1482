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
# The OTLP exporter's timeout in the silent-collector tests: an export stuck on that
# collector stays in flight this long, and a flush or shutdown that waited for it would
# take this long, far beyond their own 1 s deadline even on a loaded machine.
STUCK_EXPORT_S = 60.0

# "Never waits on the network" is checked by what ran where, not by how long calls took
# (a loaded CI machine can pause any call): the exporter's export() never runs on the
# thread making tracking calls, that thread opens no connection while it makes them
# (socket audit events, Python's own record of every connect and name lookup), and in
# the silent-collector tests the calls all return while an export is stuck in flight.
_SOCKET_EVENTS = frozenset({"socket.connect", "socket.getaddrinfo", "socket.sendto", "socket.sendmsg"})
_watches: list[NetworkWatch] = []


def _audit(event: str, args: tuple[object, ...]) -> None:
    # An audit hook runs inside every audited operation of the process and must not raise.
    if event in _SOCKET_EVENTS and _watches:
        ident = threading.get_ident()
        for watch in list(_watches):
            watch.socket_events.append((ident, watch.watching_calls))


sys.addaudithook(_audit)  # cannot be removed: it only records while a NetworkWatch is open


class NetworkWatch:
    """Which threads ran the exporters' ``export()`` and opened sockets, while open."""

    def __init__(self, provider: object) -> None:
        self.app_thread = threading.get_ident()
        self.export_threads: set[int] = set()
        self.in_flight = 0
        self.export_started = threading.Event()
        self.socket_events: list[tuple[int, bool]] = []  # (thread, during the watched calls)
        self.watching_calls = False
        for processor in export.processor._processors[provider]:
            self._observe(processor.counting_exporter.inner)

    def _observe(self, exporter: object) -> None:
        """Record the thread of each export() call of the real exporter, which still runs it."""
        original = exporter.export  # type: ignore[attr-defined]

        def export_observed(spans: object) -> object:
            self.export_threads.add(threading.get_ident())
            self.in_flight += 1
            self.export_started.set()
            try:
                return original(spans)
            finally:
                self.in_flight -= 1

        exporter.export = export_observed  # type: ignore[attr-defined]

    def __enter__(self) -> NetworkWatch:
        _watches.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _watches.remove(self)

    def calls(self) -> NetworkWatch:
        """``with watch.calls():`` around the tracking calls under test."""
        return _CallWindow(self)  # type: ignore[return-value]

    def app_thread_socket_events(self) -> int:
        return sum(1 for ident, during in self.socket_events if during and ident == self.app_thread)

    def exporter_socket_events(self) -> int:
        return sum(1 for ident, _ in self.socket_events if ident != self.app_thread)


class _CallWindow:
    def __init__(self, watch: NetworkWatch) -> None:
        self.watch = watch

    def __enter__(self) -> None:
        self.watch.watching_calls = True

    def __exit__(self, *exc: object) -> None:
        self.watch.watching_calls = False


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


def track_turn(thread: lunary.Thread, i: int) -> None:
    """One user message and its reply (three spans: the turn and its two messages)."""
    thread.track_message({"role": "user", "content": f"question {i}"})
    thread.track_message({"role": "assistant", "content": f"answer {i}"})


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
        watch = NetworkWatch(provider).__enter__()
        try:
            thread = lunary.open_thread(tags=["outage"])
            for i in range(5):
                track_turn(thread, i)
            assert export.flush(provider, 10.0)
            poll_until(lambda: sink.count() == 15, timeout=20, what="the first spans through rotel")

            rotel.stop()
            with watch.calls():
                for i in range(5, 1005):  # 3000 spans, queue holds 200
                    track_turn(thread, i)
            assert watch.app_thread_socket_events() == 0  # no call connected or looked a name up
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
            # Every export, failed or not, ran off the calling thread, and the audit saw the
            # exporter's own connections (so it would have seen a call's).
            assert watch.export_threads and watch.app_thread not in watch.export_threads
            assert watch.exporter_socket_events() > 0
        finally:
            watch.__exit__()
            lunary.shutdown()
            export.shutdown(provider, 2.0)
            rotel.stop()
            sink.stop()


class TestSilentCollector:
    @pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
    def test_calls_return_while_an_export_is_stuck_and_flush_and_shutdown_keep_their_timeout(
        self, protocol: str, silent_collector: int, drops: None, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A collector that never answers: an export hangs on it for the exporter's 60 s,
        tracking calls meanwhile all return, and flush(1s)/shutdown(1s) return near their
        1 s deadline instead of waiting out the export."""
        monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
        endpoint = f"http://127.0.0.1:{silent_collector}"
        provider = build_tracer_provider(ExportOptions(endpoint=endpoint, protocol=protocol, timeout_s=STUCK_EXPORT_S))
        lunary.configure(tracer_provider=provider)
        with NetworkWatch(provider) as watch:
            try:
                thread = lunary.open_thread()
                track_turn(thread, 0)
                assert watch.export_started.wait(20), "the first export never started"
                with watch.calls():
                    for i in range(1, 21):
                        track_turn(thread, i)
                    assert watch.in_flight == 1  # every call returned while the export was stuck
                assert watch.app_thread_socket_events() == 0
                assert watch.app_thread not in watch.export_threads
                start = time.monotonic()
                assert export.flush(provider, 1.0) is False
                assert time.monotonic() - start < STUCK_EXPORT_S / 4
                start = time.monotonic()
                export.shutdown(provider, 1.0)
                assert time.monotonic() - start < STUCK_EXPORT_S / 4
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
