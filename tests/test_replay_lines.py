"""The chunked line reader (``replay.lines``) against ``readline``, which both passes of a
replay used before: same lines, same numbers, same skips, same stop on a broken stream."""

from __future__ import annotations

import gzip
import io
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest
import zstandard
from hypothesis import given
from hypothesis import strategies as st

from otel_lunary.replay import lines, scan
from otel_lunary.replay.lines import chunked_lines, open_binary


def readline_lines(stream: IO[bytes], limit: int) -> Iterator[bytes | None]:
    """The reader as it was: ``readline(limit + 1)``, a too-long line dropped 1 MiB at a time."""
    while True:
        line = stream.readline(limit + 1)
        if not line:
            return
        if len(line) <= limit:
            yield line
            continue
        while line and not line.endswith(b"\n"):
            line = stream.readline(1 << 20)
        yield None


def collect(source: Iterator[bytes | None]) -> tuple[list[bytes | None], str | None]:
    """Every line given, and the error that stopped the reading (its type), if any."""
    seen: list[bytes | None] = []
    try:
        for line in source:
            seen.append(line)
    except (OSError, EOFError, zstandard.ZstdError) as exc:
        return seen, type(exc).__name__
    return seen, None


def as_bytes(places: Iterator[lines.Line | None]) -> Iterator[bytes | None]:
    for place in places:
        yield None if place is None else place[0][place[1] : place[2]]


def compress(content: bytes, how: str) -> bytes:
    if how == "gzip":
        return gzip.compress(content)
    if how == "zstd":
        return zstandard.ZstdCompressor().compress(content)
    return content


_PIECES = st.sampled_from([b"a", b"bb", b"\n", b"\r\n", b" ", b"x" * 7, b"y" * 40])


@given(
    content=st.lists(_PIECES, max_size=40).map(b"".join),
    limit=st.integers(min_value=1, max_value=60),
    chunk=st.integers(min_value=1, max_value=70),
    how=st.sampled_from(["plain", "gzip", "zstd"]),
    cut=st.one_of(st.none(), st.integers(min_value=0, max_value=200)),
)
def test_chunked_lines_are_the_lines_readline_gave(tmp_path_factory: pytest.TempPathFactory, content: bytes, limit: int, chunk: int, how: str, cut: int | None) -> None:
    """For any bytes, line limit and chunk size, plain or compressed, whole or with the
    compressed file cut short: the same lines (newline kept, CRLF as written, a last line
    without newline), the same None for each over-long line, and the same error after
    the same lines."""
    data = compress(content, how)
    if cut is not None and how != "plain":
        data = data[: min(cut, len(data))]
    path = tmp_path_factory.mktemp("lines") / "traces.jsonl"
    path.write_bytes(data)
    with open(path, "rb") as raw:
        try:
            expected = collect(readline_lines(open_binary(path, raw), limit))
        except zstandard.ZstdError:
            expected = ([], "ZstdError")
    with open(path, "rb") as raw:
        try:
            got = collect(as_bytes(chunked_lines(open_binary(path, raw), limit, chunk)))
        except zstandard.ZstdError:
            got = ([], "ZstdError")
    assert got == expected


def test_a_long_line_is_not_held_beyond_the_limit() -> None:
    """A 64 MiB line under a 1 KiB limit is dropped as it is read: the memory allocated
    while reading it stays at a few chunks, and the next line still comes."""

    class LongLine(io.RawIOBase):
        def __init__(self) -> None:
            self.rest = [b"x" * 2**16] * 2**10 + [b"\nok\n"]

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
            if not self.rest:
                return 0
            piece = self.rest.pop(0)
            buffer[: len(piece)] = piece
            return len(piece)

    stream = io.BufferedReader(LongLine(), 2**16)
    tracemalloc.start()
    try:
        got = list(as_bytes(chunked_lines(stream, 1024, 2**16)))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert got == [None, b"ok\n"]
    assert peak < 2**20


def test_the_scan_and_the_reader_share_the_reader_of_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The scan's lines are the reader's without their newline, under the same numbers."""
    path = tmp_path / "traces.jsonl"
    path.write_bytes(b'{"a":1}\r\n\n' + b"z" * 30 + b'\n{"b":2}')
    monkeypatch.setattr(lines, "CHUNK", 4)
    scanned = [None if line is None else line[0][line[1] : line[2]] for line in scan._lines(path, 20)]
    assert scanned == [b'{"a":1}\r', b"", None, b'{"b":2}']
