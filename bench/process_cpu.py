"""Section 2b: whole-process CPU per tracked message, otel-lunary against the Lunary SDK.

Every measurement is a fresh interpreter (a child) that sets up, tracks N chat messages
and exits; what it tracked is delivered before it exits (the sink counts it). The
messages are the same for both SDKs: user and assistant alternating over 100 threads
(tags, user id), every text distinct. A child's CPU time (user + system, all its threads,
from ``wait4``) minus that of a child doing the same set-up without tracking anything
(same imports, configuration and threads: otel-lunary's children call ``configure()``
before tracking, as ``import lunary`` sets the Lunary SDK up), divided by N, is what a
message costs the whole process: the tracking call, the processor, encoding, sending or
writing, exit.

Variants, run interleaved (each repeat rotates the order; a repeat's figures are paired):

- ``otlp_http``: otel-lunary, ``OTEL_EXPORTER_OTLP_ENDPOINT`` pointing at bench/sink.py;
- ``otlp_http (SDK encoder)``: the same with the SDK's own ``export`` (its encoder), for
  the share of encoding;
- ``otlp_http (SDK spans)``: the same with the SDK's own span objects instead of
  otel-lunary's light ones (``otel_lunary.export.light_spans``): a do-nothing span
  processor added to the provider, which is what makes otel-lunary record with the SDK's;
- ``file``: otel-lunary with nothing configured: the default OTLP JSON Lines file, in a
  temporary directory;
- ``file (SDK spans)``: the same with the SDK's span objects;
- ``lunary``: the ``lunary`` SDK, ``LUNARY_API_URL`` pointing at the same sink.

    python bench/process_cpu.py [--quick] [--messages N] [--repeats R]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

from workload import ASSISTANT_MESSAGE, THREAD_TAGS, USER_ID, USER_MESSAGE

THREADS = 100
VARIANTS = ("otlp_http", "otlp_http (SDK spans)", "otlp_http (SDK encoder)", "file", "file (SDK spans)", "lunary")
SETUP_OF = {
    "otlp_http": "setup otel",
    "otlp_http (SDK spans)": "setup otel",
    "otlp_http (SDK encoder)": "setup otel",
    "file": "setup file",
    "file (SDK spans)": "setup file",
    "lunary": "setup lunary",
}


# --- the children ----------------------------------------------------------------------------


def child(variant: str, messages: int) -> None:
    """Set up as ``variant``, track ``messages`` messages, exit (sending what is left)."""
    if variant.endswith("lunary"):
        import lunary
    else:
        if variant == "otlp_http (SDK encoder)":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            from otel_lunary.export import otlp_exporters

            otlp_exporters.OtlpHttpSpanExporter.export = OTLPSpanExporter.export  # type: ignore[method-assign]
        import otel_lunary as lunary  # type: ignore[no-redef]

        # What the first tracking call would set up (the SDK, the exporter and requests
        # imported, the provider and its threads), done here: ``import lunary`` does its
        # whole set-up at import, and the set-up-only child must pay the same as the one
        # that tracks, so that the difference is the messages' cost alone.
        provider = lunary.configure()  # type: ignore[attr-defined]
        if variant.endswith("(SDK spans)"):
            from opentelemetry.sdk.trace import SpanProcessor

            provider.add_span_processor(SpanProcessor())
    threads = [lunary.open_thread(tags=THREAD_TAGS, user_id=f"{USER_ID}-{i}") for i in range(THREADS)]
    user_text, assistant_text = USER_MESSAGE["content"], ASSISTANT_MESSAGE["content"]
    for i in range(messages // 2):
        thread = threads[i % THREADS]
        thread.track_message({"role": "user", "content": f"{user_text} ({i})"})
        thread.track_message({"role": "assistant", "content": f"{assistant_text} ({i})"})


# --- the parent --------------------------------------------------------------------------------


def counts(url: str, reset: bool = True) -> dict[str, int]:
    with urllib.request.urlopen(f"{url}/counts{'?reset=1' if reset else ''}", timeout=10) as answer:
        result: dict[str, int] = json.loads(answer.read())
        return result


def file_spans(directory: Path) -> int:
    total = 0
    for path in directory.glob("otel-lunary-traces.jsonl*"):
        for line in path.read_bytes().splitlines():
            total += sum(len(ss.get("spans", ())) for rs in json.loads(line)["resourceSpans"] for ss in rs["scopeSpans"])
    return total


def run_child(variant: str, messages: int, url: str, work: Path) -> tuple[float, int]:
    """(CPU seconds of the child, what it delivered)."""
    import common
    name = variant.replace("setup ", "")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "LUNARY_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(common.ROOT), env.get("PYTHONPATH")]))
    env["OTEL_LUNARY_EXIT_TIMEOUT"] = "300"  # exit sends everything, as lunary's exit does
    # N messages in about a second overflow the default queue (2048): let it hold them all,
    # as Lunary's unbounded list does, so both deliver (and pay for) every message
    env["OTEL_BSP_MAX_QUEUE_SIZE"] = str(max(2048, 2 * messages + 1000))  # up to 1.5 spans a message
    if name in ("otel", "otlp_http", "otlp_http (SDK spans)", "otlp_http (SDK encoder)"):
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = url
    elif name == "lunary":
        env.update(LUNARY_API_URL=url, LUNARY_PUBLIC_KEY="bench-public-key", LUNARY_VERBOSE="false")
    directory = Path(tempfile.mkdtemp(dir=work))
    child_variant = {"otel": "otlp_http"}.get(name, name)
    with open(directory / "stderr", "wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--child", child_variant, "--messages", str(messages)],
            cwd=directory, env=env, stdout=subprocess.DEVNULL, stderr=stderr,
        )
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{variant} child failed ({proc.returncode}): {(directory / 'stderr').read_text()[-2000:]}")
    got = counts(url)
    delivered = file_spans(directory) if name.startswith("file") else got["events"] if name == "lunary" else got["spans"]
    return usage.ru_utime + usage.ru_stime, delivered


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--messages", type=int)
    parser.add_argument("--repeats", type=int)
    parser.add_argument("--child")
    args = parser.parse_args()
    if args.child:  # before importing common: a child imports only what its variant needs
        child(args.child, args.messages)
        return
    import common
    messages = args.messages or (6_000 if args.quick else 20_000)
    repeats = args.repeats or (3 if args.quick else 5)
    sink = subprocess.Popen([sys.executable, str(common.BENCH / "sink.py")], stdout=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{int(sink.stdout.readline())}"  # type: ignore[union-attr]
    children = list(VARIANTS) + sorted(set(SETUP_OF.values()))
    cpu: dict[str, list[float]] = {c: [] for c in children}
    delivered: dict[str, list[int]] = {v: [] for v in VARIANTS}
    try:
        with tempfile.TemporaryDirectory(prefix="otel-lunary-cpu-") as tmp:
            for r in range(repeats):
                order = children[r % len(children):] + children[: r % len(children)]
                for name in order:
                    seconds, got = run_child(name, 0 if name.startswith("setup") else messages, url, Path(tmp))
                    cpu[name].append(seconds)
                    if name in delivered:
                        delivered[name].append(got)
                print(f"[process_cpu] repeat {r + 1}/{repeats}", file=sys.stderr, flush=True)
    finally:
        sink.terminate()
        sink.wait(timeout=10)
    per_message = {v: [(cpu[v][r] - cpu[SETUP_OF[v]][r]) / messages * 1e6 for r in range(repeats)] for v in VARIANTS}
    rows: dict[str, Any] = {}
    for v in VARIANTS:
        rows[v] = {
            "cpu_us_per_message": common.stats(per_message[v]),
            "ratio_to_lunary": common.stats([a / b for a, b in zip(per_message[v], per_message["lunary"])]),
            "delivered_min": min(delivered[v]),
            "child_cpu_s": common.stats(cpu[v]),
            "setup_cpu_s": common.stats(cpu[SETUP_OF[v]]),
        }
    common.emit({"messages": messages, "repeats": repeats, "threads": THREADS, "rows": rows})


if __name__ == "__main__":
    sys.exit(main())
