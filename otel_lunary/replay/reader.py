"""Streaming reader: OTLP JSON Lines files (plain, rotated, .gz, .zst) and remote APIs.

Files are read one line at a time and each line is dropped once its spans are yielded,
so memory does not grow with the file. A line that cannot be used (truncated, not JSON,
not OTLP) and a span without ids are reported as ``Problem`` with file and line, and
skipped; the rest of the input still replays.
"""

from __future__ import annotations

import gc
import gzip
import io
import json
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TextIO

from otel_lunary.replay.decode import iter_request_spans

if TYPE_CHECKING:
    from otel_lunary.replay.assemble import Assembler
from otel_lunary.replay.progress import Progress
from otel_lunary.replay.records import Problem, SpanRecord

ProblemSink = Callable[[Problem], None]

ENV_JSON_PARSER = "OTEL_LUNARY_REPLAY_JSON"


def _choose_loads() -> Callable[[bytes], Any]:
    """``orjson.loads`` when installed (optional, about 1.7x faster here), else ``json.loads``.

    ``OTEL_LUNARY_REPLAY_JSON=json`` forces the standard library. A line orjson refuses is
    parsed again by ``json.loads``, so what is accepted, the values and the error messages
    are the standard library's either way (orjson only refuses more: NaN, huge integers).
    """
    if os.environ.get(ENV_JSON_PARSER, "").strip().lower() == "json":
        return json.loads
    try:
        import orjson  # optional speed-up, not a dependency
    except ImportError:
        return json.loads
    fast = orjson.loads

    def loads(line: bytes) -> Any:
        try:
            return fast(line)
        except ValueError:
            return json.loads(line)

    return loads


_TRACE_SUFFIXES = (".jsonl", ".json", ".ndjson", ".jsonl.gz", ".json.gz", ".jsonl.zst", ".json.zst", ".gz", ".zst")


@dataclass(frozen=True)
class JaegerSource:
    """A Jaeger v2 query service (``/api/v3``) to search by conversation id."""

    url: str
    service: str | None = None


@dataclass(frozen=True)
class PhoenixSource:
    """A Phoenix server and project, read through ``GET /v1/projects/{project}/spans``."""

    url: str
    project: str = "default"


Source = Path | JaegerSource | PhoenixSource


def rotated_siblings(path: Path) -> list[Path]:
    """``path`` and its rotated backups, oldest first.

    Covers the Collector file exporter (lumberjack: ``name-2024-01-02T15-04-05.000.jsonl``,
    optionally ``.gz``) and numbered rotation (``name.jsonl.1``, ``name.jsonl.1.gz``).
    """
    directory = path.parent
    compressed = r"(\.gz|\.zst)?"
    patterns = (
        re.compile(rf"{re.escape(path.stem)}-\d{{4}}-\d\d-\d\dT[\d-]+(\.\d+)?{re.escape(path.suffix)}{compressed}"),
        re.compile(rf"{re.escape(path.name)}\.\d+{compressed}"),
    )
    backups = []
    if directory.is_dir():
        backups = [c for c in directory.iterdir() if c.is_file() and any(p.fullmatch(c.name) for p in patterns)]
    ordered = sorted(backups, key=lambda p: (p.stat().st_mtime, p.name))
    return ordered + ([path] if path.exists() else [])


def expand_paths(paths: Iterable[Path]) -> list[Path]:
    """Files to read: each file with its rotated backups, each directory's trace files."""
    result: list[Path] = []
    for path in paths:
        if path.is_dir():
            files = [p for p in path.iterdir() if p.is_file() and p.name.endswith(_TRACE_SUFFIXES)]
            result.extend(sorted(files, key=lambda p: (p.stat().st_mtime, p.name)))
        else:
            result.extend(rotated_siblings(path) or [path])
    unique: dict[Path, Path] = {}
    for path in result:
        unique.setdefault(path.resolve(), path)
    return list(unique.values())


def _open_binary(path: Path, raw: IO[bytes]) -> IO[bytes]:
    """A decompressing view of ``raw`` chosen by magic bytes, so a misnamed file still reads."""
    head = raw.read(4)
    raw.seek(0)
    if head[:2] == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=raw)  # type: ignore[return-value]
    if head == b"\x28\xb5\x2f\xfd":
        try:
            import zstandard  # optional: only for .zst files
        except ImportError:
            raise OSError(f"{path} is zstd-compressed; install 'zstandard' or decompress it first") from None
        return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(raw))  # type: ignore[arg-type]
    return raw


# While files are parsed and assembled, the cyclic garbage collector is off: parsing
# makes millions of small acyclic containers and the assembler keeps a share of them, so
# every collection walks an ever larger heap for nothing (a third of the replay time on
# 1M spans with only full collections deferred, see docs/performance.md). Nothing replay
# makes while reading is cyclic, so reference counting frees it all the same. The
# collector's state and thresholds come back when the last file being read is done;
# ``Assembler.finish`` turns it off the same way while it joins. Objects made while it
# was off are all still in the youngest generation then, and the first young collection
# would walk every one of them (1.3 s after 1M spans): unless the program froze objects
# itself, ``gc.freeze()`` + ``gc.unfreeze()`` first moves them, in constant time, to the
# oldest generation, where they are collected as usual, only not walked by every young
# collection.
FULL_COLLECTION_THRESHOLD = 1000
_gc_lock = threading.Lock()
_gc_readers = 0
_gc_saved: tuple[bool, tuple[int, int, int]] | None = None


