"""Faults around the bridge: a state file locked by another process, a full disk, a crash,
an internal error. Each test makes the fault for real first (a second process holding
SQLite's write lock, an 8 MiB tmpfs, ``kill -9``), then checks what the bridge promised:
a retryable answer, nothing recorded twice, nothing acknowledged lost."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from otel_lunary.attributes import LUNARY_MESSAGE_ID
from helpers.servers import OtlpSink, free_port, poll_until
from helpers import REPO
from helpers.bridge import APP_KEY, RunningBridge
from helpers.tmpfs import tmpfs_or_skip

INGEST = "/v1/runs/ingest"
AUTH = {"Authorization": f"Bearer {APP_KEY}", "Content-Type": "application/json"}


def chat(run_id: str, content: str = "hi") -> dict:
    return {"event": "chat", "type": "thread", "runId": run_id, "parentRunId": "thread-f", "timestamp": 1795924374366,
            "message": {"role": "user", "content": content}}


def spans_of_questions(count: int) -> int:
    """Spans recorded for ``count`` user messages in a row on one thread: each message, and
    the turn span of every one but the last (the next question ends it; the last waits)."""
    return 2 * count - 1


def post(url: str, events: list[dict], timeout: float = 30) -> httpx.Response:
    return httpx.post(url + INGEST, headers=AUTH, content=json.dumps({"events": events}), timeout=timeout)


def message_ids(bridge: RunningBridge) -> list[str]:
    return [span.attributes[LUNARY_MESSAGE_ID] for span in bridge.spans() if LUNARY_MESSAGE_ID in (span.attributes or {})]


# A second process that takes SQLite's write lock on the state file and holds it until told.
LOCKER = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.readline()
db.execute("ROLLBACK")
"""


