"""The reader-neutral span record every source is turned into.

Readers differ (OTLP JSON, Phoenix's own shape); assembly should not care, so each reader
emits ``SpanRecord`` with hex ids, nanosecond times and plain Python attribute values.
A record lives only while the assembler looks at it: nothing keeps the raw JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

STATUS_UNSET = 0
STATUS_OK = 1
STATUS_ERROR = 2


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One span event: name, time, attributes."""

    name: str
    time_ns: int
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SpanRecord:
    """One span, normalised: lowercase hex ids, epoch nanoseconds, decoded attribute values."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    start_ns: int
    end_ns: int
    attributes: dict[str, Any] = field(default_factory=dict)
    events: tuple[EventRecord, ...] = ()
    status_code: int = STATUS_UNSET
    status_message: str = ""


@dataclass(frozen=True, slots=True)
class Problem:
    """Input that could not be read: where (source and line, when there is one) and why."""

    source: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = self.source if self.line is None else f"{self.source}:{self.line}"
        return f"{where}: {self.message}"
