"""Section 4: replay throughput over a large OTLP JSON Lines file, and peak RSS.

The file is made from real spans: ``spans.record_turns`` records 256 turns (user
message, event, reply, feedback: 1024 spans over 8 threads) with the SDK, the file
exporter's encoder writes them as OTLP JSON lines of 512 spans (what the
BatchSpanProcessor hands the file exporter), and the lines are replicated with fresh
trace ids, span ids and thread ids per copy until the file holds the asked number of
spans. Each stage runs in its own interpreter so ``ru_maxrss`` is that stage's peak:

- ``json``: ``json.loads`` of every line, nothing else: the parsing floor (with the
  garbage collector on, as it always ran; reader and replay turn it off while reading);
- ``read``: ``otel_lunary.replay.sources.read_sources``: parse + the ``SpanRecord`` views
  (ids and times checked, attributes left undecoded until read);
- ``replay``: ``Assembler.extend(read_sources(...))`` + ``finish()``: what
  ``otel-lunary replay`` does before rendering.

    python bench/replay_bench.py [--quick] [--spans N] [--file PATH]

``--streaming`` instead runs ``otel-lunary replay FILE`` end to end (terminal, json,
``--list``; to /dev/null) with streaming on and off, one interpreter each, for peak RSS;
``--one-conversation`` makes the file one thread long, ``--file`` measures a given file:

    python bench/replay_bench.py --streaming [--one-conversation] [--spans N] [--file PATH] [--dir DIR]

``--formats`` measures instead every output format end to end (``otel-lunary replay
FILE --format F > /dev/null``, and ``--list``), each in its own interpreter right after a
run of the ``json.loads`` floor of the same lines (its ratio is to that run), on two files of the same span count: the one
above (``current``) and one cloned from ``otel-lunary demo`` conversations
(``realistic``: LLM call spans carrying their message histories, a tool call, events,
feedback given, removed and given again; about 1.2 KB a span, ``generate_realistic``).
``--parser json`` makes replay use the standard library's ``json`` (as without orjson),
``--parser orjson`` orjson when installed, ``both`` runs each (the floor is ``json.loads``):

    python bench/replay_bench.py --formats [--spans N] [--parser json|orjson|both] [--repeats R] [--dir DIR]

``--instructions`` counts instead what each stage executes, with callgrind (``valgrind``
must be installed): a stage's instructions on a file of ``--copies`` copies minus those on
a one-copy file, divided by the span difference, so interpreter start-up, imports and the
per-file work cancel out. Counts do not move with the machine's load (wall and CPU time
on a shared machine move more than the differences between formats), so this is the
table the "every format at >= 0.5 of the floor" target is read from:

    python bench/replay_bench.py --formats --instructions [--copies 7] [--parser orjson] [--dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common

LINE_SPANS = 512
_ID = re.compile(r"\b[0-9a-f]{32}\b|\b[0-9a-f]{16}\b|\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")


def generate(path: Path, total: int, spans: list | None = None) -> int:
    """Write ``total`` spans (rounded up to whole copies) to ``path``; returns the span count.

    ``spans``: the recorded spans to clone (default: ``spans.record_turns(256)``).
    """
    from otel_lunary.export.otlp_json import encode_line

    if spans is None:
        from spans import record_turns

        spans = record_turns(256)
    text = "".join(encode_line(spans[i : i + LINE_SPANS]).decode() for i in range(0, len(spans), LINE_SPANS))
    ids = sorted(set(_ID.findall(text)))
    pieces = _ID.split(text)  # even: literal text, odd: an id (by position)
    found = _ID.findall(text)
    index = {value: n for n, value in enumerate(ids)}
    slots = [index[value] for value in found]
    copies = -(-total // len(spans))
    with open(path, "w", encoding="utf-8") as out:
        for copy in range(copies):
            tag = f"{copy + 1:08x}"
            fresh = [value[:-8] + tag for value in ids]  # last 8 hex digits carry the copy number
            out_parts = [pieces[0]]
            for slot, literal in zip(slots, pieces[1:]):
                out_parts.append(fresh[slot])
                out_parts.append(literal)
            out.write("".join(out_parts))
    return copies * len(spans)


REALISTIC_THREADS = 64  # runs of the demo conversation recorded, then cloned


def generate_realistic(path: Path, total: int) -> int:
    """Like ``generate``, cloning ``REALISTIC_THREADS`` recorded demo conversations."""
    from spans import record_demo_threads

    return generate(path, total, record_demo_threads(REALISTIC_THREADS))


FORMATS = ("terminal", "markdown", "json", "html", "openai", "list")


def run_format_stage(fmt: str, path: Path, spans: int) -> dict:
    """``otel-lunary replay FILE --format fmt`` (``--list`` for ``list``) written to /dev/null,
    through the command's own entry point; ``spans`` is the file's span count (from the floor)."""
    import argparse

    from otel_lunary.replay.command import add_arguments, replay

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args([str(path), "--list"] if fmt == "list" else [str(path), "--format", fmt])
    started = time.perf_counter()
    cpu0 = time.process_time()
    with open(os.devnull, "w", encoding="utf-8") as out:
        status = replay(args, out, sys.stderr)
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu0
    return {"stage": fmt, "status": status, "spans": spans, "seconds": elapsed, "spans_per_s": spans / elapsed,
            "spans_per_cpu_s": spans / cpu, "peak_rss_mb": common.peak_rss_mb()}


def measure_formats(path: Path, parsers: list[str], repeats: int = 1) -> dict:
    """The reader and every format on ``path``, each in a fresh interpreter, each right
    after a run of the floor: its ratio is to that floor, so a machine whose load changes
    during the run (a shared one) moves both alike. With ``repeats`` > 1 every pair runs
    that many times, rounds interleaved, and a row is the pair with the median ratio."""
    floors = []
    pairs: dict[str, list[dict]] = {}
    for _ in range(repeats):
        for parser in parsers:
            env = {"OTEL_LUNARY_REPLAY_JSON": "json" if parser == "json" else "auto"}
            stages = [("read", ["--stage=read"]), *((fmt, [f"--format-stage={fmt}"]) for fmt in FORMATS)]
            for name, stage_args in stages:
                floor = common.run_worker("replay_bench.py", ["--stage=json", f"--file={path}"], timeout=1800)
                floors.append(floor)
                row = common.run_worker("replay_bench.py", [*stage_args, f"--span-count={floor['spans']}", f"--file={path}"], timeout=1800, env=env)
                row["floor_spans_per_s"] = floor["spans_per_s"]
                row["ratio"] = row["spans_per_s"] / floor["spans_per_s"]
                row["cpu_ratio"] = row["spans_per_cpu_s"] / floor["spans_per_cpu_s"]
                pairs.setdefault(f"{name} ({parser})", []).append(row)
    rows = {name: sorted(runs, key=lambda r: r["ratio"])[len(runs) // 2] for name, runs in pairs.items()}
    median = sorted(floors, key=lambda f: f["spans_per_s"])[len(floors) // 2]
    return {"file_mb": os.path.getsize(path) / 2**20, "spans": median["spans"], "repeats": repeats, "rows": {"json.loads floor (median)": median, **rows}}


def print_formats(results: dict) -> None:
    for file, result in results.items():
        print(f"{file}: {result['spans']:,} spans, {result['file_mb']:.0f} MiB, median of {result.get('repeats', 1)} paired run(s)")
        print(f"   {'stage':26} {'spans/s':>9} {'floor':>9} {'ratio':>6} {'cpu ratio':>9} {'peak RSS':>9}")
        for name, row in result["rows"].items():
            floor = row.get("floor_spans_per_s", row["spans_per_s"])
            ratio = row.get("ratio", 1.0)
            cpu_ratio = row.get("cpu_ratio", 1.0)
            print(f"   {name:26} {row['spans_per_s']:>9,.0f} {floor:>9,.0f} {ratio:>6.2f} {cpu_ratio:>9.2f} {row['peak_rss_mb']:>6,.0f} MiB")


def formats_main(total: int, parser: str, directory: str | None, repeats: int = 1) -> None:
    parsers = ["json", "orjson"] if parser == "both" else [parser]
    with tempfile.TemporaryDirectory(prefix="otel-lunary-bench-") as tmp:
        where = Path(directory or tmp)
        where.mkdir(parents=True, exist_ok=True)
        results = {}
        for name, make in (("current", generate), ("realistic", generate_realistic)):
            path = where / f"replay-{name}-{total}.otlp.jsonl"
            if not path.exists():
                make(path, total)
            results[name] = measure_formats(path, parsers, repeats)
        print_formats(results)
        common.emit({"formats": results})


# Instruction counts (``--formats --instructions``): the differential callgrind recipe.
def callgrind_instructions(stage_args: list[str], path: Path, env: dict[str, str]) -> int:
    """Instructions ``replay_bench.py STAGE_ARGS --file=PATH`` executes, start-up included."""
    full_env = {**os.environ, **env, "PYTHONHASHSEED": "0"}  # str hashes decide dict probing: fixed
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(common.ROOT), full_env.get("PYTHONPATH")]))
    proc = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
         str(common.BENCH / "replay_bench.py"), *stage_args, f"--file={path}"],
        capture_output=True, text=True, timeout=3600, env=full_env, cwd=str(common.ROOT),
    )
    found = re.search(r"Collected : (\d+)", proc.stderr)
    if proc.returncode != 0 or not found:
        raise RuntimeError(f"callgrind of {stage_args} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return int(found.group(1))


def instructions_per_span(stage_args: list[str], small: tuple[Path, int], big: tuple[Path, int], env: dict[str, str]) -> float:
    """(instructions on ``big`` - on ``small``) / (their span difference), the two runs side by side."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:
        runs = [pool.submit(callgrind_instructions, stage_args, path, env) for path, _ in (small, big)]
        counts = [run.result() for run in runs]
    return (counts[1] - counts[0]) / (big[1] - small[1])


