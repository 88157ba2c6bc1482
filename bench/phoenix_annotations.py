"""Feedback as Phoenix annotations: what ``submit`` costs the app, how long feedback takes to
show in Phoenix, and how fast ``otel-lunary annotate`` backfills.

1. ``submit``: calling-thread CPU and wall µs per call (one thumb = 2 annotations),
   against a Phoenix that accepts connections and never answers (the worst case for
   the app: nothing ever leaves the queue), queue bound large enough to keep them all.
2. Landing time: a real Phoenix (``phoenix serve``, SQLite), the message span exported
   with ``SimpleSpanProcessor`` over OTLP/HTTP and feedback submitted at once; time from
   ``submit`` until ``flush`` says both annotations landed, and how many attempts Phoenix
   answered 404 (its ingestion delay).
3. Backfill: N assistant messages with a thumb each recorded to Phoenix (no sink), then
   ``otel-lunary annotate --phoenix URL`` reading them back from Phoenix once Phoenix
   has every span; wall time of the command, a second run (idempotent rewrite) too.

    python bench/phoenix_annotations.py [--quick]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common  # noqa: F401 - puts the repository and tests/ on sys.path
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

import otel_lunary as lunary
from otel_lunary import _state
from otel_lunary.attributes import GEN_AI_EVALUATION_NAME, GEN_AI_EVALUATION_SCORE_LABEL, GEN_AI_EVALUATION_SCORE_VALUE
from otel_lunary.phoenix_feedback import PhoenixAnnotationSink, feedback_annotations
from helpers.servers import PhoenixProcess, poll_until, start_phoenix

THUMB_UP = [{GEN_AI_EVALUATION_NAME: "thumb", GEN_AI_EVALUATION_SCORE_LABEL: "up", GEN_AI_EVALUATION_SCORE_VALUE: 1.0}]


def submit_cost(calls: int) -> dict[str, float]:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1024)
        sink = PhoenixAnnotationSink(f"http://127.0.0.1:{listener.getsockname()[1]}", max_queue=4 * calls, request_timeout_s=60)
        batches = [feedback_annotations(i + 1, i + 1, THUMB_UP) for i in range(calls)]
        wall0, cpu0 = time.perf_counter_ns(), time.thread_time_ns()
        for batch in batches:
            sink.submit(batch)
        cpu1, wall1 = time.thread_time_ns(), time.perf_counter_ns()
        start = time.monotonic()
        sink.shutdown(timeout=1.0)
        return {"cpu_us_per_submit": (cpu1 - cpu0) / calls / 1000, "wall_us_per_submit": (wall1 - wall0) / calls / 1000, "shutdown_s": time.monotonic() - start}


def landing(phoenix_url: str, endpoint: str, rounds: int) -> dict[str, object]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    lunary.configure(tracer_provider=provider)
    times, retries = [], []
    thread = lunary.open_thread()
    for _ in range(rounds):
        sink = PhoenixAnnotationSink(phoenix_url)
        message_id = thread.track_message({"role": "assistant", "content": "hi"})
        target = _state.resolve(message_id)
        assert target is not None
        start = time.monotonic()
        sink.submit(feedback_annotations(target.span_context.trace_id, target.span_context.span_id, THUMB_UP))
        assert sink.flush(timeout=60)
        times.append((time.monotonic() - start) * 1000)
        retries.append(sink.counts()["retried"] / 2)
        sink.shutdown(timeout=1)
    provider.shutdown()
    return {"landed_ms": {"median": statistics.median(times), "max": max(times)}, "404_retries_per_feedback": {"median": statistics.median(retries), "max": max(retries)}}


def backfill(phoenix: PhoenixProcess, messages: int) -> dict[str, object]:
    phoenix_url, endpoint = phoenix.url, phoenix.otlp_http_endpoint
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    lunary.configure(tracer_provider=provider)
    thread = lunary.open_thread()
    for number in range(messages):
        thread.track_message({"role": "user", "content": f"q{number}"})
        answer = thread.track_message({"role": "assistant", "content": f"a{number}"})
        lunary.track_feedback(answer, {"thumb": "up" if number % 2 else "down"})
    provider.shutdown()
    poll_until(lambda: len(phoenix.spans()) >= 3 * messages, timeout=300, interval=1, what="every span in Phoenix")
    runs = []
    for _ in range(2):
        start = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "otel_lunary", "annotate", "--phoenix", phoenix_url, "-c", thread.id], capture_output=True, text=True, timeout=600)
        runs.append({"s": round(time.monotonic() - start, 2), "status": done.returncode, "stdout": done.stdout.strip()})
    return {"messages": messages, "annotations": 2 * messages, "runs": runs}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    result: dict[str, object] = {"submit": submit_cost(2000 if args.quick else 20000)}
    with tempfile.TemporaryDirectory() as tmp, start_phoenix(Path(tmp)) as phoenix:
        result["landing"] = landing(phoenix.url, phoenix.otlp_http_endpoint, 5 if args.quick else 20)
        result["backfill"] = backfill(phoenix, 100 if args.quick else 1000)
    common.emit(result)


if __name__ == "__main__":
    main()
