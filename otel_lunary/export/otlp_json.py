"""OTLP JSON encoding of SDK spans, as the OTLP specification and the Collector write it.

Spans are first encoded by the OTel SDK's own OTLP encoder
(``opentelemetry.exporter.otlp.proto.common.trace_encoder.encode_spans``) into an
``ExportTraceServiceRequest`` protobuf, so the content is exactly what the OTLP exporters
send. That message is then mapped to JSON by a small walker written for the trace
messages, following the OTLP/JSON rules that protobuf's generic JSON mapping gets wrong
or leaves to options:

- keys are lowerCamelCase, fields at their default value are omitted;
- ``traceId``/``spanId``/``parentSpanId`` are lowercase hex strings (not base64);
- enums (``kind``, ``status.code``) are integers;
- 64-bit integers (timestamps, ``intValue``) are decimal strings;
- ``bytesValue`` is base64; non-finite doubles are ``"NaN"``, ``"Infinity"``,
  ``"-Infinity"``.

The result is one ``ExportTraceServiceRequest`` (``{"resourceSpans": [...]}``) per line:
the Collector's file exporter format, read by its ``otlpjsonfile`` receiver and by
``otel_lunary.replay``.

The walker is ~1.5x faster than ``google.protobuf.json_format.MessageToDict`` followed by
the id fix-up (docs/export.md); tests/test_file_exporter.py holds it to that mapping.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Sequence
from typing import Any

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan

__all__ = ["encode_line", "encode_request", "request_to_dict"]

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False, check_circular=False).encode


def encode_request(spans: Sequence[ReadableSpan]) -> dict[str, Any]:
    """The OTLP JSON object (``{"resourceSpans": [...]}``) of ``spans``."""
    return request_to_dict(encode_spans(spans))


def encode_line(spans: Sequence[ReadableSpan]) -> bytes:
    """One OTLP JSON Lines record (UTF-8, newline-terminated) holding ``spans``."""
    return (_dumps(request_to_dict(encode_spans(spans))) + "\n").encode("utf-8")


def request_to_dict(request: Any) -> dict[str, Any]:
    """Map an ``ExportTraceServiceRequest`` protobuf to its OTLP JSON object."""
    return {"resourceSpans": [_resource_spans(rs) for rs in request.resource_spans]}


def _resource_spans(rs: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if rs.HasField("resource"):
        resource: dict[str, Any] = {}
        if rs.resource.attributes:
            resource["attributes"] = _key_values(rs.resource.attributes)
        if rs.resource.dropped_attributes_count:
            resource["droppedAttributesCount"] = rs.resource.dropped_attributes_count
        out["resource"] = resource
    out["scopeSpans"] = [_scope_spans(ss) for ss in rs.scope_spans]
    if rs.schema_url:
        out["schemaUrl"] = rs.schema_url
    return out


def _scope_spans(ss: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if ss.HasField("scope"):
        scope: dict[str, Any] = {}
        sc = ss.scope
        if sc.name:
            scope["name"] = sc.name
        if sc.version:
            scope["version"] = sc.version
        if sc.attributes:
            scope["attributes"] = _key_values(sc.attributes)
        if sc.dropped_attributes_count:
            scope["droppedAttributesCount"] = sc.dropped_attributes_count
        out["scope"] = scope
    out["spans"] = [_span(s) for s in ss.spans]
    if ss.schema_url:
        out["schemaUrl"] = ss.schema_url
    return out


def _span(s: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"traceId": s.trace_id.hex(), "spanId": s.span_id.hex()}
    if s.trace_state:
        out["traceState"] = s.trace_state
    if s.parent_span_id:
        out["parentSpanId"] = s.parent_span_id.hex()
    if s.flags:
        out["flags"] = s.flags
    out["name"] = s.name
    if s.kind:
        out["kind"] = s.kind
    out["startTimeUnixNano"] = str(s.start_time_unix_nano)
    out["endTimeUnixNano"] = str(s.end_time_unix_nano)
    if s.attributes:
        out["attributes"] = _key_values(s.attributes)
    if s.dropped_attributes_count:
        out["droppedAttributesCount"] = s.dropped_attributes_count
    if s.events:
        out["events"] = [_event(e) for e in s.events]
    if s.dropped_events_count:
        out["droppedEventsCount"] = s.dropped_events_count
    if s.links:
        out["links"] = [_link(link) for link in s.links]
    if s.dropped_links_count:
        out["droppedLinksCount"] = s.dropped_links_count
    status: dict[str, Any] = {}
    if s.HasField("status"):
        if s.status.message:
            status["message"] = s.status.message
        if s.status.code:
            status["code"] = s.status.code
    out["status"] = status
    return out


def _event(e: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"timeUnixNano": str(e.time_unix_nano), "name": e.name}
    if e.attributes:
        out["attributes"] = _key_values(e.attributes)
    if e.dropped_attributes_count:
        out["droppedAttributesCount"] = e.dropped_attributes_count
    return out


def _link(link: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"traceId": link.trace_id.hex(), "spanId": link.span_id.hex()}
    if link.trace_state:
        out["traceState"] = link.trace_state
    if link.attributes:
        out["attributes"] = _key_values(link.attributes)
    if link.dropped_attributes_count:
        out["droppedAttributesCount"] = link.dropped_attributes_count
    if link.flags:
        out["flags"] = link.flags
    return out


def _key_values(kvs: Any) -> list[dict[str, Any]]:
    return [{"key": kv.key, "value": _any_value(kv.value)} for kv in kvs]


def _double(value: float) -> float | str:
    if math.isfinite(value):
        return value
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def _any_value(v: Any) -> dict[str, Any]:
    which = v.WhichOneof("value")
    if which == "string_value":
        return {"stringValue": v.string_value}
    if which == "int_value":
        return {"intValue": str(v.int_value)}
    if which == "bool_value":
        return {"boolValue": v.bool_value}
    if which == "double_value":
        return {"doubleValue": _double(v.double_value)}
    if which == "array_value":
        return {"arrayValue": {"values": [_any_value(x) for x in v.array_value.values]}}
    if which == "kvlist_value":
        return {"kvlistValue": {"values": _key_values(v.kvlist_value.values)}}
    if which == "bytes_value":
        return {"bytesValue": base64.b64encode(v.bytes_value).decode("ascii")}
    return {}