def instructions_main(copies: int, parser: str, directory: str | None) -> None:
    if shutil.which("valgrind") is None:
        raise SystemExit("--instructions needs valgrind (Debian: apt-get install valgrind)")
    parsers = ["json", "orjson"] if parser == "both" else [parser]
    with tempfile.TemporaryDirectory(prefix="otel-lunary-bench-") as tmp:
        where = Path(directory or tmp)
        where.mkdir(parents=True, exist_ok=True)
        results: dict = {}
        from spans import record_demo_threads, record_turns

        for name, record in (("current", lambda: record_turns(256)), ("realistic", lambda: record_demo_threads(REALISTIC_THREADS))):
            spans = record()  # both files clone the same recording, so they differ by copies alone
            one = where / f"replay-{name}-1-copy.otlp.jsonl"
            many = where / f"replay-{name}-{copies}-copies.otlp.jsonl"
            small = (one, generate(one, 1, spans))  # one copy: ``generate`` rounds up to whole copies
            big = (many, generate(many, small[1] * copies, spans))
            floor = instructions_per_span(["--stage=json"], small, big, {})
            rows = {"json.loads floor": {"k_per_span": floor / 1000, "ratio": 1.0}}
            for parser_name in parsers:
                env = {"OTEL_LUNARY_REPLAY_JSON": "json" if parser_name == "json" else "auto"}
                stages = [("read", ["--stage=read"]), *((fmt, [f"--format-stage={fmt}", "--span-count=1"]) for fmt in FORMATS)]
                for stage, stage_args in stages:
                    cost = instructions_per_span(stage_args, small, big, env)
                    rows[f"{stage} ({parser_name})"] = {"k_per_span": cost / 1000, "ratio": floor / cost}
                    print(f"# {name} {stage} ({parser_name}): {cost / 1000:.1f}k instructions a span", file=sys.stderr)
            results[name] = {"spans": (small[1], big[1]), "rows": rows}
        for name, result in results.items():
            print(f"{name}: instructions a span, {result['spans'][1]:,} spans minus {result['spans'][0]:,} (callgrind)")
            print(f"   {'stage':26} {'k instr/span':>12} {'floor/stage':>11}")
            for stage, row in result["rows"].items():
                mark = "" if stage.startswith(("json.loads", "read")) or row["ratio"] >= 0.5 else "  < 0.5"
                print(f"   {stage:26} {row['k_per_span']:>12.1f} {row['ratio']:>11.2f}{mark}")
        common.emit({"instructions": results})


