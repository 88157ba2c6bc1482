"""Output written in the usual order from conversations rendered as they are finished.

A streaming replay (``streaming``) finishes conversations in the order their last span
is read, but every format lists them oldest first (by start time, then id). Each
conversation is rendered as soon as it is finished and its text kept, with its sort key,
as a string while the texts held come to at most ``MEMORY_BYTES``, and past that in a
temporary file in ``$TMPDIR``; ``write`` puts the pieces out in order. So memory holds at
most that much text and the pieces' index, not the conversations.

The text equals the format's ``render`` of the whole sorted list because each format is
the concatenation of one piece per conversation, plus: a blank line between threads
(terminal), a page head that names every thread and numbers them (HTML, whose pieces
get their number when written), and column widths measured over all rows (``--list``,
whose rows are small and kept as they are).
"""

from __future__ import annotations

import codecs
import sys
import tempfile
from collections.abc import Callable, Iterator
from typing import IO, TextIO

from otel_lunary.replay.model import Conversation

MEMORY_BYTES = 32 * 2**20  # text held as strings before pieces go to the spill file
_SLICE = 2**20  # characters encoded at a time


class _Pieces:
    """Texts with their sort keys: strings up to ``memory_bytes`` in all, then a temporary file.

    A renderer writes a piece through ``write`` between ``begin`` and ``end``. A piece is
    kept as the strings written (joined into one when it ends) until the text held passes
    ``memory_bytes``: then every piece held so far is encoded to the file, and the rest
    of a piece still being written goes there as it is written, so a conversation as long
    as the input is never held whole. Held text costs no encoding, writing and reading back.
    """

    def __init__(self, memory_bytes: int | None = None) -> None:
        self._memory_bytes = MEMORY_BYTES if memory_bytes is None else memory_bytes
        self._spill: IO[bytes] | None = None
        self._end = 0  # the spill file's size
        # (start_ns, conversation id, text held or None, offset and size in the spill file)
        self._index: list[tuple[int, str, str | None, int, int]] = []
        self._held: list[int] = []  # indexes of the pieces held as text
        self._held_bytes = 0
        self._parts: list[str] = []  # the piece being written, while held
        self._parts_bytes = 0
        self._start = -1  # where the piece being written starts in the spill file, once there

    def begin(self) -> None:
        self._parts = []
        self._parts_bytes = 0
        self._start = -1

    def write(self, text: str) -> int:
        if self._start >= 0:
            self._encode(text)
            return len(text)
        self._parts.append(text)
        self._parts_bytes += sys.getsizeof(text)
        if self._held_bytes + self._parts_bytes > self._memory_bytes:
            self._spill_held()
            self._start = self._end
            parts, self._parts, self._parts_bytes = self._parts, [], 0
            for part in parts:
                self._encode(part)
        return len(text)

    def end(self, start_ns: int, conversation_id: str) -> None:
        if self._start >= 0:
            self._index.append((start_ns, conversation_id, None, self._start, self._end - self._start))
            return
        text = "".join(self._parts)
        self._parts = []
        self._held.append(len(self._index))
        self._index.append((start_ns, conversation_id, text, 0, 0))
        self._held_bytes += sys.getsizeof(text)

    def _spill_held(self) -> None:
        """Every piece held as text, to the spill file."""
        for index in self._held:
            start_ns, conversation_id, text, _, _ = self._index[index]
            start = self._end
            self._encode(text or "")
            self._index[index] = (start_ns, conversation_id, None, start, self._end - start)
        self._held = []
        self._held_bytes = 0

    def _encode(self, text: str) -> None:
        if self._spill is None:
            self._spill = tempfile.TemporaryFile(mode="w+b", prefix="otel-lunary-replay-")  # noqa: SIM115 - closed by close()
        for start in range(0, len(text), _SLICE):  # a whole conversation in one string (JSON): never a second copy of it
            data = text[start : start + _SLICE].encode("utf-8", "surrogatepass")  # what a renderer wrote, even a lone surrogate
            self._spill.write(data)
            self._end += len(data)

    def __len__(self) -> int:
        return len(self._index)

    @property
    def spilled(self) -> bool:
        """Whether any text went to the spill file."""
        return self._spill is not None

    def ids(self) -> list[str]:
        return [conversation_id for _, conversation_id, _, _, _ in sorted(self._index, key=_order)]

    def texts(self, chunk: int = 1 << 20) -> Iterator[Iterator[str]]:
        """Each piece (as chunks of text), oldest conversation first."""
        self._index.sort(key=_order)
        self._held = []
        decoder = codecs.getincrementaldecoder("utf-8")("surrogatepass")
        for _, _, text, offset, size in self._index:
            if text is not None:
                yield iter((text,))
            else:
                assert self._spill is not None
                self._spill.seek(offset)
                yield self._read(size, chunk, decoder)

    def _read(self, size: int, chunk: int, decoder: codecs.IncrementalDecoder) -> Iterator[str]:
        assert self._spill is not None
        while size > 0:
            data = self._spill.read(min(chunk, size))
            size -= len(data)
            yield decoder.decode(data, final=size <= 0)

    def close(self) -> None:
        self._index = []
        if self._spill is not None:
            self._spill.close()


