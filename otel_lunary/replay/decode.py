"""OTLP JSON (one ``ExportTraceServiceRequest`` / ``TracesData`` object) to ``SpanRecord``.

The OTLP spec's JSON mapping uses camelCase keys, hex ids, integer enums and int64 as
strings, but real files differ: protobuf's ``MessageToJson`` writes base64 ids and can
keep snake_case field names, and some writers put int64 as numbers. The decoder accepts
all of these so a file written by any OTel component replays.

Ids, times and status are checked when a span is read (a span replay cannot place is
reported and skipped).
"""

from __future__ import annotations

import base64
import binascii
from binascii import unhexlify
from collections.abc import Callable, Mapping
from typing import Any

from otel_lunary.replay.records import STATUS_UNSET, EventRecord, SpanAttributes, SpanRecord, event_record, span_record


class DecodeError(ValueError):
    """A span that cannot be used (no ids, no times); the message says which and why."""


_ZERO_IDS = {16: bytes(16), 8: bytes(8)}
_ZERO_SPAN = bytes(8)


def decode_id(value: Any, size: int) -> str | None:
    """A trace (16 bytes) or span (8 bytes) id as lowercase hex; accepts hex or base64."""
    if not isinstance(value, str) or not value:
        return None
    raw: bytes | None = None
    if len(value) == size * 2:
        try:  # C-speed hex check (unhexlify rejects anything but hex digits)
            raw = binascii.unhexlify(value)
        except (binascii.Error, ValueError):
            raw = None
    if raw is not None:
        hex_id = value.lower()
    else:
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return None
        if len(raw) != size:
            return None
        hex_id = raw.hex()
    return None if raw == (_ZERO_IDS.get(size) or bytes(size)) else hex_id


def _double(raw: Any) -> float:
    return float(raw.replace("Infinity", "inf")) if isinstance(raw, str) else float(raw)


def _array(raw: Any) -> list[Any]:
    return [
        text if type(value) is dict and (text := value.get("stringValue")) is not None and len(value) == 1 else decode_value(value)
        for value in (raw or {}).get("values", ())
    ]


def _kvlist(raw: Any) -> dict[str, Any]:
    return decode_attributes((raw or {}).get("values", []))


def _same(raw: Any) -> Any:
    return raw


_VALUE_DECODERS: dict[str, Callable[[Any], Any]] = {
    "stringValue": _same, "string_value": _same,
    "boolValue": bool, "bool_value": bool,
    "intValue": int, "int_value": int,
    "doubleValue": _double, "double_value": _double,
    "arrayValue": _array, "array_value": _array,
    "kvlistValue": _kvlist, "kvlist_value": _kvlist,
    "bytesValue": _same, "bytes_value": _same,
}


def decode_value(value: Any) -> Any:
    """An OTLP ``AnyValue`` as a Python value (int64 strings become ints)."""
    if not isinstance(value, dict):
        return value
    for key, raw in value.items():  # one key in well-formed input: a dict lookup, no probing
        decoder = _VALUE_DECODERS.get(key)
        if decoder is not None:
            return decoder(raw)
    return None


def _other_value(value: dict[str, Any]) -> Any:
    """``decode_value(value)`` for a value dict that is not a lone ``stringValue``.

    Two of every three spans of a real recording carry one (thread tags as an array of
    strings, token counts as ints); through ``decode_value`` an array cost three Python
    calls (``decode_value``, ``_array``, its comprehension), here two.
    """
    if len(value) == 1:
        raw = value.get("arrayValue")
        if raw is not None:
            return [
                text if type(item) is dict and (text := item.get("stringValue")) is not None and len(item) == 1 else decode_value(item)
                for item in (raw or {}).get("values", ())
            ]
        raw = value.get("intValue")
        if raw is not None:
            return int(raw)
    return decode_value(value)