def run_stage(stage: str, path: Path) -> dict:
    started = time.perf_counter()
    cpu0 = time.process_time()
    if stage == "json":
        spans = 0
        with open(path, "rb") as handle:
            for line in handle:
                request = json.loads(line)
                for resource in request["resourceSpans"]:
                    for scope in resource["scopeSpans"]:
                        spans += len(scope["spans"])
        extra: dict = {}
    elif stage == "read":
        from otel_lunary.replay.sources import read_sources

        problems: list = []
        spans = sum(1 for _ in read_sources([path], problems.append))
        extra = {"problems": len(problems)}
    else:
        from otel_lunary.replay.assemble import Assembler
        from otel_lunary.replay.sources import read_sources

        problems = []
        assembler = Assembler()
        assembler.extend(read_sources([path], problems.append))  # what `otel-lunary replay` does
        conversations = assembler.finish()
        spans = assembler.spans_read
        extra = {
            "problems": len(problems) + len(assembler.problems),
            "conversations": len(conversations),
            "messages": sum(len(c.messages) for c in conversations),
        }
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu0
    return {"stage": stage, "spans": spans, "seconds": elapsed, "spans_per_s": spans / elapsed,
            "spans_per_cpu_s": spans / cpu, "peak_rss_mb": common.peak_rss_mb(), **extra}


