"""Section 1's calls in instructions: load-independent, for changes too small for the clock.

Runs each call of ``bench/overhead.py`` (otel-lunary's and its raw-span floor) under
callgrind twice, with ``LOW`` and ``HIGH`` calls after the same setup and warm-up, and
reports the calling thread's instructions per call: (Ir(HIGH) - Ir(LOW)) / (HIGH - LOW),
so the setup, the imports and the exporter thread drop out.

    python bench/instructions.py [--calls 2000] [variant ...]   # needs valgrind

``--worker NAME N`` is the process callgrind runs: setup, warm-up, then N calls of NAME.
"""

from __future__ import annotations

import argparse
import gc
import glob
import os
import re
import subprocess
import sys
import tempfile

import common  # noqa: F401 - puts the repository first on sys.path

LOW = 200
FLUSH_EVERY = 100  # keeps the BatchSpanProcessor's queue from overflowing under valgrind


def worker(name: str, calls: int) -> None:
    import overhead

    variants, provider, _ = overhead.setup()
    call = variants[name]
    for fn in variants.values():  # the same warm-up as common.interleaved
        for _ in range(200):
            fn()
    # Exports only at the flushes below, in this thread, for every variant alike: the BSP
    # worker waking on its timer (seconds go fast under valgrind) made the counts vary.
    for processor in provider._active_span_processor._span_processors:  # noqa: SLF001 - bench only
        batch = getattr(processor, "_batch_processor", None)
        if batch is not None:
            batch._schedule_delay = 1e9
    provider.force_flush()
    gc.collect()
    gc.freeze()  # a full collection during the calls walks only what they made: less noise
    for i in range(calls):
        call()
        if i % FLUSH_EVERY == FLUSH_EVERY - 1:
            provider.force_flush()
    provider.force_flush()


def main_thread_ir(name: str, calls: int) -> int:
    with tempfile.TemporaryDirectory() as out:
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(common.ROOT), env.get("PYTHONPATH")]))
        subprocess.run(
            ["valgrind", "--tool=callgrind", "--separate-threads=yes", f"--callgrind-out-file={out}/cg.%p",
             sys.executable, __file__, "--worker", name, str(calls)],
            check=True, capture_output=True, env=env, cwd=str(common.ROOT),
        )
        # with --separate-threads, thread 1 (the calling thread) is the file ending in -01
        (path,) = glob.glob(f"{out}/cg.*-01")
        with open(path) as handle:
            for line in handle:
                if line.startswith("summary:") or line.startswith("totals:"):
                    return int(re.findall(r"\d+", line)[0])
    raise RuntimeError(f"no totals in callgrind output for {name}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", nargs=2, metavar=("NAME", "CALLS"))
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("variants", nargs="*")
    args = parser.parse_args()
    if args.worker:
        worker(args.worker[0], int(args.worker[1]))
        return
    names = args.variants or ["track_message(user)", "floor(user)", "track_message(assistant)", "floor(assistant)",
                              "track_event", "floor(event)", "track_feedback", "floor(feedback)"]
    per_call = {}
    for name in names:
        low, high = main_thread_ir(name, LOW), main_thread_ir(name, LOW + args.calls)
        per_call[name] = (high - low) / args.calls
        print(f"{name:26} {per_call[name]:>10.0f} instructions/call", flush=True)
    for sdk, floor in (("track_message(user)", "floor(user)"), ("track_message(assistant)", "floor(assistant)"),
                       ("track_event", "floor(event)"), ("track_feedback", "floor(feedback)")):
        if sdk in per_call and floor in per_call:
            print(f"ratio {sdk:26} {per_call[sdk] / per_call[floor]:.3f}")


if __name__ == "__main__":
    sys.exit(main())
