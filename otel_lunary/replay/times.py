"""Times in replay: span nanoseconds shown to people, and ``--since/--until`` parsed."""

from __future__ import annotations

import re
import time
from datetime import datetime, timezone

_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def iso(ns: int) -> str:
    """UTC ISO 8601 with milliseconds, the form JSON output uses."""
    moment = datetime.fromtimestamp(ns / 1e9, tz=timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# ``isoformat`` rather than ``strftime``, a third of its cost (every message shows a time):
# the same text for the years replay shows, 1970 to 9999 (``decode.MAX_TIME_NS``).


def short(ns: int) -> str:
    """``YYYY-MM-DD HH:MM:SS`` UTC for transcripts."""
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc).isoformat(" ", "seconds")[:19]


def clock(ns: int) -> str:
    """``HH:MM:SS`` UTC, next to each message."""
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc).time().isoformat("seconds")


def parse_time(text: str, *, now_ns: int | None = None) -> int:
    """Epoch nanoseconds from ISO 8601 (date or datetime; naive means UTC) or ``30m``/``2h``/``7d`` ago.

    Raises ``ValueError`` with a message fit for the command line.
    """
    value = text.strip()
    relative = _RELATIVE.match(value)
    if relative:
        now = time.time_ns() if now_ns is None else now_ns
        return now - int(float(relative.group(1)) * _UNIT_SECONDS[relative.group(2)] * 1e9)
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"not a time: {text!r} (use ISO 8601 like 2026-01-31T12:00 or a duration like 2h, 7d)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp() * 1_000_000) * 1000
