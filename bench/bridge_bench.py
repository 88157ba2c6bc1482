"""Section 5: the Lunary ingestion bridge, one process: events/s and request latency.

``otel-lunary bridge`` runs as one process on 127.0.0.1 (SQLite state and the file
exporter in a temporary directory). This process posts ``/v1/runs/ingest`` requests of
20 events shaped like the Python ``lunary`` SDK's (per thread: user message, custom
event, assistant message, feedback on the reply, as 5 turns), one request at a time on a
keep-alive connection, and times each request, then waits until the outbox is empty
(every span written by the exporter: ``exported_events_per_s``). Then three loads from
tests/helpers/bridge_load.py, each on a fresh bridge: 32 clients x 40 requests at once (a new
connection each, as the Python SDK), 40 parallel 5 MB posts (peak RSS), 400 sockets that
send half a request head (threads, and whether the server closes them).

    python bench/bridge_bench.py [--quick] [--no-load]
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import common
from helpers import bridge_load
from workload import ASSISTANT_MESSAGE, EVENT_METADATA, EVENT_NAME, FEEDBACK, THREAD_TAGS, USER_ID, USER_MESSAGE

TURNS_PER_REQUEST = 5


def _event(event: str, run_type: str | None, run_id: str, **fields: object) -> dict:
    base = dict.fromkeys(
        ("name", "userProps", "tags", "threadTags", "parentRunId", "message", "input", "output", "error", "feedback",
         "tokensUsage", "metadata", "params", "templateId", "appId", "threadMetadata")
    )
    base.update(event=event, type=run_type, runId=run_id, userId=USER_ID, runtime="lunary-py",
                timestamp=datetime.now(timezone.utc).isoformat())
    base.update(fields)
    return base


def request_body() -> bytes:
    thread = str(uuid.uuid4())
    events = []
    for _ in range(TURNS_PER_REQUEST):
        reply = str(uuid.uuid4())
        events.append(_event("chat", "thread", str(uuid.uuid4()), parentRunId=thread, threadTags=THREAD_TAGS, message=USER_MESSAGE))
        events.append(_event("custom-event", "thread", str(uuid.uuid4()), name=EVENT_NAME, parentRunId=thread, threadTags=THREAD_TAGS, metadata=EVENT_METADATA))
        events.append(_event("chat", "thread", reply, parentRunId=thread, threadTags=THREAD_TAGS, message=ASSISTANT_MESSAGE))
        events.append(_event("feedback", None, reply, feedback=FEEDBACK))
    return json.dumps({"events": events}).encode()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--requests", type=int)
    parser.add_argument("--no-load", action="store_true", help="skip the three load figures")
    args = parser.parse_args()
    requests = args.requests or (300 if args.quick else 2000)
    bodies = [request_body() for _ in range(requests)]
    events_per_request = TURNS_PER_REQUEST * 4
    with tempfile.TemporaryDirectory(prefix="otel-lunary-bench-") as tmp, bridge_load.bridge_command(Path(tmp), pythonpath=str(common.ROOT)) as bridge:
        host, port = bridge.host_port
        conn = http.client.HTTPConnection(host, port, timeout=30)
        headers = {"Authorization": f"Bearer {bridge_load.KEY}", "Content-Type": "application/json"}
        latencies = []
        failed = 0
        started = time.perf_counter()
        for body in bodies:
            t0 = time.perf_counter()
            conn.request("POST", "/v1/runs/ingest", body=body, headers=headers)
            response = conn.getresponse()
            payload = response.read()
            latencies.append((time.perf_counter() - t0) * 1000)
            if response.status != 200 or b'"success": false' in payload or b'"success":false' in payload:
                failed += 1
        elapsed = time.perf_counter() - started
        while True:  # until every span left the outbox for the exporter
            conn.request("GET", "/healthz")
            health = json.loads(conn.getresponse().read())
            if health.get("pending", 0) == 0 or time.perf_counter() - started > 300:
                break
            time.sleep(0.01)
        exported = time.perf_counter() - started
        conn.close()
    latencies.sort()
    common.emit(
        {
            "requests": requests,
            "events_per_request": events_per_request,
            "events_per_s": requests * events_per_request / elapsed,
            "exported_events_per_s": requests * events_per_request / exported,
            "p50_ms": latencies[len(latencies) // 2],
            "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
            "max_ms": latencies[-1],
            "failed_requests": failed,
            **({} if args.no_load else loads()),
        }
    )


def loads() -> dict:
    """The three loads of issue 13 (items 5 and 6), each against a fresh bridge process."""
    figures: dict = {}
    with tempfile.TemporaryDirectory(prefix="otel-lunary-bench-") as tmp, bridge_load.bridge_command(Path(tmp), pythonpath=str(common.ROOT)) as bridge:
        crowd = bridge_load.many_clients(bridge, clients=32, requests=40)
        figures["crowd"] = {"requests": 32 * 40, "ok": crowd.statuses.get(200, 0), "connection_errors": sum(crowd.errors.values()),
                            "p50_ms": crowd.p(0.5), "p99_ms": crowd.p(0.99), "over_1s": sum(1 for ms in crowd.latencies_ms if ms > 1000)}
    with tempfile.TemporaryDirectory(prefix="otel-lunary-bench-") as tmp, bridge_load.bridge_command(Path(tmp), pythonpath=str(common.ROOT)) as bridge:
        body = bridge_load.large_body(5 * 2**20 - 4096)
        outcome: dict = {}
        work = threading.Thread(target=lambda: outcome.setdefault("r", bridge_load.many_clients(bridge, clients=40, requests=1, bodies=[body], timeout=300)))
        before = bridge.rss_mb()
        peak = bridge_load.peak_rss_during(bridge, work)
        figures["large"] = {"posts": 40, "ok": outcome["r"].statuses.get(200, 0), "rss_before_mb": before, "peak_rss_mb": peak}
    with tempfile.TemporaryDirectory(prefix="otel-lunary-bench-") as tmp, bridge_load.bridge_command(Path(tmp), pythonpath=str(common.ROOT)) as bridge:
        threads = bridge.threads()
        sockets = bridge_load.open_slow_sockets(bridge, 400)
        served = bridge_load.many_clients(bridge, clients=1, requests=5)
        figures["slow"] = {"sockets": 400, "threads_before": threads, "threads_with_sockets": bridge.threads(),
                           "served_meanwhile": served.statuses.get(200, 0), "closed_by_server": bridge_load.closed_by_server(sockets, 30)}
        for sock in sockets:
            sock.close()
    return figures


if __name__ == "__main__":
    sys.exit(main())
