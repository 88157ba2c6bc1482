"""Renderer output gathered into fewer, larger writes.

The terminal and Markdown renderers make their text a message at a time, a dozen pieces
a thread. When replay streams, every write is a Python call that encodes the piece into
the spill file (``ordered``), about a microsecond each; written to a file, each goes
through the text layer's own call. Gathering the pieces and writing them together makes
that a write per thread (or per ``limit`` characters), and keeps at most ``limit``
characters more than the pieces themselves: a thread as long as the input is still
written as it is made.
"""

from __future__ import annotations

from typing import Protocol

LIMIT = 1 << 16  # characters gathered before they are written


class Writable(Protocol):
    def write(self, text: str, /) -> int: ...


class BatchedWriter:
    """``write`` gathers text; the text reaches ``out``, in order and unchanged, once
    ``limit`` characters are gathered and at ``flush`` (call it when done, also on error)."""

    __slots__ = ("_out", "_parts", "_size", "_limit")

    def __init__(self, out: Writable, limit: int = LIMIT) -> None:
        self._out = out
        self._parts: list[str] = []
        self._size = 0
        self._limit = limit

    def write(self, text: str) -> int:
        self._parts.append(text)
        self._size += len(text)
        if self._size >= self._limit:
            self.flush()
        return len(text)

    def flush(self) -> None:
        if self._parts:
            text = "".join(self._parts)
            self._parts.clear()
            self._size = 0
            self._out.write(text)