def decode_attributes(items: Any) -> dict[str, Any]:
    """OTLP ``KeyValue`` list to a dict, entry by entry; malformed entries are dropped, not fatal.

    Malformed means anything a producer can write: a value of the wrong shape
    (``arrayValue`` as a string, ``kvlistValue`` as a number) or nested too deeply to
    decode (``RecursionError``).
    """
    result: dict[str, Any] = {}
    if not isinstance(items, list):
        return result
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("key"), str):
            try:
                result[item["key"]] = decode_value(item.get("value"))
            except Exception:  # noqa: BLE001 - see the docstring: the entry is dropped
                continue
    return result


def otlp_attributes(items: Any) -> SpanAttributes:
    """A ``KeyValue`` list as ``SpanAttributes``, what ``decode_attributes`` gives.

    One loop for the usual list (string keys, well-formed values), the usual
    ``{"stringValue": ...}`` unwrapped inline: a function call per value was most of the
    cost of decoding every value up front, and a comprehension is a call of its own.
    Anything else (not a list, an entry without a key or value, a key not a string, a
    malformed value) raises inside it, and the list is decoded entry by entry instead,
    which drops what it cannot use.
    """
    attributes: SpanAttributes = {}
    try:
        for item in items:
            key = item["key"]
            if type(key) is not str:
                raise TypeError(f"attribute key {key!r} is not a string")
            value = item["value"]
            text = value.get("stringValue")
            attributes[key] = text if text is not None and len(value) == 1 else _other_value(value)
    except Exception:  # noqa: BLE001 - any odd shape (a value not a dict: no .get): see the docstring
        return decode_attributes(items)
    return attributes


# Times replay can show: 1970 to the end of year 9999 (``datetime``'s range); OTLP times
# are unsigned, and a later one is a producer's bug that would stop every renderer.
MAX_TIME_NS = 253402300799 * 10**9


