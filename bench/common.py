"""Shared helpers for bench/: timing, statistics, RSS, a do-nothing exporter, workers.

Every section runs in its own subprocess (``python bench/<section>.py [--quick]``) that
prints one JSON object on its last stdout line; ``bench/run.py`` starts them in turn,
so one section's threads, queues and memory never disturb another's figures.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
for extra in (str(ROOT), str(ROOT / "tests")):
    if extra not in sys.path:
        sys.path.insert(0, extra)

from opentelemetry.sdk.trace import ReadableSpan  # noqa: E402
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult  # noqa: E402


class NullExporter(SpanExporter):
    """Accepts every batch and does nothing: the floor and the SDK share it."""

    def __init__(self) -> None:
        self.spans = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def stats(values: Sequence[float]) -> dict[str, float]:
    """Median and range of repeated measurements."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def per_call_us(fn: Callable[[], Any], calls: int) -> tuple[float, float]:
    """(calling-thread CPU µs per call, wall µs per call) over ``calls`` calls of ``fn``.

    CPU time of the calling thread (``time.thread_time_ns``) is what the application pays;
    it leaves out the exporter thread's work and the time the OS gave other processes.
    """
    gc.collect()
    wall0, cpu0 = time.perf_counter_ns(), time.thread_time_ns()
    for _ in range(calls):
        fn()
    cpu1, wall1 = time.thread_time_ns(), time.perf_counter_ns()
    return (cpu1 - cpu0) / calls / 1000, (wall1 - wall0) / calls / 1000


def interleaved(variants: dict[str, Callable[[], Any]], calls: int, repeats: int, between: Callable[[], Any] | None = None) -> dict[str, dict[str, Any]]:
    """Time every variant ``repeats`` times, interleaved (A B C, B C A, ...), so a noisy
    neighbour hits all of them alike. Returns per variant the CPU and wall µs/call lists."""
    names = list(variants)
    cpu: dict[str, list[float]] = {n: [] for n in names}
    wall: dict[str, list[float]] = {n: [] for n in names}
    for fn in variants.values():  # warm up (imports, caches, first-span setup)
        for _ in range(min(calls, 200)):
            fn()
    if between:
        between()
    for r in range(repeats):
        order = names[r % len(names):] + names[: r % len(names)]
        for name in order:
            c, w = per_call_us(variants[name], calls)
            cpu[name].append(c)
            wall[name].append(w)
            if between:
                between()
    return {n: {"cpu_us": cpu[n], "wall_us": wall[n]} for n in names}


def peak_rss_mb() -> float:
    """Peak resident set size of this process (``ru_maxrss``, KiB on Linux), in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    """Resident set size now, from /proc/self/statm (falls back to the peak)."""
    try:
        with open("/proc/self/statm") as handle:
            pages = int(handle.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return peak_rss_mb()


def emit(result: dict[str, Any]) -> None:
    """A worker's answer: one JSON line, last on stdout."""
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


def run_worker(script: str, args: Sequence[str] = (), *, timeout: float, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``bench/<script>`` in a fresh interpreter and return the JSON it printed last."""
    full_env = {**os.environ, **(env or {})}
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), full_env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, str(BENCH / script), *args], capture_output=True, text=True, timeout=timeout, env=full_env, cwd=str(ROOT)
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{script} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1])


def per_call_counts() -> tuple[int, int]:
    """``--quick``/``--calls``/``--repeats``, parsed the same way for every per-call bench
    (otel-lunary, the raw floor, the lunary SDK) so their figures stay comparable."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--calls", type=int)
    parser.add_argument("--repeats", type=int)
    args = parser.parse_args()
    return args.calls or (500 if args.quick else 2000), args.repeats or (5 if args.quick else 15)