def test_a_locked_state_file_answers_503_and_the_bridge_recovers(tmp_path: Path) -> None:
    """Another process holding the write lock past the busy timeout: 503 + Retry-After, /healthz not ok; once released, the bridge ingests again."""
    state = tmp_path / "state.sqlite"
    bridge = RunningBridge(state, state_busy_timeout_s=0.3)
    locker = subprocess.Popen([sys.executable, "-c", LOCKER, str(state)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert locker.stdout is not None and locker.stdout.readline().strip() == "locked"
        for attempt in range(2):  # a second failure too: the first one must not leave anything held
            refused = post(bridge.url, [chat(f"while-locked-{attempt}")])
            assert refused.status_code == 503, refused.text
            assert "locked" in refused.json()["error"]
            assert int(refused.headers["retry-after"]) >= 1
        health = httpx.get(bridge.url + "/healthz", timeout=10)
        assert health.status_code == 503 and health.json()["ok"] is False
        assert locker.stdin is not None
        locker.stdin.write("\n")
        locker.stdin.flush()
        assert locker.wait(timeout=20) == 0
        answer = post(bridge.url, [chat("after-unlock")])
        assert answer.status_code == 200 and answer.json()["results"][0]["success"] is True
        assert bridge.bridge.flush(20)
        assert message_ids(bridge) == ["after-unlock"]  # nothing of the refused requests was recorded
        assert httpx.get(bridge.url + "/healthz", timeout=10).json()["ok"] is True
    finally:
        if locker.poll() is None:
            locker.kill()
            locker.wait()
        bridge.close()


class TestErrorsAnswerAtOnce:
    def test_deeply_nested_body_is_a_400_with_a_reason(self, tmp_path: Path) -> None:
        """100,000 nested lists (a RecursionError in the parser) are refused with 400 at once; the next request lands."""
        bridge = RunningBridge(tmp_path / "state.sqlite")
        try:
            body = b'{"events": [' + b"[" * 100_000 + b"]" * 100_000 + b"]}"
            answer = httpx.post(bridge.url + INGEST, headers=AUTH, content=body, timeout=10)
            assert answer.status_code == 400
            assert "nested too deeply" in answer.json()["error"]
            assert post(bridge.url, [chat("after-nesting")], timeout=10).json()["results"][0]["success"] is True
        finally:
            bridge.close()

    def test_an_internal_error_is_a_500_answered_at_once(self, tmp_path: Path) -> None:
        """An unexpected exception while ingesting answers 500 within seconds (not a 30 s stall and a dropped connection)."""
        bridge = RunningBridge(tmp_path / "state.sqlite")

        def broken(*args: object) -> list:
            raise RuntimeError("injected fault")

        try:
            bridge.bridge.ingestor.ingest = broken  # type: ignore[method-assign]
            with httpx.Client(timeout=5) as client:  # a stall past 5 s fails here
                answer = client.post(bridge.url + INGEST, headers=AUTH, content=json.dumps({"events": [chat("x")]}))
                assert answer.status_code == 500
                assert answer.json() == {"error": "internal error"}
        finally:
            bridge.close()


@pytest.fixture
def small_disk(tmp_path: Path):
    """A real 8 MiB tmpfs (root can mount one); the test is skipped where mounting is not allowed."""
    with tmpfs_or_skip(tmp_path / "disk", "8m") as mount_point:
        yield mount_point


def fill(directory: Path) -> Path:
    """Write a file until the filesystem refuses more (ENOSPC)."""
    filler = directory / "filler"
    with open(filler, "wb", buffering=0) as handle:
        try:
            while True:
                handle.write(b"\0" * 4096)
        except OSError:
            pass
    return filler


def test_disk_full_rolls_back_and_the_retry_records_once(small_disk: Path) -> None:
    """On a full disk the request gets 503 and emits no span; after space is freed the client's retry records each event exactly once."""
    bridge = RunningBridge(small_disk / "state.sqlite", state_busy_timeout_s=0.5)
    try:
        assert post(bridge.url, [chat("before-full")]).status_code == 200
        assert bridge.bridge.flush(20)
        filler = fill(small_disk)
        batch = [chat(f"on-full-disk-{i}", content="x" * 10_000) for i in range(100)]  # each question is kept three times: its span, its turn span, the open turn run
        refused = post(bridge.url, batch)
        assert refused.status_code == 503, refused.text
        assert "full" in refused.json()["error"] and "retry-after" in refused.headers
        assert httpx.get(bridge.url + "/healthz", timeout=10).json()["ok"] is False
        assert bridge.bridge.flush(20)  # a span wrongly spooled would be delivered by now
        assert message_ids(bridge) == ["before-full"]
        filler.unlink()
        retried = post(bridge.url, batch)
        assert retried.status_code == 200 and all(result["success"] for result in retried.json()["results"])
        assert bridge.bridge.flush(20)
        ids = message_ids(bridge)
        assert sorted(ids) == sorted(["before-full"] + [event["runId"] for event in batch])
        assert httpx.get(bridge.url + "/healthz", timeout=10).json()["events"] == 1 + len(batch)  # the refused attempt is not counted
    finally:
        bridge.close()


class BridgeCommand:
    """``otel-lunary bridge`` in a subprocess exporting over OTLP/HTTP to ``endpoint``."""

    def __init__(self, tmp: Path, name: str, endpoint: str) -> None:
        url_file = tmp / f"{name}.url"
        env = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_")}
        env.update(PYTHONPATH=str(REPO), OTEL_EXPORTER_OTLP_TIMEOUT="2")
        self.log = open(tmp / f"{name}.log", "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "otel_lunary", "bridge", "--port", "0", "--keys", f"{APP_KEY}=demo", "--state", str(tmp / "state.sqlite"),
             "--exporter", "otlp", "--endpoint", endpoint, "--url-file", str(url_file)],
            env=env, cwd=tmp, stdout=self.log, stderr=subprocess.STDOUT,
        )
        self.url = poll_until(lambda: url_file.exists() and url_file.read_text().strip(), timeout=30, what="the bridge to listen")

    def health(self) -> dict:
        return httpx.get(self.url + "/healthz", timeout=10).json()

    def stop(self, sig: int = signal.SIGTERM) -> None:
        self.process.send_signal(sig)
        self.process.wait(timeout=30)
        self.log.close()


def test_kill_9_after_200_and_a_resend_lose_nothing_and_duplicate_nothing(tmp_path: Path) -> None:
    """Events answered 200 while the collector is down survive a kill -9; the restarted bridge exports each once, and the client's resend is a duplicate."""
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens here: the export cannot happen yet
    batch = [chat(f"acked-{i}-{uuid.uuid4()}") for i in range(30)]
    first = BridgeCommand(tmp_path, "first", down)
    try:
        answer = post(first.url, batch)
        assert answer.status_code == 200 and all(result["success"] for result in answer.json()["results"])
        assert first.health()["pending"] == spans_of_questions(len(batch))
    finally:
        first.stop(signal.SIGKILL)
    assert first.process.returncode == -signal.SIGKILL

    sink = OtlpSink().start()
    second = BridgeCommand(tmp_path, "second", sink.endpoint)
    try:
        resent = post(second.url, batch)  # what the JS SDK does with a batch whose answer it never read
        assert all(result["success"] for result in resent.json()["results"])
        wanted = sorted(event["runId"] for event in batch)

        def delivered() -> list[str]:
            return sorted(kv.value.string_value for span in list(sink.spans) for kv in span.attributes if kv.key == LUNARY_MESSAGE_ID)

        poll_until(lambda: second.health()["pending"] == 0 and delivered() == wanted, timeout=60, what="each acknowledged event exactly once")
        assert second.health()["duplicates"] == len(batch)
    finally:
        second.stop()
        sink.stop()
    assert second.process.returncode == 0


def test_collector_down_spans_wait_on_disk_up_to_the_bound(tmp_path: Path) -> None:
    """With the collector down, acknowledged spans wait in the outbox; at --max-pending new requests get 503 + Retry-After instead of a promise the bridge cannot keep."""
    from otel_lunary import export
    from otel_lunary.bridge import Bridge, resolve_config

    config = resolve_config(keys=f"{APP_KEY}=demo", port=0, state_path=str(tmp_path / "state.sqlite"), max_pending=10)
    options = export.ExportOptions(exporter="otlp", endpoint=f"http://127.0.0.1:{free_port()}", timeout_s=1)
    bridge = Bridge(config, export_options=options).start()
    try:
        accepted = post(bridge.url, [chat(f"waiting-{i}") for i in range(10)])
        assert accepted.status_code == 200
        refused = post(bridge.url, [chat("one-too-many")])
        assert refused.status_code == 503 and "waiting for the exporter" in refused.json()["error"]
        assert int(refused.headers["retry-after"]) >= 1
        health = httpx.get(bridge.url + "/healthz", timeout=10).json()
        assert health["pending"] == spans_of_questions(10) and health["events"] == 10
        poll_until(lambda: httpx.get(bridge.url + "/healthz", timeout=10).json().get("export_error"), timeout=30, what="the export failure in /healthz")
    finally:
        bridge.close(timeout_s=0.5)
    assert sqlite3.connect(tmp_path / "state.sqlite").execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == spans_of_questions(10)  # kept for the next start