def _status(status: Any) -> tuple[int, str]:
    if not isinstance(status, dict):
        return STATUS_UNSET, ""
    code = status.get("code", 0)
    if isinstance(code, str):  # MessageToJson writes enum names
        code = {"STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}.get(code, 0)
    return int(code or 0), str(status.get("message") or "")


def _events(raw_events: list[Any], start: int) -> tuple[EventRecord, ...]:
    """A span's events; raises ``TypeError`` or ``ValueError`` on a malformed time."""
    events = []
    for event in raw_events:
        if type(event) is not dict:
            continue
        time = event.get("timeUnixNano")
        if time is None:
            time = event.get("time_unix_nano")
        name = event.get("name")
        time_ns = 0 if time is None or time == "" else int(time)
        if not 0 <= time_ns <= MAX_TIME_NS:
            raise ValueError("an event time out of range (before 1970 or after 9999)")
        events.append(event_record((name if type(name) is str else str(name or ""), time_ns or start, otlp_attributes(event.get("attributes")))))
    return tuple(events)


def otlp_span(span: dict[str, Any], trace_ids: dict[str, str]) -> SpanRecord:
    """One OTLP JSON span object; raises ``DecodeError`` when it lacks what replay needs.

    ``trace_ids`` remembers the trace ids already checked (the spans of one request share
    a few): pass one dict per request. Every shape the OTLP JSON mapping allows is read.
    """
    problems: list[str] = []
    records = _scope_records([span], trace_ids, problems.append)
    if problems:
        raise DecodeError(problems[0])
    return records[0]


def _scope_records(spans: list[Any], trace_ids: dict[str, str], on_error: Callable[[str], None]) -> list[SpanRecord]:
    """The spans of one scope as records; ``on_error`` hears about each span skipped.

    Replay reads a million spans, so the usual shape (camelCase, hex ids, int64 as
    strings, string attributes) is read with the fewest Python calls: one loop for the
    scope's spans with the span id checks written out in it, each saving a Python call a
    span (a span id check twice, ``otlp_span``: ~1k instructions each; the attributes'
    loop stays one function, ``otlp_attributes``, which events use too). What an odd
    value needs goes through ``decode_id``, ``_other_value`` and ``decode_attributes``,
    which say what a span is.
    """
    records: list[SpanRecord] = []
    append = records.append
    for span in spans:
        if not isinstance(span, dict):
            on_error("a span is not an object")
            continue
        try:
            trace: Any = span.get("traceId")
            if trace is None:
                trace = span.get("trace_id")
            trace_id: str | None = trace_ids.get(trace) if type(trace) is str else None  # checked for an earlier span
            if trace_id is None:
                trace_id = decode_id(trace, 16)
                if trace_id is not None:
                    trace_ids[trace] = trace_id  # a valid id is a string
            span_id = span.get("spanId")
            if span_id is None:
                span_id = span.get("span_id")
            if type(span_id) is str and len(span_id) == 16:  # ``decode_id(value, 8)`` for 16 hex digits, at C speed
                try:
                    span_id = None if unhexlify(span_id) == _ZERO_SPAN else span_id.lower()
                except (binascii.Error, ValueError):
                    span_id = None  # 16 characters are 12 bytes of base64: not a span id either
            else:
                span_id = decode_id(span_id, 8)
            name = span.get("name")
            name = name if type(name) is str else str(name or "")
            if trace_id is None or span_id is None:
                raise DecodeError(f"span {name!r} has no valid {'traceId' if trace_id is None else 'spanId'}")
            start = span.get("startTimeUnixNano")
            if start is None:
                start = span.get("start_time_unix_nano")
            end = span.get("endTimeUnixNano")
            if end is None:
                end = span.get("end_time_unix_nano")
            raw_events = span.get("events")
            try:
                start_ns = 0 if start is None or start == "" else int(start)
                end_ns = (start_ns if end == start else 0 if end is None or end == "" else int(end)) or start_ns
                events = _events(raw_events, start_ns) if raw_events else ()
            except (TypeError, ValueError) as exc:
                raise DecodeError(f"span {name!r} has a malformed time: {exc}") from None
            if not 0 <= start_ns <= MAX_TIME_NS or not 0 <= end_ns <= MAX_TIME_NS:
                raise DecodeError(f"span {name!r} has a time out of range (before 1970 or after 9999)")
            parent = span.get("parentSpanId")
            if parent is None:
                parent = span.get("parent_span_id")
            status = span.get("status")
            try:
                code, message = _status(status) if status else (STATUS_UNSET, "")
            except (TypeError, ValueError, OverflowError):
                raise DecodeError(f"span {name!r} has a malformed status: {status!r:.100}") from None
            if not parent:
                parent = None
            elif type(parent) is str and len(parent) == 16:  # ``decode_id(value, 8)`` for 16 hex digits, at C speed
                try:
                    parent = None if unhexlify(parent) == _ZERO_SPAN else parent.lower()
                except (binascii.Error, ValueError):
                    parent = None
            else:
                parent = decode_id(parent, 8)
            attributes = otlp_attributes(span.get("attributes"))
            append(span_record((trace_id, span_id, parent, name, start_ns, end_ns, attributes, events, code, message)))
        except DecodeError as exc:
            on_error(str(exc))
    return records


def _list(obj: Mapping[str, Any], *keys: str) -> list[Any]:
    for key in keys:
        value = obj.get(key)
        if isinstance(value, list):
            return value
    return []


def otlp_spans(request: Any, on_error: Callable[[str], None]) -> list[SpanRecord]:
    """Every span of one request object; ``on_error`` hears about each span or shape skipped."""
    spans: list[SpanRecord] = []
    if not isinstance(request, dict):
        on_error(f"expected a JSON object with resourceSpans, got {type(request).__name__}")
        return spans
    if isinstance(request.get("result"), dict):  # Jaeger v3 API envelope
        request = request["result"]
    resource_spans = _list(request, "resourceSpans", "resource_spans")
    if not resource_spans and not any(k in request for k in ("resourceSpans", "resource_spans")):
        on_error("no resourceSpans in this object (not OTLP trace JSON?)")
        return spans
    trace_ids: dict[str, str] = {}
    for resource in resource_spans:
        if not isinstance(resource, dict):
            on_error("a resourceSpans entry is not an object")
            continue
        for scope in _list(resource, "scopeSpans", "scope_spans", "instrumentationLibrarySpans"):
            if not isinstance(scope, dict):
                on_error("a scopeSpans entry is not an object")
                continue
            spans += _scope_records(_list(scope, "spans"), trace_ids, on_error)
    return spans