@contextmanager
def deferred_full_collections() -> Iterator[None]:
    """No cyclic garbage collection inside (counted across threads); restored after the last one."""
    global _gc_readers, _gc_saved
    with _gc_lock:
        _gc_readers += 1
        if _gc_readers == 1:
            enabled, thresholds = gc.isenabled(), gc.get_threshold()
            _gc_saved = (enabled, thresholds)
            young, middle, old = thresholds
            gc.set_threshold(young, middle, max(old, FULL_COLLECTION_THRESHOLD))
            gc.disable()
    try:
        yield
    finally:
        with _gc_lock:
            _gc_readers -= 1
            if _gc_readers == 0 and _gc_saved is not None:
                enabled, thresholds = _gc_saved
                if gc.get_freeze_count() == 0:
                    gc.freeze()  # everything to the permanent generation...
                    gc.unfreeze()  # ...and back, into the oldest one
                gc.set_threshold(*thresholds)
                if enabled:
                    gc.enable()
                _gc_saved = None


def read_file(path: Path, on_problem: ProblemSink, *, progress_stream: TextIO | None = None) -> Iterator[SpanRecord]:
    """Spans of one OTLP JSON Lines file, line by line."""
    spans = 0
    for request, report in file_requests(path, on_problem, progress_stream=progress_stream, spans_seen=lambda: spans):
        for span in iter_request_spans(request, report):
            spans += 1
            yield span


def file_requests(
    path: Path,
    on_problem: ProblemSink,
    *,
    progress_stream: TextIO | None = None,
    spans_seen: Callable[[], int] = lambda: 0,
) -> Iterator[tuple[Any, Callable[[str], None]]]:
    """Each line of one OTLP JSON Lines file parsed, with the sink for that line's problems.

    Lines that are not JSON are reported and skipped; what the object holds is for the
    caller to decode (``iter_request_spans``, ``Assembler.add_request``). ``spans_seen``
    tells the progress meter how many spans the caller has taken so far.
    """
    label = str(path)
    try:
        raw = open(path, "rb")  # noqa: SIM115 - closed in finally, after the generator ends
    except OSError as exc:
        on_problem(Problem(label, None, f"cannot open: {exc.strerror or exc}"))
        return
    progress = Progress(path.name, os.fstat(raw.fileno()).st_size, stream=progress_stream)
    deferred = deferred_full_collections()
    deferred.__enter__()
    try:
        try:
            stream = _open_binary(path, raw)
        except OSError as exc:
            on_problem(Problem(label, None, str(exc)))
            return
        line_no = 0
        loads = _choose_loads()
        try:
            for line_no, line in enumerate(stream, start=1):  # noqa: B007 - used after the loop
                if not line.strip():
                    continue
                try:
                    request = loads(line)
                except ValueError as exc:
                    truncated = not line.endswith(b"\n")
                    why = "truncated line" if truncated else "not valid JSON"
                    on_problem(Problem(label, line_no, f"{why} ({exc}); skipped"))
                    continue

                def report(message: str, _line: int = line_no) -> None:
                    on_problem(Problem(label, _line, f"{message}; skipped"))

                yield request, report
                del request
                progress.update(raw.tell(), spans_seen())
        except (OSError, EOFError) as exc:  # corrupt or truncated compressed stream
            on_problem(Problem(label, line_no + 1, f"cannot read further: {exc}; rest of file skipped"))
    finally:
        deferred.__exit__(None, None, None)
        progress.close()
        raw.close()


def read_sources(
    sources: Iterable[Source],
    on_problem: ProblemSink,
    *,
    conversation_ids: frozenset[str] = frozenset(),
    since_ns: int | None = None,
    until_ns: int | None = None,
) -> Iterator[SpanRecord]:
    """Spans from every source in turn. Remote sources use the filters to ask for less."""
    for source in sources:
        if isinstance(source, JaegerSource):
            from otel_lunary.replay.jaeger import read_jaeger

            yield from read_jaeger(source, on_problem, conversation_ids=conversation_ids, since_ns=since_ns, until_ns=until_ns)
        elif isinstance(source, PhoenixSource):
            from otel_lunary.replay.phoenix import read_phoenix

            yield from read_phoenix(source, on_problem, conversation_ids=conversation_ids, since_ns=since_ns, until_ns=until_ns)
        else:
            for path in expand_paths([source]):
                yield from read_file(path, on_problem)


def feed_sources(
    sources: Iterable[Source],
    assembler: Assembler,
    on_problem: ProblemSink,
    *,
    conversation_ids: frozenset[str] = frozenset(),
    since_ns: int | None = None,
    until_ns: int | None = None,
) -> None:
    """``assembler.add`` every span of ``read_sources``; files go line by line through
    ``Assembler.add_request``, which skips building a ``SpanRecord`` per span."""
    for source in sources:
        if isinstance(source, Path):
            for path in expand_paths([source]):
                for request, report in file_requests(path, on_problem, spans_seen=lambda: assembler.spans_read):
                    assembler.add_request(request, report)
        else:
            for span in read_sources([source], on_problem, conversation_ids=conversation_ids, since_ns=since_ns, until_ns=until_ns):
                assembler.add(span)
