"""What an operator sets and what the bridge then keeps to: content capture off keeps
reported errors' messages and stacks in the process, an infinite run timeout still lets
the state be pruned, and a state file the bridge cannot write stops it with one clear
line instead of a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from otel_lunary.attributes import ERROR_TYPE, LUNARY_TURN_ENDED_BY
from helpers.servers import poll_until
from helpers import REPO
from helpers.bridge import APP_KEY, RunningBridge
from helpers.tmpfs import tmpfs_or_skip

INGEST = "/v1/runs/ingest"
AUTH = {"Authorization": f"Bearer {APP_KEY}", "Content-Type": "application/json"}
SECRET = "card 4111-1111-1111-1111"


def post(url: str, events: list[dict]) -> httpx.Response:
    return httpx.post(url + INGEST, headers=AUTH, content=json.dumps({"events": events}), timeout=30)


def test_capture_off_keeps_error_messages_and_stacks_in_the_process(tmp_path: Path) -> None:
    """With content capture off, a reported error's message and stack (which quote the arguments) are not exported; its type still is."""
    bridge = RunningBridge(tmp_path / "state.sqlite", capture_content=False)
    try:
        events = [
            {"event": "start", "type": "tool", "name": "charge", "runId": "tool-1", "timestamp": 1795924374000, "input": SECRET},
            {"event": "error", "type": "tool", "runId": "tool-1", "timestamp": 1795924374100,
             "error": {"message": f"ValueError: cannot charge {SECRET}",
                       "stack": f"Traceback (most recent call last):\n  File \"app.py\", line 3\nValueError: cannot charge {SECRET}"}},
        ]
        assert all(result["success"] for result in post(bridge.url, events).json()["results"])
        (span,) = poll_until(lambda: bridge.spans(), timeout=20, what="the failed run's span")
        assert span.attributes[ERROR_TYPE] == "ValueError"
        exported = repr((dict(span.attributes), span.status.description, [(e.name, dict(e.attributes or {})) for e in span.events]))
        assert "4111" not in exported
    finally:
        bridge.close()


def test_an_infinite_run_timeout_still_prunes_the_state(tmp_path: Path) -> None:
    """--run-timeout inf means runs are never closed by the bridge; the maintenance pass still ends turns and prunes rows past the TTL, without an error."""
    bridge = RunningBridge(tmp_path / "state.sqlite", run_timeout_s=float("inf"), state_ttl_s=1.0)
    try:
        chat = {"event": "chat", "type": "thread", "runId": "m-1", "parentRunId": "t-1", "timestamp": 1795924374000,
                "message": {"role": "user", "content": "hi"}}
        start = {"event": "start", "type": "agent", "name": "Slow", "runId": "open-1", "timestamp": 1795924374000}
        assert all(result["success"] for result in post(bridge.url, [chat, start]).json()["results"])
        store = bridge.bridge.store
        # the message (and its Python-SDK alias), the open run, the turn waiting for its reply (an open run too)
        assert store.counts() == {"runs": 4, "open_runs": 2, "turns": 1}
        time.sleep(1.1)  # let the rows age past the 1 s TTL (not a timing assertion)
        bridge.bridge.maintenance.pass_once()
        # The agent run waits for its end; the turn (days old by its client timestamp) was
        # ended by the turn timeout, which an infinite run timeout does not turn off; its
        # row was just written, so it is younger than the TTL.
        assert store.counts() == {"runs": 2, "open_runs": 1, "turns": 0}
        (turn,) = poll_until(lambda: [s for s in bridge.spans() if s.name == "invoke_workflow turn"], timeout=20, what="the ended turn's span")
        assert turn.attributes[LUNARY_TURN_ENDED_BY] == "timeout"
        assert httpx.get(bridge.url + "/healthz", timeout=10).json()["ok"] is True
    finally:
        bridge.close()


@pytest.fixture
def read_only_dir(tmp_path: Path):
    """A directory holding a state file, then remounted read-only (a real read-only filesystem)."""
    with tmpfs_or_skip(tmp_path / "ro", "4m") as mount_point:
        import sqlite3

        sqlite3.connect(mount_point / "state.sqlite").execute("CREATE TABLE t (x)").connection.close()
        if subprocess.run(["mount", "-o", "remount,ro", str(mount_point)], capture_output=True).returncode != 0:
            pytest.skip("cannot remount read-only here")
        yield mount_point


@pytest.mark.parametrize("where", ["read-only file", "missing directory"])
def test_an_unusable_state_file_is_one_clear_line(tmp_path: Path, where: str, request: pytest.FixtureRequest) -> None:
    """`otel-lunary bridge` on a state file it cannot write exits 2 with the path and SQLite's reason, not a traceback."""
    state = request.getfixturevalue("read_only_dir") / "state.sqlite" if where == "read-only file" else tmp_path / "nowhere" / "state.sqlite"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "otel_lunary", "bridge", "--port", "0", "--keys", f"{APP_KEY}=demo", "--state", str(state), "--exporter", "none"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert f"cannot use the state file {state}" in done.stderr


def test_without_the_bridge_extra_the_command_says_what_to_install(tmp_path: Path) -> None:
    """`otel-lunary bridge` where uvicorn is not installed exits 2 naming the extra, not with a traceback."""
    script = "import sys; sys.modules['uvicorn'] = None; from otel_lunary.cli import main; sys.exit(main(sys.argv[1:]))"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", script, "bridge", "--keys", f"{APP_KEY}=demo"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "pip install 'otel-lunary[bridge]'" in done.stderr and "Traceback" not in done.stderr
