"""``replay --list``: one line per thread, to find the conversation worth replaying."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TextIO

from otel_lunary.replay._gc import deferred_collections
from otel_lunary.replay.display import shorten, terminal_safe
from otel_lunary.replay.model import Conversation
from otel_lunary.replay.times import short


def _feedback(conversation: Conversation) -> str:
    summary = conversation.feedback_summary()
    return ", ".join(f"{key} ×{count}" if count > 1 else key for key, count in sorted(summary.items())) or "-"


@deferred_collections()  # see _gc: rendering makes no cycles either
def render(conversations: Iterable[Conversation], out: TextIO, *, width: int = 60) -> None:
    write_rows([row(c, width) for c in conversations], out)


def row(c: Conversation, width: int = 60) -> tuple[str, ...]:
    """One thread's cells, made safe for a terminal (before the widths are measured)."""
    first = c.first_message("user") or c.first_message(None)
    text = shorten(first.content or "", width) if first is not None else ""
    cells: tuple[str, ...] = (c.id, short(c.start_ns) if c.items else "-", str(len(c.messages)), ",".join(c.users) or "-", ",".join(c.all_tags) or "-", _feedback(c), text)
    return tuple(terminal_safe(cell) for cell in cells)


def write_rows(rows: list[tuple[str, ...]], out: TextIO) -> None:
    """The table: columns as wide as their widest cell."""
    header = ("THREAD", "STARTED (UTC)", "MSGS", "USERS", "TAGS", "FEEDBACK", "FIRST MESSAGE")
    widths = [max(len(header[i]), *(len(r[i]) for r in rows)) if rows else len(header[i]) for i in range(len(header) - 1)]
    for shown in [header, *rows]:
        cells = [shown[i].ljust(widths[i]) for i in range(len(widths))]
        out.write(terminal_safe("  ".join([*cells, shown[-1]]).rstrip()) + "\n")
