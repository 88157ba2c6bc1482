"""otel-lunary benchmarks: one command, one table, every figure measured in this run.

    python bench/run.py            # full run (~5 min on 2 cores; 1M messages, 1M-span replay)
    python bench/run.py --quick    # smaller counts (~1 min)
    python bench/run.py --only overhead,replay --json /tmp/results.json

Each section runs in its own interpreter (bench/<section>.py, also runnable alone) and
prints JSON; this script starts them in turn, prints the table and writes all figures to
``--json`` (default bench/results.json, gitignored). What each figure means and how the
floor is defined: docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import common

SECTIONS = ("overhead", "lunary", "process", "outage", "export", "replay", "bridge", "startup")
SCRIPTS = {
    "overhead": "overhead.py",
    "lunary": "lunary_sdk.py",
    "process": "process_cpu.py",
    "startup": "startup.py",
    "outage": "outage.py",
    "export": "export_rotel.py",
    "replay": "replay_bench.py",
    "bridge": "bridge_bench.py",
}
TIMEOUTS = {"overhead": 900, "lunary": 900, "process": 1800, "startup": 600, "outage": 1800, "export": 900, "replay": 3600, "bridge": 900}


def machine() -> dict[str, Any]:
    model = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from importlib.metadata import version

    return {
        "nproc": os.cpu_count(),
        "cpu": model or platform.processor(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "opentelemetry_sdk": version("opentelemetry-sdk"),
        "lunary": version("lunary"),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def fmt_range(s: dict[str, float], digits: int = 1) -> str:
    return f"{s['median']:.{digits}f} ({s['min']:.{digits}f}-{s['max']:.{digits}f})"


def table(results: dict[str, Any]) -> list[str]:
    rows: list[str] = []
    add = rows.append
    over, sdk = results.get("overhead"), results.get("lunary")
    if over:
        add(f"1. Cost per call, calling-thread CPU µs, median (min-max) of {over['repeats']} interleaved repeats of {over['calls']} calls")
        add(f"   {'call':36} {'otel-lunary':>19} {'raw-span floor':>19} {'ratio':>17} {'lunary SDK':>19}")
        for name, row in over["rows"].items():
            lun = sdk["rows"].get(name.removesuffix(" [SDK spans]")) if sdk else None
            lunary_cell = fmt_range(lun["cpu_us"]) if lun else "n/a"
            add(f"   {name:36} {fmt_range(row['sdk_cpu_us']):>19} {fmt_range(row['floor_cpu_us']):>19} "
                f"{fmt_range(row['ratio'], 2):>17} {lunary_cell:>19}")
    elif sdk:
        add("1. lunary SDK (calling-thread CPU µs): " + ", ".join(f"{k} {v['cpu_us']['median']:.1f}" for k, v in sdk["rows"].items()))
    proc = results.get("process")
    if proc:
        add(f"2b. Whole-process CPU per tracked message, µs: fresh children tracking {proc['messages']:,} chat messages and exiting, "
            f"minus a set-up-only child; median (min-max) of {proc['repeats']} interleaved repeats")
        add(f"   {'exporter':26} {'otel-lunary':>19} {'lunary SDK':>19} {'ratio':>17} {'delivered':>10}")
        lunary_row = proc["rows"]["lunary"]
        for name, row in proc["rows"].items():
            if name == "lunary":
                continue
            add(f"   {name:26} {fmt_range(row['cpu_us_per_message']):>19} {fmt_range(lunary_row['cpu_us_per_message']):>19} "
                f"{fmt_range(row['ratio_to_lunary'], 2):>17} {row['delivered_min']:>10,}")
    out = results.get("outage")
    if out:
        rss = ", ".join(f"{int(k):,}: {v:.0f}" for k, v in out["rss_mb"].items() if k != "start")
        add(f"2. Collector down ({out['protocol']} to a closed 127.0.0.1 port), {out['messages']:,} track_message calls")
        add(f"   wall µs per call: p50 {out['p50_us']:.1f}, p99 {out['p99_us']:.1f}, max {out['max_us']:.0f} "
            f"({out['calls_over_10ms']} calls over 10 ms); spans dropped {out['spans_dropped']:,}; shutdown {out['shutdown_s']:.1f} s")
        add(f"   RSS MiB at start {out['rss_mb']['start']:.0f}; after {rss}; peak {out['peak_rss_mb']:.0f}")
    exp = results.get("export")
    if exp:
        enc = exp.get("encoders")
        if enc:
            proto, js = enc["protobuf"], enc["json"]
            add(f"3. Encoding, spans/s on the same batches of {exp['batch']} real spans (every text distinct); "
                "output equal to the SDK encoder's (tests/test_otlp_encoding.py)")
            add(f"   protobuf   SDK encode_spans+SerializeToString {proto['sdk']['spans_per_s']:>9,.0f}   otel-lunary "
                f"{proto['otel_lunary']['spans_per_s']:>9,.0f}   {proto['otel_lunary']['spans_per_s'] / proto['sdk']['spans_per_s']:.2f}x")
            add(f"   OTLP JSON  previous (SDK + walker) {js['walker']['spans_per_s']:>9,.0f}   MessageToJson "
                f"{js['message_to_json']['spans_per_s']:>9,.0f}   otel-lunary {js['otel_lunary']['spans_per_s']:>9,.0f}   "
                f"{js['otel_lunary']['spans_per_s'] / js['walker']['spans_per_s']:.2f}x / "
                f"{js['otel_lunary']['spans_per_s'] / js['message_to_json']['spans_per_s']:.2f}x")
        add(f"   Export, batches of {exp['batch']} (rotel-agent blackhole on 127.0.0.1; file = OTLP JSON Lines to a temporary file)")
        for name, row in exp["results"].items():
            add(f"   {name:16} {row['spans_per_s']:>9,.0f} spans/s; encoding alone {row['encode_spans_per_s']:>9,.0f} spans/s = "
                f"{row['encode_share'] * 100:.0f}% of export time")
    rep = results.get("replay")
    if rep:
        stages = rep["stages"]
        add(f"4. Replay of a {stages['replay']['spans']:,}-span OTLP JSON file ({rep['file_mb']:.0f} MiB), one core")
        labels = {"json": "json.loads only (floor)", "read": "reader (parse + decode)", "replay": "replay (read + assemble)"}
        for stage, row in stages.items():
            add(f"   {labels[stage]:26} {row['spans_per_s']:>9,.0f} spans/s   peak RSS {row['peak_rss_mb']:,.0f} MiB")
    bridge = results.get("bridge")
    if bridge is not None:
        if bridge.get("skipped"):
            add(f"5. Bridge: {bridge['skipped']}")
        else:
            add(f"5. Bridge, one process: {bridge['events_per_s']:,.0f} events/s; request of {bridge['events_per_request']} events "
                f"p50 {bridge['p50_ms']:.1f} ms, p99 {bridge['p99_ms']:.1f} ms, max {bridge['max_ms']:.1f} ms")
            if "exported_events_per_s" in bridge:
                add(f"   exported (outbox empty): {bridge['exported_events_per_s']:,.0f} events/s")
            crowd, large, slow = bridge.get("crowd"), bridge.get("large"), bridge.get("slow")
            if crowd and large and slow:
                add(f"   32 clients x 40 requests: {crowd['ok']}/{crowd['requests']} ok, {crowd['connection_errors']} connection errors, "
                    f"p50 {crowd['p50_ms']:.0f} ms, p99 {crowd['p99_ms']:.0f} ms, {crowd['over_1s']} over 1 s")
                add(f"   40 parallel 5 MB posts: {large['ok']}/40 ok, RSS {large['rss_before_mb']:.0f} -> peak {large['peak_rss_mb']:.0f} MiB; "
                    f"400 slow sockets: threads {slow['threads_before']} -> {slow['threads_with_sockets']}, "
                    f"{slow['served_meanwhile']}/5 requests served meanwhile, {slow['closed_by_server']} closed by the server")
    start = results.get("startup")
    if start:
        add(f"6. Start-up, fresh interpreters, median (min-max) of {start['repeats']} interleaved runs; import ms = python -X importtime "
            "(cumulative, the statement's own imports)")
        reference = start["imports"]["reference: sdk.trace + OTLP/HTTP exporter"]["importtime_ms"]["median"]
        for name, row in start["imports"].items():
            add(f"   {name:45} {fmt_range(row['importtime_ms']):>22} ms  = {row['importtime_ms']['median'] / reference:.2f}x the reference")
        for name, row in start["commands"].items():
            add(f"   {name:45} {fmt_range(row['wall_ms']):>22} ms wall, whole process")
    return rows


def bridge_available() -> bool:
    try:
        import otel_lunary.bridge  # noqa: F401
        from otel_lunary.bridge import Bridge  # noqa: F401
    except Exception:  # noqa: BLE001 - not landed or broken: reported as n/a
        return False
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller counts, for a quick look")
    parser.add_argument("--json", default=str(common.BENCH / "results.json"), help="where to write the figures (default: %(default)s)")
    parser.add_argument("--only", help=f"comma-separated sections: {', '.join(SECTIONS)}")
    args = parser.parse_args()
    chosen = [s.strip() for s in args.only.split(",")] if args.only else list(SECTIONS)
    unknown = [s for s in chosen if s not in SECTIONS]
    if unknown:
        parser.error(f"unknown section {', '.join(unknown)}")
    results: dict[str, Any] = {"machine": machine(), "quick": args.quick, "command": " ".join(["python", "bench/run.py", *sys.argv[1:]])}
    flags = ["--quick"] if args.quick else []
    for section in chosen:
        started = time.perf_counter()
        print(f"[{section}] running...", file=sys.stderr, flush=True)
        if section == "bridge" and not bridge_available():
            results[section] = {"skipped": "n/a (bridge not landed)"}
            continue
        try:
            results[section] = common.run_worker(SCRIPTS[section], flags, timeout=TIMEOUTS[section])
        except Exception as problem:  # noqa: BLE001 - one section failing still prints the others
            results[section] = {"skipped": f"failed: {str(problem).splitlines()[0]}", "error": str(problem)}
            print(f"[{section}] failed: {problem}", file=sys.stderr)
        print(f"[{section}] {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    m = results["machine"]
    print(f"otel-lunary bench, {m['date']}: {m['nproc']} x {m['cpu']}, Python {m['python']}, "
          f"opentelemetry-sdk {m['opentelemetry_sdk']}, lunary {m['lunary']}{' (--quick)' if args.quick else ''}")
    for row in table({k: v for k, v in results.items() if isinstance(v, dict) and not v.get("skipped") or k == "bridge"}):
        print(row)
    for section in chosen:
        if section != "bridge" and results.get(section, {}).get("skipped"):
            print(f"{section}: {results[section]['skipped']}")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"figures written to {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
