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

_HEX = frozenset("0123456789abcdefABCDEF")


class DecodeError(ValueError):
    """A span that cannot be used (no ids, no times); the message says which and why."""


def _field(obj: Mapping[str, Any], camel: str, snake: str) -> Any:
    value = obj.get(camel)
    return obj.get(snake) if value is None else value


def decode_id(value: Any, size: int) -> str | None:
    """A trace (16 bytes) or span (8 bytes) id as lowercase hex; accepts hex or base64."""
    if not isinstance(value, str) or not value:
        return None
    if len(value) == size * 2 and _HEX.issuperset(value):
        hex_id = value.lower()
    else:
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return None
        if len(raw) != size:
            return None
        hex_id = raw.hex()
    return None if hex_id.strip("0") == "" else hex_id


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


def decode_attributes(items: Any) -> dict[str, Any]:
    """OTLP ``KeyValue`` list to a dict; malformed entries are dropped, not fatal."""
    result: dict[str, Any] = {}
    if not isinstance(items, list):
        return result
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("key"), str):
            try:
                result[item["key"]] = decode_value(item.get("value"))
            except (TypeError, ValueError):
                continue
    return result


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


def decode_span(span: Mapping[str, Any]) -> SpanRecord:
    """One OTLP JSON span; raises ``DecodeError`` when it lacks what replay needs."""
    trace_id = decode_id(_field(span, "traceId", "trace_id"), 16)
    span_id = decode_id(_field(span, "spanId", "span_id"), 8)
    name = str(span.get("name") or "")
    if trace_id is None or span_id is None:
        missing = "traceId" if trace_id is None else "spanId"
        raise DecodeError(f"span {name!r} has no valid {missing}")
    try:
        start = _nanos(_field(span, "startTimeUnixNano", "start_time_unix_nano"))
        end = _nanos(_field(span, "endTimeUnixNano", "end_time_unix_nano")) or start
        events = tuple(
            EventRecord(
                name=str(event.get("name") or ""),
                time_ns=_nanos(_field(event, "timeUnixNano", "time_unix_nano")) or start,
                attributes=decode_attributes(event.get("attributes")),
            )
            for event in span.get("events") or ()
            if isinstance(event, dict)
        )
    except (TypeError, ValueError) as exc:
        raise DecodeError(f"span {name!r} has a malformed time: {exc}") from None
    code, message = _status(span)
    return SpanRecord(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=decode_id(_field(span, "parentSpanId", "parent_span_id"), 8),
        name=name,
        start_ns=start,
        end_ns=end,
        attributes=decode_attributes(span.get("attributes")),
        events=events,
        status_code=code,
        status_message=message,
    )


def _list(obj: Mapping[str, Any], *keys: str) -> list[Any]:
    for key in keys:
        value = obj.get(key)
        if isinstance(value, list):
            return value
    return []


def iter_request_spans(request: Any, on_error: Callable[[str], None]) -> Iterator[SpanRecord]:
    """Every span of one request object; ``on_error`` hears about each span or shape skipped."""
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
                try:
                    yield decode_span(span)
                except DecodeError as exc:
                    on_error(str(exc))