def _order(entry: tuple[int, str, str | None, int, int]) -> tuple[int, str]:
    return entry[0], entry[1]


class OrderedOutput:
    """Collects finished conversations (``add``), writes the format's text (``write``)."""

    def __init__(self, render: Callable[[list[Conversation], TextIO], None], *, separator: str = "") -> None:
        self._render = render
        self._separator = separator
        self._pieces = _Pieces()

    def add(self, conversation: Conversation) -> None:
        self._pieces.begin()
        self._render([conversation], self._pieces)  # type: ignore[arg-type] # only write() is used
        self._pieces.end(conversation.start_ns, conversation.id)

    def __len__(self) -> int:
        return len(self._pieces)

    def write(self, out: TextIO) -> None:
        first = True
        for piece in self._pieces.texts():
            if not first:
                out.write(self._separator)
            first = False
            for text in piece:
                out.write(text)

    def close(self) -> None:
        self._pieces.close()


class _HtmlOutput(OrderedOutput):
    """HTML pieces are rendered without their number, which is written before each."""

    def __init__(self) -> None:
        from otel_lunary.replay.render_html import thread_section_rest

        def render(conversations: list[Conversation], out: TextIO) -> None:
            out.write(thread_section_rest(conversations[0]))

        super().__init__(render)

    def write(self, out: TextIO) -> None:
        from otel_lunary.replay.render_html import THREAD_START, write_foot, write_head

        write_head(self._pieces.ids(), out)
        for index, piece in enumerate(self._pieces.texts()):
            out.write(f"{THREAD_START}{index}")
            for text in piece:
                out.write(text)
        write_foot(len(self._pieces), out)


class _ListOutput(OrderedOutput):
    """``--list`` rows are a few short cells: kept as they are, measured when written."""

    def __init__(self) -> None:
        super().__init__(lambda conversations, out: None)
        self._rows: list[tuple[int, str, tuple[str, ...]]] = []

    def add(self, conversation: Conversation) -> None:
        from otel_lunary.replay.render_list import row

        self._rows.append((conversation.start_ns, conversation.id, row(conversation)))

    def __len__(self) -> int:
        return len(self._rows)

    def write(self, out: TextIO) -> None:
        from otel_lunary.replay.render_list import write_rows

        self._rows.sort(key=lambda entry: (entry[0], entry[1]))
        write_rows([cells for _, _, cells in self._rows], out)


def ordered_output(fmt: str, out: TextIO, *, listing: bool = False, details: bool = True) -> OrderedOutput:
    """The collector for ``replay --format fmt`` (or ``--list``) writing to ``out`` (which
    decides colour, as it does for the whole-input renderer)."""
    if listing:
        return _ListOutput()
    if fmt == "html":
        return _HtmlOutput()
    if fmt == "terminal":
        from otel_lunary.replay import render_terminal

        colour = render_terminal.use_colour(out)
        return OrderedOutput(lambda cs, piece: render_terminal.render(cs, piece, colour=colour, details=details), separator="\n")
    import importlib

    module = {"json": "render_json", "markdown": "render_markdown", "openai": "render_openai"}[fmt]
    return OrderedOutput(importlib.import_module(f"otel_lunary.replay.{module}").render)
