"""Output written in the usual order from conversations rendered as they are finished.

A streaming replay (``streaming``) finishes conversations in the order their last span
is read, but every format lists them oldest first (by start time, then id). Each
conversation is rendered as soon as it is finished and the text kept in a spill file
(in memory up to ``SPOOL_BYTES``, then in ``$TMPDIR``) with its sort key; ``write`` puts
the pieces out in order. So memory holds the pieces' index, not the conversations.

The text equals the format's ``render`` of the whole sorted list because each format is
the concatenation of one piece per conversation, plus: a blank line between threads
(terminal), a page head that names every thread and numbers them (HTML, whose pieces
get their number when written), and column widths measured over all rows (``--list``,
whose rows are small and kept as they are).
"""

from __future__ import annotations

import codecs
import tempfile
from collections.abc import Callable, Iterator
from typing import TextIO

from otel_lunary.replay.model import Conversation

SPOOL_BYTES = 2**20
_SLICE = 2**20  # characters encoded at a time


class _Pieces:
    """Texts with their sort keys, spilled to a temporary file past ``SPOOL_BYTES``.

    A renderer writes a piece through ``write`` between ``begin`` and ``end``: each write
    goes to the file at once, so a conversation as long as the input is never one string.
    """

    def __init__(self) -> None:
        self._spill = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES, mode="w+b", prefix="otel-lunary-replay-")  # noqa: SIM115 - closed by close()
        self._index: list[tuple[int, str, int, int]] = []
        self._end = 0
        self._start = 0

    def begin(self) -> None:
        self._start = self._end

    def write(self, text: str) -> int:
        if len(text) > _SLICE:  # a whole conversation in one string (JSON): never a second copy of it
            self._spill.rollover()  # straight to the file, not through the in-memory buffer
            for start in range(0, len(text), _SLICE):
                self.write(text[start : start + _SLICE])
            return len(text)
        data = text.encode("utf-8", "surrogatepass")  # what a renderer wrote, even a lone surrogate
        self._spill.write(data)
        self._end += len(data)
        return len(text)

    def end(self, start_ns: int, conversation_id: str) -> None:
        self._index.append((start_ns, conversation_id, self._start, self._end - self._start))

    def __len__(self) -> int:
        return len(self._index)

    def ids(self) -> list[str]:
        return [conversation_id for _, conversation_id, _, _ in sorted(self._index)]

    def texts(self, chunk: int = 1 << 20) -> Iterator[Iterator[str]]:
        """Each piece (as chunks of text), oldest conversation first."""
        self._index.sort()
        decoder = codecs.getincrementaldecoder("utf-8")("surrogatepass")
        for _, _, offset, size in self._index:
            self._spill.seek(offset)
            yield self._read(size, chunk, decoder)

    def _read(self, size: int, chunk: int, decoder: codecs.IncrementalDecoder) -> Iterator[str]:
        while size > 0:
            data = self._spill.read(min(chunk, size))
            size -= len(data)
            yield decoder.decode(data, final=size <= 0)

    def close(self) -> None:
        self._spill.close()


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
    """HTML pieces are rendered as thread 0 and numbered when written."""

    def __init__(self) -> None:
        from otel_lunary.replay.render_html import THREAD_START, thread_section

        prefix = f"{THREAD_START}0"

        def render(conversations: list[Conversation], out: TextIO) -> None:
            text = thread_section(0, conversations[0])
            assert text.startswith(prefix)
            out.write(text[len(prefix) :])

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
