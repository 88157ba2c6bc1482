"""The one span view every source yields, and the problems sources report.

Sources differ (OTLP JSON from files and Jaeger, Phoenix's own JSON); assembly should not
care, so each source yields ``SpanRecord`` with hex ids, nanosecond times and decoded
attributes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, NamedTuple

STATUS_UNSET = 0
STATUS_OK = 1
STATUS_ERROR = 2

class SpanAttributes(dict[str, Any]):
    """A span's (or event's) attributes, decoded: a ``dict``, read-only by convention.

    A dict and not a wrapper holding the source's encoding, so that the dozen attribute
    reads a span gets from the assembler are C calls: a Python method per read (and a
    record object per span) made replay 18% slower (docs/performance.md). Sources decode
    the values up front (``decode.otlp_attributes``, at C speed for the usual string).
    """

    __slots__ = ()

    def undecoded(self, key: str) -> Any:
        """The value (None when absent): kept for callers of the lazily decoded view."""
        return self.get(key)

    def has_any(self, keys: frozenset[str]) -> bool:
        """Whether any of ``keys`` is present: one test for attributes most spans lack."""
        return not keys.isdisjoint(self)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({dict.__repr__(self)})"


class _EventFields(NamedTuple):
    name: str
    time_ns: int
    attributes: SpanAttributes


class EventRecord(_EventFields):
    """One span event: name, time, attributes (decoded when read)."""

    __slots__ = ()

    def __new__(cls, name: str, time_ns: int, attributes: Mapping[str, Any] | SpanAttributes | None = None) -> EventRecord:
        if not isinstance(attributes, SpanAttributes):
            attributes = SpanAttributes(attributes or {})
        return tuple.__new__(cls, (name, time_ns, attributes))


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
    """One span as every source yields it: lowercase hex ids, epoch nanoseconds, lazy attributes.

    ``attributes`` accepts any mapping of decoded values; sources pass ``SpanAttributes``
    holding their own encoding (and build records with ``span_record``). A record lives
    while the assembler looks at it: the assembler keeps only what it takes from it.
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
        attributes: Mapping[str, Any] | SpanAttributes | None = None,
        events: tuple[EventRecord, ...] = (),
        status_code: int = STATUS_UNSET,
        status_message: str = "",
    ) -> SpanRecord:
        if not isinstance(attributes, SpanAttributes):
            attributes = SpanAttributes(attributes or {})
        return tuple.__new__(cls, (trace_id, span_id, parent_span_id, name, start_ns, end_ns, attributes, events, status_code, status_message))


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
