"""Progress on stderr for long reads, only when a person is watching (stderr is a TTY)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """A one-line ``\\r`` progress meter, redrawn at most every ``interval`` seconds."""

    def __init__(self, label: str, total_bytes: int | None, *, stream: TextIO | None = None, interval: float = 0.25) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self.enabled = self._stream.isatty()
        self._label = label
        self._total = total_bytes
        self._interval = interval
        self._next = time.monotonic() + interval
        self._drawn = False

    def update(self, position: int, spans: int) -> None:
        """Redraw if due; cheap enough to call once per line."""
        if not self.enabled:
            return
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + self._interval
        done = f" {100 * position // self._total:3d}%" if self._total else ""
        self._stream.write(f"\rreading {self._label}{done} ({spans:,} spans)")
        self._stream.flush()
        self._drawn = True

    def close(self) -> None:
        """Erase the meter so the next output starts on a clean line."""
        if self._drawn:
            self._stream.write("\r\x1b[K")
            self._stream.flush()
            self._drawn = False
