"""Section 1, third column: the ``lunary`` PyPI SDK's own calls, on this machine.

Lunary reads its configuration at import, so this runs in its own interpreter with
``LUNARY_API_URL`` pointing at bench/sink.py (127.0.0.1, answers 200). Timed like
bench/overhead.py: calling-thread CPU µs per call, median of interleaved repeats. Lunary
queues the event and its consumer thread sends it every 0.5 s (JSON encoding included),
so what the calling thread pays is building the event dict and appending to the queue.

    python bench/lunary_sdk.py [--quick]   # starts its own sink when LUNARY_API_URL is unset
"""

from __future__ import annotations

import os
import subprocess
import sys

import common
from workload import ASSISTANT_MESSAGE, EVENT_METADATA, EVENT_NAME, FEEDBACK, THREAD_TAGS, USER_ID, USER_MESSAGE


def start_sink() -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, str(common.BENCH / "sink.py")], stdout=subprocess.PIPE, text=True)
    port = int(proc.stdout.readline())
    return proc, f"http://127.0.0.1:{port}"


def measure(calls: int, repeats: int) -> dict:
    import lunary  # after the environment is set: lunary reads it at import

    thread = lunary.open_thread(tags=THREAD_TAGS, user_id=USER_ID)
    run_id = thread.track_message(USER_MESSAGE)
    variants = {
        "track_message(user)": lambda: thread.track_message(USER_MESSAGE),
        "track_message(assistant)": lambda: thread.track_message(ASSISTANT_MESSAGE),
        "track_event": lambda: thread.track_event(EVENT_NAME, metadata=EVENT_METADATA),
        "track_feedback": lambda: lunary.track_feedback(run_id, FEEDBACK),
    }
    measured = common.interleaved(variants, calls, repeats)
    return {
        "version": getattr(lunary, "__version__", None) or _version(),
        "rows": {name: {"cpu_us": common.stats(m["cpu_us"]), "wall_us": common.stats(m["wall_us"])} for name, m in measured.items()},
    }


def _version() -> str | None:
    from importlib.metadata import version

    return version("lunary")


def main() -> None:
    calls, repeats = common.per_call_counts()
    if "LUNARY_API_URL" in os.environ:
        common.emit(measure(calls, repeats))
        return
    sink, url = start_sink()
    try:
        env = {"LUNARY_API_URL": url, "LUNARY_PUBLIC_KEY": "bench-public-key", "LUNARY_VERBOSE": "false"}
        common.emit(common.run_worker("lunary_sdk.py", [f"--calls={calls}", f"--repeats={repeats}"], timeout=600, env=env))
    finally:
        sink.terminate()
        sink.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main())
