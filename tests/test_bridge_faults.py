"""Faults around the bridge: a state file locked by another process, a full disk, a crash,
an internal error. Each test makes the fault for real first (a second process holding
SQLite's write lock, a 1 MiB tmpfs, ``kill -9``), then checks what the bridge promised:
a retryable answer, nothing recorded twice, nothing acknowledged lost."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from otel_lunary.attributes import LUNARY_MESSAGE_ID
from servers import OtlpSink, free_port, poll_until
from test_bridge_support import APP_KEY, REPO, RunningBridge

INGEST = "/v1/runs/ingest"
AUTH = {"Authorization": f"Bearer {APP_KEY}", "Content-Type": "application/json"}


def chat(run_id: str, content: str = "hi") -> dict:
    return {"event": "chat", "type": "thread", "runId": run_id, "parentRunId": "thread-f", "timestamp": 1795924374366,
            "message": {"role": "user", "content": content}}


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