# Streaming replay (issue 14 item 3, the memory half): ``otel-lunary replay FILE`` run
# end to end (scan, read, assemble, render to /dev/null) with streaming on and off, each in
# its own interpreter so ``ru_maxrss`` is that run's peak. Also on a file where one thread
# spans everything (``generate_one_conversation``): the worst case, held whole.
STREAM_RUNS = ("terminal stream", "terminal whole", "json stream", "json whole", "list stream")


WHOLE_FILE_THREAD = "thread-spanning-the-file"  # not an id ``generate`` refreshes per copy


def record_one_thread(turns: int) -> list:
    """``spans.record_turns``'s turns (user message, event, reply, feedback), all in one
    thread whose id ``generate`` keeps: every copy continues the same conversation."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from workload import ASSISTANT_MESSAGE, EVENT_METADATA, EVENT_NAME, FEEDBACK, THREAD_TAGS, USER_ID, USER_MESSAGE

    import otel_lunary as lunary

    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "bench"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    lunary.configure(tracer_provider=provider, capture_content=True)
    thread = lunary.open_thread(WHOLE_FILE_THREAD, tags=THREAD_TAGS, user_id=USER_ID)
    for _ in range(turns):
        thread.track_message(USER_MESSAGE)
        thread.track_event(EVENT_NAME, metadata=EVENT_METADATA)
        lunary.track_feedback(thread.track_message(ASSISTANT_MESSAGE), FEEDBACK)
    spans = list(memory.get_finished_spans())
    lunary.shutdown()
    provider.shutdown()
    return spans


def generate_one_conversation(path: Path, total: int) -> int:
    """Like ``generate``, but one conversation spans the whole file."""
    return generate(path, total, record_one_thread(256))


def run_stream(run: str, path: Path) -> dict:
    """One ``otel-lunary replay`` run: "<format> stream|whole"."""
    from otel_lunary.cli import build_parser
    from otel_lunary.replay.command import replay

    fmt, mode = run.split()
    argv = ["replay", str(path), *(["--list"] if fmt == "list" else ["--format", fmt])]
    args = build_parser(argv).parse_args(argv)
    started = time.perf_counter()
    cpu0 = time.process_time()
    with open(os.devnull, "w", encoding="utf-8") as out:
        status = replay(args, out, sys.stderr, streaming=mode == "stream")
    elapsed = time.perf_counter() - started
    return {"run": run, "status": status, "seconds": elapsed, "cpu_s": time.process_time() - cpu0, "peak_rss_mb": common.peak_rss_mb()}


def stream_main(total: int, directory: str | None, one_conversation: bool, file: str | None = None) -> None:
    """``file``: measure an existing file (``--file``, e.g. the realistic one) instead."""
    with tempfile.TemporaryDirectory(prefix="otel-lunary-bench-", dir=directory) as tmp:
        shape = "one" if one_conversation else "many"
        if file:
            path, shape = Path(file), Path(file).name
            spans = sum(line.count(b'"traceId"') for line in open(path, "rb"))  # compact OTLP JSON: one per span
        else:
            path = Path(tmp) / f"replay-{shape}.otlp.jsonl"
            spans = (generate_one_conversation if one_conversation else generate)(path, total)
        runs = {}
        for run in STREAM_RUNS:
            runs[run] = common.run_worker("replay_bench.py", [f"--stream-run={run}", f"--file={path}"], timeout=3600)
            print(f"# {shape} {spans} spans: {run}: {runs[run]['seconds']:.1f} s, peak RSS {runs[run]['peak_rss_mb']:.0f} MB", file=sys.stderr)
        common.emit({"spans": spans, "file_mb": os.path.getsize(path) / 2**20, "one_conversation": one_conversation, "runs": runs})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--spans", type=int)
    parser.add_argument("--file", help="reuse (or create) this file instead of a temporary one")
    parser.add_argument("--formats", action="store_true", help="every output format on the current and the realistic file")
    parser.add_argument("--parser", choices=("json", "orjson", "both"), default="both", help="with --formats: replay's JSON parser")
    parser.add_argument("--instructions", action="store_true", help="with --formats: instructions a span by callgrind instead of time")
    parser.add_argument("--repeats", type=int, default=1, help="with --formats: runs of each pair; a row is the median-ratio pair")
    parser.add_argument("--copies", type=int, default=7, help="with --instructions: copies in the big file (the small one has one)")
    parser.add_argument("--dir", help="where generated bench files go (--formats keeps and reuses them; default: $TMPDIR)")
    parser.add_argument("--stage", choices=("json", "read", "replay"), help=argparse.SUPPRESS)
    parser.add_argument("--streaming", action="store_true", help="replay end to end, streaming on and off (peak RSS)")
    parser.add_argument("--one-conversation", action="store_true", help="with --streaming: one thread spans the whole file")
    parser.add_argument("--stream-run", choices=STREAM_RUNS, help=argparse.SUPPRESS)
    parser.add_argument("--format-stage", choices=FORMATS, help=argparse.SUPPRESS)
    parser.add_argument("--span-count", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:
        common.emit(run_stage(args.stage, Path(args.file)))
        return
    if args.stream_run:
        common.emit(run_stream(args.stream_run, Path(args.file)))
        return
    if args.format_stage:
        common.emit(run_format_stage(args.format_stage, Path(args.file), args.span_count))
        return
    total = args.spans or (100_000 if args.quick else 1_000_000)
    if args.streaming:
        stream_main(total, args.dir, args.one_conversation, args.file)
        return
    if args.formats and args.instructions:
        instructions_main(args.copies, args.parser, args.dir)
        return
    if args.formats:
        formats_main(total if args.spans or args.quick else 200_000, args.parser, args.dir, args.repeats)
        return
    with tempfile.TemporaryDirectory(prefix="otel-lunary-bench-") as tmp:
        path = Path(args.file) if args.file else Path(tmp) / "replay.otlp.jsonl"
        t0 = time.perf_counter()
        if not (args.file and path.exists()):
            generate(path, total)
        generated_s = time.perf_counter() - t0
        stages = {}
        for stage in ("json", "read", "replay"):
            stages[stage] = common.run_worker("replay_bench.py", [f"--stage={stage}", f"--file={path}"], timeout=1800)
        common.emit({"file_mb": os.path.getsize(path) / 2**20, "generate_s": generated_s, "stages": stages})


if __name__ == "__main__":
    sys.exit(main())
