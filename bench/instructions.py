"""Section 1's calls in instructions: load-independent, for changes too small for the clock.

Runs each call of ``bench/overhead.py`` (otel-lunary's and its raw-span floor) under
callgrind, after the same setup and warm-up, and reports the calling thread's
instructions per call. Only the calls are counted: they run through ``functools.reduce``
in chunks of ``CHUNK`` (``--toggle-collect=functools_reduce``), and the processor is
flushed between chunks, outside the count, so its queue never overflows.

    python bench/instructions.py [--calls 2000] [variant ...]   # needs valgrind

``--worker NAME N`` is the process callgrind runs: setup, warm-up, then N calls of NAME.
"""

from __future__ import annotations

import argparse
import functools
import gc
import glob
import os
import re
import subprocess
import sys
import tempfile

import common  # noqa: F401 - puts the repository first on sys.path

CHUNK = 100  # calls between flushes: keeps the BatchSpanProcessor's queue from overflowing


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
    def counted(_: object, __: int) -> None:
        call()

    for _ in range(calls // CHUNK):
        functools.reduce(counted, range(CHUNK), None)
        provider.force_flush()


def main_thread_ir(name: str, calls: int) -> int:
    with tempfile.TemporaryDirectory() as out:
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(common.ROOT), env.get("PYTHONPATH")]))
        subprocess.run(
            ["valgrind", "--tool=callgrind", "--separate-threads=yes", "--collect-atstart=no", "--toggle-collect=functools_reduce",
             f"--callgrind-out-file={out}/cg.%p",
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
        per_call[name] = main_thread_ir(name, args.calls) / args.calls
        print(f"{name:26} {per_call[name]:>10.0f} instructions/call", flush=True)
    for sdk, floor in (("track_message(user)", "floor(user)"), ("track_message(assistant)", "floor(assistant)"),
                       ("track_event", "floor(event)"), ("track_feedback", "floor(feedback)")):
        if sdk in per_call and floor in per_call:
            print(f"ratio {sdk:26} {per_call[sdk] / per_call[floor]:.3f}")


if __name__ == "__main__":
    sys.exit(main())
