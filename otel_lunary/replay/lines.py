"""The lines of a trace file, read in large chunks, as both passes of a replay number them.

A Collector or otel-lunary file holds a batch of spans a line (hundreds of kilobytes);
``readline`` on such lines cost four times a chunked read (0.65 against 0.15 µs a span on
the realistic bench file), for the scan (``scan``) and the read (``reader``) alike. Here
the file is read ``CHUNK`` bytes at a time and each line handed out as a place in a
buffer, so the scan searches it in place and the reader slices it once.

Line semantics are ``readline``'s: a line ends after ``\\n`` (``\\r\\n`` keeps its
``\\r``), the last one may have no newline, line numbers count every line (blank and
skipped ones too). A line longer than the limit (its newline included) is never held
beyond the limit: what is read of it is dropped as it comes, and it is given as None.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Iterator
from pathlib import Path
from typing import IO

__all__ = ["CHUNK", "Line", "chunked_lines", "open_binary"]

CHUNK = 2**21  # bytes read at a time: larger chunks raised the scan's peak RSS more than they saved

Line = tuple[bytes, int, int]
"""A line as ``buffer[start:end]``, its newline included when it has one."""


def open_binary(path: Path, raw: IO[bytes]) -> IO[bytes]:
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


def chunked_lines(stream: IO[bytes], limit: int, chunk: int | None = None) -> Iterator[Line | None]:
    """Each line of ``stream`` as (buffer, start, end), newline included; None for a line
    longer than ``limit`` bytes (newline included), dropped as it is read.

    ``read1`` reads what one read of the file or the decompressor gives, so a corrupt or
    truncated compressed stream raises where ``readline`` would, after the lines before
    it. A line that goes on past a chunk is joined from its pieces (held up to ``limit``).
    """
    read = stream.read1 if hasattr(stream, "read1") else stream.read
    size = CHUNK if chunk is None else chunk
    pending: list[bytes] = []  # the start of a line that goes on in the next chunk
    pending_size = 0
    skipping = False  # inside a line already known to be too long
    while True:
        data = read(size)
        if not data:
            break
        first = data.find(b"\n")
        if first < 0:
            if not skipping:
                pending.append(data)
                pending_size += len(data)
                if pending_size > limit:
                    pending, pending_size, skipping = [], 0, True
            continue
        if skipping or pending_size + first + 1 > limit:
            yield None
        elif pending:
            pending.append(data[: first + 1])
            line = b"".join(pending)
            yield line, 0, len(line)
        else:
            yield data, 0, first + 1
        pending, pending_size, skipping = [], 0, False
        last = data.rfind(b"\n")
        if first < last:
            yield from _split(data, first + 1, last + 1, limit)
        if last + 1 < len(data):
            pending.append(data[last + 1 :])
            pending_size = len(data) - last - 1
            if pending_size > limit:
                pending, pending_size, skipping = [], 0, True
    if skipping:
        yield None
    elif pending:
        line = b"".join(pending)
        yield from _split(line, 0, len(line), limit)


def _split(buffer: bytes, start: int, end: int, limit: int) -> Iterator[Line | None]:
    """The lines of ``buffer[start:end]``, the last one without a newline if so written."""
    find = buffer.find
    while start < end:
        newline = find(b"\n", start, end)
        stop = end if newline < 0 else newline + 1
        yield None if stop - start > limit else (buffer, start, stop)
        start = stop
