"""The one span view every source yields, and the problems sources report.

Sources differ (OTLP JSON from files and Jaeger, Phoenix's own JSON); assembly should not
care, so each source yields ``SpanRecord`` with hex ids and nanosecond times. Its
attributes stay as the source wrote them and are decoded when read: the assembler reads
a handful of a span's attributes and drops most spans after one, so decoding every value
of every span up front was most of the cost of reading a file.
"""

from __future__ import annotations

from collections.abc import Callable, ItemsView, Iterator, KeysView, Mapping, ValuesView
from dataclasses import dataclass
from functools import partial
from typing import Any, NamedTuple

STATUS_UNSET = 0
STATUS_OK = 1
STATUS_ERROR = 2

_ABSENT: Any = object()


class SpanAttributes:
    """A span's (or event's) attributes: a read-only mapping of decoded values.

    Sources whose values need decoding subclass it and decode a value when it is read
    (``decode.OtlpAttributes``); the assembler reads a handful of a span's attributes and
    drops most spans after two, so decoding every value up front was most of the cost of
    reading a file. A registered ``Mapping``, not a subclass: ``isinstance`` against an
    ABC costs more than building a span.
    """

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, Any]) -> None:
        self._values = values

    def get(self, key: str, default: Any = None) -> Any:
        return self._values.get(key, default)

    def undecoded(self, key: str) -> Any:
        """The value as the source wrote it (None when absent): a cheap test for "same as before"."""
        return self._values.get(key)

    def has_any(self, keys: frozenset[str]) -> bool:
        """Whether any of ``keys`` is present: one test for attributes most spans lack."""
        return not keys.isdisjoint(self._values)

    def _decoded(self) -> Mapping[str, Any]:
        return self._values

    def __getitem__(self, key: str) -> Any:
        value = self.get(key, _ABSENT)
        if value is _ABSENT:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key, _ABSENT) is not _ABSENT

    def __iter__(self) -> Iterator[str]:
        return iter(self._decoded())

    def __len__(self) -> int:
        return len(self._decoded())

    def keys(self) -> KeysView[str]:
        return self._decoded().keys()

    def items(self) -> ItemsView[str, Any]:
        return self._decoded().items()

    def values(self) -> ValuesView[Any]:
        return self._decoded().values()

    def __eq__(self, other: object) -> bool:
        return dict(self.items()) == other if isinstance(other, Mapping) else NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({dict(self._decoded())!r})"


Mapping.register(SpanAttributes)


class _EventFields(NamedTuple):
    name: str
    time_ns: int
    attributes: SpanAttributes


class EventRecord(_EventFields):
    """One span event: name, time, attributes (decoded when read)."""

    __slots__ = ()

    def __new__(cls, name: str, time_ns: int, attributes: Mapping[str, Any] | SpanAttributes | None = None) -> EventRecord:
        if not isinstance(attributes, SpanAttributes):
            attributes = SpanAttributes(dict(attributes or {}))
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
            attributes = SpanAttributes(dict(attributes or {}))
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
