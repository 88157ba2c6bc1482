"""A restarted bridge still knows its run ids: late feedback lands in its message's trace.

The real ``otel-lunary bridge`` command runs in a subprocess, exporting through
otel-lunary's file exporter (OTLP JSON Lines); it is stopped (SIGTERM, as a deployment
would) and started again on the same SQLite state file.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from helpers.servers import poll_until
from helpers.bridge import APP_KEY, REPO

INGEST = "/v1/runs/ingest"
AUTH = {"Authorization": f"Bearer {APP_KEY}"}


class BridgeProcess:
    def __init__(self, tmp: Path, name: str, *extra: str) -> None:
        self.spans_file = tmp / f"{name}.jsonl"
        url_file = tmp / f"{name}.url"
        env = {**os.environ, "PYTHONPATH": str(REPO), "OTEL_SERVICE_NAME": "bridge-test"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "otel_lunary", "bridge", "--port", "0", "--keys", f"{APP_KEY}=demo", "--state", str(tmp / "state.sqlite"),
             "--exporter", "file", "--file", str(self.spans_file), "--url-file", str(url_file), *extra],
            env=env, cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self.url = poll_until(lambda: url_file.exists() and url_file.read_text().strip(), timeout=20, what="the bridge to listen")

    def post(self, events: list[dict]) -> dict:
        response = httpx.post(self.url + INGEST, headers=AUTH, json={"events": events}, timeout=10)
        assert response.status_code == 200, response.text
        return response.json()

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        out, err = self.process.communicate(timeout=20)
        assert self.process.returncode == 0, err[-2000:]

    def spans(self) -> list[dict]:
        found = []
        for line in self.spans_file.read_text().splitlines():
            for resource_spans in json.loads(line)["resourceSpans"]:
                resource = {a["key"]: a["value"] for a in resource_spans["resource"]["attributes"]}
                for scope_spans in resource_spans["scopeSpans"]:
                    for span in scope_spans["spans"]:
                        span["attrs"] = {a["key"]: a["value"] for a in span.get("attributes", [])}
                        span["resource"] = resource
                        found.append(span)
        return found


def test_feedback_after_restart_lands_in_the_message_trace(tmp_path):
    """Message before the restart, feedback and a run's end after it: same trace, right parents, real start time."""
    thread = "thread-restart"
    first = BridgeProcess(tmp_path, "before")
    first.post([
        {"event": "chat", "type": "thread", "runId": "u-1", "parentRunId": thread, "timestamp": 1795924374000,
         "message": {"role": "user", "content": "hi"}},
        {"event": "chat", "type": "thread", "runId": "a-1", "parentRunId": thread, "timestamp": 1795924374100,
         "message": {"role": "assistant", "content": "hello"}},
        {"event": "start", "type": "agent", "name": "Slow", "runId": "agent-1", "parentRunId": "u-1", "timestamp": 1795924374200, "input": "go"},
    ])
    first.stop()
    before = {span["attrs"]["lunary.message.id"]["stringValue"]: span for span in first.spans() if span["name"].startswith("message ")}
    assert set(before) == {"u-1", "a-1"}  # the open agent run is in the state file, not yet a span
    (turn,) = [span for span in first.spans() if span["name"] == "invoke_workflow turn"]
    # the turn span goes from the question to the answer, on the clients' clocks
    assert (int(turn["startTimeUnixNano"]), int(turn["endTimeUnixNano"])) == (1795924374000 * 1_000_000, 1795924374100 * 1_000_000)

    second = BridgeProcess(tmp_path, "after")
    results = second.post([
        {"event": "feedback", "runId": "a-1", "timestamp": 1795924379000, "feedback": {"thumb": "up"}},
        {"event": "end", "type": "agent", "runId": "agent-1", "timestamp": 1795924379500, "output": "done"},
        {"event": "chat", "type": "thread", "runId": "a-2", "parentRunId": thread, "timestamp": 1795924379600,
         "message": {"role": "assistant", "content": "still here"}},
    ])
    assert all(result["success"] for result in results["results"])
    second.stop()
    after = {span["name"]: span for span in second.spans()}
    message, user = before["a-1"], before["u-1"]
    feedback, agent, reply = after["feedback"], after["invoke_agent Slow"], after["message assistant"]
    assert feedback["traceId"] == message["traceId"] and feedback["parentSpanId"] == message["spanId"]
    assert feedback["attrs"]["gen_ai.conversation.id"]["stringValue"] == thread
    assert agent["traceId"] == user["traceId"] and agent["parentSpanId"] == user["spanId"]
    assert int(agent["startTimeUnixNano"]) == 1795924374200 * 1_000_000
    assert int(agent["endTimeUnixNano"]) == 1795924379500 * 1_000_000
    assert reply["traceId"] == user["traceId"] and reply["parentSpanId"] == turn["spanId"]
    assert agent["resource"]["lunary.project"]["stringValue"] == "demo"
    assert agent["resource"]["service.name"]["stringValue"] == "bridge-test"
