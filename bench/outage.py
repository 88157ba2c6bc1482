"""Section 2: the collector is down. Per-call latency in the calling thread and RSS.

otel-lunary is configured the way an application would (``configure(exporter="otlp",
endpoint=...)``), pointing at a 127.0.0.1 port nothing listens on. Every call is timed
(wall clock, ``perf_counter_ns``) into a fixed histogram (0.1 µs buckets up to 10 ms),
so recording latencies does not grow memory. RSS is read at checkpoints; the span queue
is bounded (``OTEL_BSP_MAX_QUEUE_SIZE``, default 2048) and so is the message-id index
(50 000 entries), so RSS should stop growing once both are full.

    python bench/outage.py [--quick] [--messages N]
"""

from __future__ import annotations

import argparse
import socket
import sys
import time
from array import array

import common
from workload import ASSISTANT_MESSAGE, THREAD_TAGS, USER_ID, USER_MESSAGE

import otel_lunary as lunary

BUCKET_NS = 100
BUCKETS = 100_000  # 0.1 µs resolution up to 10 ms; slower calls are kept exactly


def closed_port() -> int:
    """A 127.0.0.1 port that was free a moment ago and that nobody listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(histogram: array, slow: list[int], total: int, q: float) -> float:
    """The q-quantile in µs from the histogram (and the exact slow calls)."""
    rank = max(1, int(round(q * total)))
    seen = 0
    for bucket, count in enumerate(histogram):
        seen += count
        if seen >= rank:
            return (bucket + 0.5) * BUCKET_NS / 1000
    slow_sorted = sorted(slow)
    return slow_sorted[min(len(slow_sorted) - 1, rank - seen - 1)] / 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--messages", type=int)
    parser.add_argument("--protocol", default="http/protobuf", choices=("http/protobuf", "grpc"))
    args = parser.parse_args()
    total = args.messages or (100_000 if args.quick else 1_000_000)
    checkpoints = sorted({total // 10, total // 2, total})
    port = closed_port()
    endpoint = f"http://127.0.0.1:{port}"
    lunary.configure(exporter="otlp", endpoint=endpoint, protocol=args.protocol, service_name="bench-outage")
    thread = lunary.open_thread(tags=THREAD_TAGS, user_id=USER_ID)
    histogram = array("q", bytes(8 * BUCKETS))
    slow: list[int] = []
    worst = 0
    rss: dict[str, float] = {"start": common.current_rss_mb()}
    clock = time.perf_counter_ns
    track = thread.track_message
    messages = (USER_MESSAGE, ASSISTANT_MESSAGE)
    started = time.perf_counter()
    done = 0
    for checkpoint in checkpoints:
        while done < checkpoint:
            message = messages[done & 1]
            t0 = clock()
            track(message)
            elapsed = clock() - t0
            bucket = elapsed // BUCKET_NS
            if bucket < BUCKETS:
                histogram[bucket] += 1
            else:
                slow.append(elapsed)
            if elapsed > worst:
                worst = elapsed
            done += 1
        rss[str(checkpoint)] = common.current_rss_mb()
    elapsed_s = time.perf_counter() - started
    shutdown_start = time.perf_counter()
    lunary.shutdown(timeout=2.0)
    shutdown_s = time.perf_counter() - shutdown_start
    stats = lunary.stats()
    common.emit(
        {
            "messages": total,
            "protocol": args.protocol,
            "endpoint": endpoint,
            "p50_us": percentile(histogram, slow, total, 0.50),
            "p99_us": percentile(histogram, slow, total, 0.99),
            "max_us": worst / 1000,
            "calls_over_10ms": len(slow),
            "mean_us": elapsed_s / total * 1e6,
            "rss_mb": rss,
            "peak_rss_mb": common.peak_rss_mb(),
            "shutdown_s": shutdown_s,
            "spans_dropped": stats.get("spans_dropped", 0),
            "internal_errors": stats.get("internal_errors", 0),
        }
    )


if __name__ == "__main__":
    sys.exit(main())
