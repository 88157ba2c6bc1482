"""Streaming reader of OTLP JSON Lines files (plain, rotated, .gz, .zst, directories).

Files are read in chunks (``lines``) and each line is dropped once its spans are yielded,
so memory does not grow with the file. A line that cannot be used (truncated, not JSON,
not OTLP) and a span without ids are reported as ``Problem`` with file and line, and
skipped; the rest of the input still replays.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Generator, Iterable, Iterator
from pathlib import Path
from typing import TextIO

from otel_lunary._settings import command_setting
from otel_lunary.replay._gc import FULL_COLLECTION_THRESHOLD, deferred_collections
from otel_lunary.replay.decode import otlp_spans
from otel_lunary.replay.jsonparse import ENV_JSON_PARSER, line_parser
from otel_lunary.replay.lines import chunked_lines, open_binary
from otel_lunary.replay.progress import Progress
from otel_lunary.replay.records import Problem, SpanRecord

__all__ = ["ENV_JSON_PARSER", "FULL_COLLECTION_THRESHOLD", "ProblemSink", "expand_paths", "read_file", "read_lines", "read_numbered_lines", "rotated_siblings"]

ProblemSink = Callable[[Problem], None]

ENV_MAX_LINE_BYTES = "OTEL_LUNARY_REPLAY_MAX_LINE_BYTES"
DEFAULT_MAX_LINE_BYTES = 64 * 2**20


_BLANKS = frozenset(b" \t\n\r\x0b\x0c")  # the bytes ``bytes.isspace`` takes for blanks

_TRACE_SUFFIXES = (".jsonl", ".json", ".ndjson", ".jsonl.gz", ".json.gz", ".jsonl.zst", ".json.zst", ".gz", ".zst")


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


def read_file(path: Path, on_problem: ProblemSink, *, progress_stream: TextIO | None = None) -> Iterator[SpanRecord]:
    """Spans of one OTLP JSON Lines file, line by line (see ``read_lines``)."""
    for spans in read_lines(path, on_problem, progress_stream=progress_stream):
        yield from spans


def max_line_bytes(value: int | None = None) -> int:
    """The longest line replay reads: ``value``, else ``OTEL_LUNARY_REPLAY_MAX_LINE_BYTES``, else 64 MiB.

    Memory follows the longest line (it is parsed whole), so a file without newlines or a
    decompression bomb is bounded by this. Raises ``ValueError`` for a value that is not a
    positive integer.
    """
    return int(command_setting(int, value, ENV_MAX_LINE_BYTES, DEFAULT_MAX_LINE_BYTES, "the maximum line length in bytes"))


def read_lines(
    path: Path, on_problem: ProblemSink, *, progress_stream: TextIO | None = None, max_line: int | None = None
) -> Iterator[list[SpanRecord]]:
    """The spans of each line of one OTLP JSON Lines file, a list per line.

    A line that is not JSON, a shape that is not OTLP, a line longer than ``max_line``
    bytes (``max_line_bytes``) and a span replay cannot place are reported with the file
    and line and skipped. The cyclic garbage collector is held off while the file is read
    (see ``_gc``). A list per line lets a caller chain the spans at C speed
    (``sources.read_sources``).
    """
    return (records for _, records in read_numbered_lines(path, on_problem, progress_stream=progress_stream, max_line=max_line))


def read_numbered_lines(
    path: Path, on_problem: ProblemSink, *, progress_stream: TextIO | None = None, max_line: int | None = None
) -> Generator[tuple[int, list[SpanRecord]], None, None]:
    """``read_lines`` with each list's line number (from 1; blank and skipped lines count)."""
    limit = max_line_bytes(max_line)
    label = str(path)
    try:
        raw = open(path, "rb")  # noqa: SIM115 - closed in finally, after the generator ends
    except OSError as exc:
        on_problem(Problem(label, None, f"cannot open: {exc.strerror or exc}"))
        return
    progress = Progress(path.name, os.fstat(raw.fileno()).st_size, stream=progress_stream)
    deferred = deferred_collections()
    deferred.__enter__()
    try:
        try:
            stream = open_binary(path, raw)
        except OSError as exc:
            on_problem(Problem(label, None, str(exc)))
            return
        line_no = 0
        spans = 0
        loads = line_parser()
        try:
            for line_no, place in enumerate(chunked_lines(stream, limit), start=1):  # noqa: B007 - used after the loop
                if place is None:
                    on_problem(Problem(label, line_no, f"line longer than {limit} bytes ({ENV_MAX_LINE_BYTES}); skipped"))
                    continue
                buffer, start, end = place
                # what ``not line.strip()`` says of a line, without copying it (a line is
                # never empty, and one whose first byte is not a blank is not all blanks)
                if buffer[start] in _BLANKS and buffer[start:end].isspace():
                    continue
                try:
                    request = loads(buffer, start, end)
                except ValueError as exc:
                    truncated = not buffer.endswith(b"\n", start, end)
                    why = "truncated line" if truncated else "not valid JSON"
                    on_problem(Problem(label, line_no, f"{why} ({exc}); skipped"))
                    continue
                except RecursionError:
                    on_problem(Problem(label, line_no, "JSON nested too deeply to read; skipped"))
                    continue

                def report(message: str, _line: int = line_no) -> None:
                    on_problem(Problem(label, _line, f"{message}; skipped"))

                records = otlp_spans(request, report)
                del request
                spans += len(records)
                yield line_no, records
                progress.update(raw.tell(), spans)
        except (OSError, EOFError) as exc:  # corrupt or truncated compressed stream
            on_problem(Problem(label, line_no + 1, f"cannot read further: {exc}; rest of file skipped"))
    finally:
        deferred.__exit__(None, None, None)
        progress.close()
        raw.close()
