"""OTLP JSON (one ``ExportTraceServiceRequest`` / ``TracesData`` object) to ``SpanRecord``.

The OTLP spec's JSON mapping uses camelCase keys, hex ids, integer enums and int64 as
strings, but real files differ: protobuf's ``MessageToJson`` writes base64 ids and can
keep snake_case field names, and some writers put int64 as numbers. The decoder accepts
all of these so a file written by any OTel component replays.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from otel_lunary.replay.records import STATUS_UNSET, EventRecord, SpanRecord



class DecodeError(ValueError):
    """A span that cannot be used (no ids, no times); the message says which and why."""


def _field(obj: Mapping[str, Any], camel: str, snake: str) -> Any:
    value = obj.get(camel)
    return obj.get(snake) if value is None else value


_ZERO_IDS = {16: bytes(16), 8: bytes(8)}


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
    return [decode_value(v) for v in (raw or {}).get("values", ())]


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


def _slow_attributes(items: list[Any]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("key"), str):
            try:
                result[item["key"]] = decode_value(item.get("value"))
            except (TypeError, ValueError):
                continue
    return result


def _str_key(key: Any) -> str:
    if type(key) is not str:
        raise TypeError("attribute key is not a string")
    return key


def decode_attributes(items: Any) -> dict[str, Any]:
    """OTLP ``KeyValue`` list to a dict; malformed entries are dropped, not fatal.

    The common shape (``{"key": str, "value": {"stringValue": ...}}``) is decoded in one
    comprehension; anything unusual (a missing value, a non-string key, a value that does
    not decode) makes the whole list go through the entry-by-entry loop, so the result is
    the same either way.
    """
    if not isinstance(items, list):
        return {}
    try:
        return {
            _str_key(item["key"]): value["stringValue"] if len(value := item["value"]) == 1 and "stringValue" in value else decode_value(value)
            for item in items
        }
    except (TypeError, ValueError, KeyError, AttributeError):
        return _slow_attributes(items)


def _nanos(value: Any) -> int:
    if value is None or value == "":
        return 0
    return int(value)


def _status(span: Mapping[str, Any]) -> tuple[int, str]:
    status = span.get("status")
    if not isinstance(status, dict):
        return STATUS_UNSET, ""
    code = status.get("code", 0)
    if isinstance(code, str):  # MessageToJson writes enum names
        code = {"STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}.get(code, 0)
    return int(code or 0), str(status.get("message") or "")


SpanFields = tuple[str, str, "str | None", str, int, int, dict[str, Any], tuple[EventRecord, ...], int, str]


def span_fields(span: Mapping[str, Any]) -> SpanFields:
    """The ``SpanRecord`` fields of one OTLP JSON span, in order, without building the record.

    Raises ``DecodeError`` when the span lacks what replay needs. ``decode_span`` and the
    assembler's file path both use it, so they read a span the same way.
    """
    trace_id = span.get("traceId")
    if trace_id is None:
        trace_id = span.get("trace_id")
    trace_id = decode_id(trace_id, 16)
    span_id = span.get("spanId")
    if span_id is None:
        span_id = span.get("span_id")
    span_id = decode_id(span_id, 8)
    name = span.get("name")
    name = name if type(name) is str else str(name or "")
    if trace_id is None or span_id is None:
        missing = "traceId" if trace_id is None else "spanId"
        raise DecodeError(f"span {name!r} has no valid {missing}")
    start = span.get("startTimeUnixNano")
    if start is None:
        start = span.get("start_time_unix_nano")
    end = span.get("endTimeUnixNano")
    if end is None:
        end = span.get("end_time_unix_nano")
    raw_events = span.get("events")
    try:
        start = 0 if start is None or start == "" else int(start)
        end = (0 if end is None or end == "" else int(end)) or start
        events = event_records(raw_events, start) if raw_events else ()
    except (TypeError, ValueError) as exc:
        raise DecodeError(f"span {name!r} has a malformed time: {exc}") from None
    parent = span.get("parentSpanId")
    if parent is None:
        parent = span.get("parent_span_id")
    status = span.get("status")
    code, message = _status(span) if status else (STATUS_UNSET, "")
    return (
        trace_id,
        span_id,
        decode_id(parent, 8) if parent else None,
        name,
        start,
        end,
        decode_attributes(span.get("attributes")),
        events,
        code,
        message,
    )


def event_records(raw_events: Any, start: int) -> tuple[EventRecord, ...]:
    """A span's ``events`` list decoded (``start`` is the time of an event without one);
    raises ``TypeError`` or ``ValueError`` on a malformed time, as ``span_fields`` reports."""
    return tuple(
        EventRecord(
            name=str(event.get("name") or ""),
            time_ns=_nanos(_field(event, "timeUnixNano", "time_unix_nano")) or start,
            attributes=decode_attributes(event.get("attributes")),
        )
        for event in raw_events
        if isinstance(event, dict)
    )


def decode_span(span: Mapping[str, Any]) -> SpanRecord:
    """One OTLP JSON span; raises ``DecodeError`` when it lacks what replay needs."""
    return SpanRecord(*span_fields(span))


def iter_raw_spans(request: Any, on_error: Callable[[str], None]) -> Iterator[dict[str, Any]]:
    """Every span object of one request object, undecoded; ``on_error`` hears about each shape skipped."""
    if not isinstance(request, dict):
        on_error(f"expected a JSON object with resourceSpans, got {type(request).__name__}")
        return
    if isinstance(request.get("result"), dict):  # Jaeger v3 API envelope
        request = request["result"]
    resource_spans = _list(request, "resourceSpans", "resource_spans")
    if not resource_spans and not any(k in request for k in ("resourceSpans", "resource_spans")):
        on_error("no resourceSpans in this object (not OTLP trace JSON?)")
        return
    for resource in resource_spans:
        if not isinstance(resource, dict):
            on_error("a resourceSpans entry is not an object")
            continue
        for scope in _list(resource, "scopeSpans", "scope_spans", "instrumentationLibrarySpans"):
            if not isinstance(scope, dict):
                on_error("a scopeSpans entry is not an object")
                continue
            for span in _list(scope, "spans"):
                if not isinstance(span, dict):
                    on_error("a span is not an object")
                    continue
                yield span


def _list(obj: Mapping[str, Any], *keys: str) -> list[Any]:
    for key in keys:
        value = obj.get(key)
        if isinstance(value, list):
            return value
    return []


def iter_request_spans(request: Any, on_error: Callable[[str], None]) -> Iterator[SpanRecord]:
    """Every span of one request object; ``on_error`` hears about each span or shape skipped."""
    for span in iter_raw_spans(request, on_error):
        try:
            fields = span_fields(span)
        except DecodeError as exc:
            on_error(str(exc))
            continue
        yield SpanRecord(*fields)
