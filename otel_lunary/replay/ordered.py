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

import io
import tempfile
from collections.abc import Callable, Iterator
from typing import TextIO

from otel_lunary.replay.model import Conversation

SPOOL_BYTES = 16 * 2**20


class _Pieces:
    """Texts with their sort keys, spilled to a temporary file past ``SPOOL_BYTES``."""

    def __init__(self) -> None:
        self._spill = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES, mode="w+b", prefix="otel-lunary-replay-")  # noqa: SIM115 - closed by close()
        self._index: list[tuple[int, str, int, int]] = []
        self._end = 0

    def add(self, start_ns: int, conversation_id: str, text: str) -> None:
        data = text.encode("utf-8", "surrogatepass")  # what a renderer wrote, even a lone surrogate
        self._spill.write(data)
        self._index.append((start_ns, conversation_id, self._end, len(data)))
        self._end += len(data)

    def __len__(self) -> int:
        return len(self._index)

    def ids(self) -> list[str]:
        return [conversation_id for _, conversation_id, _, _ in sorted(self._index)]

    def texts(self) -> Iterator[str]:
        """The texts, oldest conversation first."""
        self._index.sort()
        for _, _, offset, size in self._index:
            self._spill.seek(offset)
            yield self._spill.read(size).decode("utf-8", "surrogatepass")

    def close(self) -> None:
        self._spill.close()


class OrderedOutput:
    """Collects finished conversations (``add``), writes the format's text (``write``)."""

    def __init__(self, render_one: Callable[[Conversation], str], *, separator: str = "") -> None:
        self._render_one = render_one
        self._separator = separator
        self._pieces = _Pieces()

    def add(self, conversation: Conversation) -> None:
        self._pieces.add(conversation.start_ns, conversation.id, self._render_one(conversation))

    def __len__(self) -> int:
        return len(self._pieces)

    def write(self, out: TextIO) -> None:
        first = True
        for text in self._pieces.texts():
            if not first:
                out.write(self._separator)
            first = False
            out.write(text)

    def close(self) -> None:
        self._pieces.close()


class _HtmlOutput(OrderedOutput):
    """HTML pieces are rendered as thread 0 and numbered when written."""

    def __init__(self) -> None:
        from otel_lunary.replay.render_html import THREAD_START, thread_section

        self._prefix = f"{THREAD_START}0"

        def piece(conversation: Conversation) -> str:
            text = thread_section(0, conversation)
            assert text.startswith(self._prefix)
            return text[len(self._prefix) :]

        super().__init__(piece)

    def write(self, out: TextIO) -> None:
        from otel_lunary.replay.render_html import THREAD_START, write_foot, write_head

        write_head(self._pieces.ids(), out)
        for index, text in enumerate(self._pieces.texts()):
            out.write(f"{THREAD_START}{index}")
            out.write(text)
        write_foot(len(self._pieces), out)


class _ListOutput(OrderedOutput):
    """``--list`` rows are a few short cells: kept as they are, measured when written."""

    def __init__(self) -> None:
        super().__init__(lambda conversation: "")
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


def _rendered(render: Callable[[list[Conversation], TextIO], None]) -> Callable[[Conversation], str]:
    def render_one(conversation: Conversation) -> str:
        buffer = io.StringIO()
        render([conversation], buffer)
        return buffer.getvalue()

    return render_one


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
        return OrderedOutput(_rendered(lambda cs, buffer: render_terminal.render(cs, buffer, colour=colour, details=details)), separator="\n")
    import importlib

    module = {"json": "render_json", "markdown": "render_markdown", "openai": "render_openai"}[fmt]
    return OrderedOutput(_rendered(importlib.import_module(f"otel_lunary.replay.{module}").render))
