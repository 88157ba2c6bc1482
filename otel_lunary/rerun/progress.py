"""A progress bar on stderr while a rerun runs, only when a person is watching (a TTY).

Built on replay's ``Progress`` (the same TTY check, throttling state and clean-line
erase), drawing its own line: a rerun counts turns and conversations, not bytes read.
"""

from __future__ import annotations

import time
from typing import TextIO

from otel_lunary.replay.progress import Progress
from otel_lunary.rerun.results import ConversationResult, TurnResult

WIDTH = 24


class RerunProgress(Progress):
    """``rerun [██████░░░░] 12/40 turns · 3/10 conversations · 2 changed · 1 error``, redrawn in place."""

    def __init__(self, stream: TextIO, total_turns: int, total_conversations: int, *, interval: float = 0.1) -> None:
        super().__init__("rerun", None, stream=stream, interval=interval)
        self._next = 0.0  # the first turn draws at once
        self._total_turns = total_turns
        self._total_conversations = total_conversations
        self.turns = 0
        self.conversations = 0
        self.changed = 0
        self.errors = 0

    def __call__(self, conversation: ConversationResult, turn: TurnResult | None) -> None:
        if turn is None:
            self.conversations += 1
        else:
            self.turns += 1
            self.changed += turn.status == "changed"
            self.errors += turn.status == "error"
        self.draw(force=turn is None and self.conversations == self._total_conversations)

    def line(self) -> str:
        filled = WIDTH * self.turns // self._total_turns if self._total_turns else WIDTH
        bar = "█" * filled + "░" * (WIDTH - filled)
        parts = [f"{self.turns}/{self._total_turns} turns", f"{self.conversations}/{self._total_conversations} conversations"]
        if self.changed:
            parts.append(f"{self.changed} changed")
        if self.errors:
            parts.append(f"{self.errors} error{'s' if self.errors != 1 else ''}")
        return f"rerun [{bar}] " + " · ".join(parts)

    def draw(self, *, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now < self._next:
            return
        self._next = now + self._interval
        self._stream.write("\r\x1b[K" + self.line())
        self._stream.flush()
        self._drawn = True
