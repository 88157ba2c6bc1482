"""Times in replay: span nanoseconds shown to people, and ``--since/--until`` parsed."""

from __future__ import annotations

import re
import time
from datetime import datetime, timezone

_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def _exact_iso(ns: int) -> str:
    moment = datetime.fromtimestamp(ns / 1e9, tz=timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# Every message shows a time and the messages of a thread share seconds: the
# ``YYYY-MM-DDTHH:MM:SS`` of a second is made once (a ``datetime`` and ``isoformat`` cost
# more than the rest of a message's line). ``datetime.fromtimestamp(ns / 1e9)`` rounds a
# float to microseconds, off by under a microsecond before 2096 (``_FAST_BEFORE_NS``), so
# a time more than 2 us from a millisecond's edge shows the same digits cut from ``ns``
# itself; the rest (a few in a thousand) go through ``datetime`` as before.
_SECOND_NS = 1_000_000_000
_FAST_BEFORE_NS = 4_000_000_000 * _SECOND_NS
_EDGE_NS = 2_000
_SECONDS_KEPT = 4096
_second_texts: dict[int, str] = {}


def _second_text(second: int) -> str:
    """``YYYY-MM-DDTHH:MM:SS`` UTC of a whole epoch second, remembered."""
    text = _second_texts.get(second)
    if text is None:
        if len(_second_texts) >= _SECONDS_KEPT:
            _second_texts.clear()
        text = _second_texts[second] = datetime.fromtimestamp(second, tz=timezone.utc).isoformat(timespec="seconds")[:19]
    return text


_MILLISECONDS = [f".{millisecond:03d}Z" for millisecond in range(1000)]  # what follows the second


def iso(ns: int) -> str:
    """UTC ISO 8601 with milliseconds, the form JSON output uses."""
    if 0 <= ns < _FAST_BEFORE_NS:
        second, within = divmod(ns, _SECOND_NS)
        millisecond, rest = divmod(within, 1_000_000)
        if _EDGE_NS <= rest <= 1_000_000 - _EDGE_NS:
            text = _second_texts.get(second)  # _second_text, its usual case inline
            return (text or _second_text(second)) + _MILLISECONDS[millisecond]
    return _exact_iso(ns)


def short(ns: int) -> str:
    """``YYYY-MM-DD HH:MM:SS`` UTC for transcripts."""
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc).isoformat(" ", "seconds")[:19]


def _exact_clock(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc).time().isoformat("seconds")


def clock(ns: int) -> str:
    """``HH:MM:SS`` UTC, next to each message."""
    if 0 <= ns < _FAST_BEFORE_NS:
        second, within = divmod(ns, _SECOND_NS)
        if _EDGE_NS <= within <= _SECOND_NS - _EDGE_NS:
            return (_second_texts.get(second) or _second_text(second))[11:]
    return _exact_clock(ns)


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
