"""The one span view every source yields, and the problems sources report.

Sources differ (OTLP JSON from files and Jaeger, Phoenix's own JSON); assembly should not
care, so each source yields ``SpanRecord`` with hex ids, nanosecond times and decoded
attributes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, NamedTuple, TypeAlias

STATUS_UNSET = 0
STATUS_OK = 1
STATUS_ERROR = 2


# A span's (or event's) attributes, decoded: a plain dict, read-only by convention. Not
# a view holding the source's encoding, so the dozen reads a span gets from the assembler
# are C calls: a Python method per read made replay 18% slower (docs/performance.md).
# Sources decode the values up front (``decode.otlp_attributes``, the usual string at C
# speed).
SpanAttributes: TypeAlias = dict[str, Any]


class _EventFields(NamedTuple):
    name: str
    time_ns: int
    attributes: SpanAttributes


class EventRecord(_EventFields):
    """One span event: name, time, attributes."""

    __slots__ = ()

    def __new__(cls, name: str, time_ns: int, attributes: Mapping[str, Any] | None = None) -> EventRecord:
        return tuple.__new__(cls, (name, time_ns, dict(attributes or {})))


class _SpanFields(NamedTuple):
    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    start_ns: int
    end_ns: int
    attributes: SpanAttributes
    events: tuple[EventRecord, ...]
    status_code: int
    status_message: str


class SpanRecord(_SpanFields):
    """One span as every source yields it: lowercase hex ids, epoch nanoseconds, decoded attributes.

    ``attributes`` accepts any mapping of decoded values (copied); sources build records
    with ``span_record`` and their own ``SpanAttributes`` dict. A record lives while the
    assembler looks at it: the assembler keeps only what it takes from it.
    """

    __slots__ = ()

    def __new__(
        cls,
        trace_id: str,
        span_id: str,
        parent_span_id: str | None,
        name: str,
        start_ns: int,
        end_ns: int,
        attributes: Mapping[str, Any] | None = None,
        events: tuple[EventRecord, ...] = (),
        status_code: int = STATUS_UNSET,
        status_message: str = "",
    ) -> SpanRecord:
        return tuple.__new__(cls, (trace_id, span_id, parent_span_id, name, start_ns, end_ns, dict(attributes or {}), events, status_code, status_message))


# For sources: a record from its fields in order, ``attributes`` a ``SpanAttributes``;
# a C call where ``SpanRecord(...)`` runs Python, and a million spans are made per replay.
span_record: Callable[[tuple[Any, ...]], SpanRecord] = partial(tuple.__new__, SpanRecord)
event_record: Callable[[tuple[Any, ...]], EventRecord] = partial(tuple.__new__, EventRecord)


@dataclass(frozen=True, slots=True)
class Problem:
    """Input that could not be read: where (source and line, when there is one) and why."""

    source: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = self.source if self.line is None else f"{self.source}:{self.line}"
        return f"{where}: {self.message}"
