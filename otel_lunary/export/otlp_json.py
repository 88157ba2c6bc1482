"""OTLP JSON encoding of SDK spans, as the OTLP specification and the Collector write it.

``encode_line(spans)`` writes one ``ExportTraceServiceRequest`` (``{"resourceSpans": [...]}``)
as one line: the Collector's file exporter format, read by its ``otlpjsonfile`` receiver
and by ``otel_lunary.replay``. It follows the OTLP/JSON rules that protobuf's generic
JSON mapping gets wrong or leaves to options:

- keys are lowerCamelCase, fields at their default value are omitted (except a span's
  ``name``, times and ``status``, always written, as the Collector does);
- ``traceId``/``spanId``/``parentSpanId`` are lowercase hex strings (not base64);
- enums (``kind``, ``status.code``) are integers;
- 64-bit integers (timestamps, ``intValue``) are decimal strings;
- ``bytesValue`` is base64; non-finite doubles are ``"NaN"``, ``"Infinity"``,
  ``"-Infinity"``.

The text is written directly from the spans (no protobuf objects, no dicts): fragments
for the constant parts, the standard library's C string escaper for every string, and
an attribute's whole fragment kept for values that recur (see ``otlp_proto``). Its
content is what the SDK's OTLP encoder produces for the same spans, with the exceptions
``_span_batch`` lists; tests/test_otlp_encoding.py parses it back into the official
protobuf classes (``json_format``, ids turned back into base64) and compares, and checks
it against ``request_to_dict``, the walker over the SDK encoder's protobuf that this
module used before (~3x slower; docs/performance.md).
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Mapping, Sequence
from json.encoder import encode_basestring  # the C escaper (ensure_ascii=False)
from typing import Any

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from otel_lunary.export._span_batch import (
    INT64_MAX,
    MAX_FIXED64,
    NESTED_TOO_DEEP,
    ROOM,
    INT64_MIN,
    KIND_VALUES,
    UNSET_STATUS,
    as_sequence,
    clamp_time,
    clean_text,
    dropped,
    group,
    log_dropped_value,
    span_fields,
    trace_state_text,
)

__all__ = ["encode_line", "encode_request", "request_to_dict"]

_quote: Any = encode_basestring  # str -> its JSON string literal, non-ASCII kept as is
_CACHE_MAX_VALUE_CHARS = 256
_CACHE_MAX_ENTRIES = 4096
_BOOL_VALUES = {True: '{"boolValue":true}', False: '{"boolValue":false}'}
# name, start, end of a span, by kind (the OTLP enum is the SDK's value + 1)
_KIND = {
    kind: ',"name":%%s,"kind":%d,"startTimeUnixNano":"%%d","endTimeUnixNano":"%%d"' % (kind.value + 1) for kind in SpanKind
}
_KIND_BY_VALUE = {value: _KIND[kind] for value, kind in KIND_VALUES.items()}


def encode_line(spans: Sequence[ReadableSpan]) -> bytes:
    """One OTLP JSON Lines record (UTF-8, newline-terminated) holding ``spans``."""
    parts = _request(spans)
    try:
        # Part by part, then one join: the batch (~0.6 MB) is allocated once, as bytes.
        return b"".join([part.encode() for part in parts])
    except UnicodeEncodeError:  # lone surrogates, only ever inside string literals
        text = "".join(parts)
        return clean_text(text).encode()


def encode_request(spans: Sequence[ReadableSpan]) -> dict[str, Any]:
    """The OTLP JSON object (``{"resourceSpans": [...]}``) of ``spans``."""
    result: dict[str, Any] = json.loads(encode_line(spans))
    return result


# --- attributes ------------------------------------------------------------------------


class _AttributeFragments:
    """``{"key":...,"value":...}`` fragments, by key: the start of a string value's fragment,
    and the whole fragment of recurring values.

    The value caches are keyed by the value alone (str, or a tuple of str: the two never
    compare equal, unlike 1, True and 1.0, which are not kept), so they hold only strings
    and tuples: no lookup allocates, and the garbage collector has nothing to walk.

    A key whose cache fills up with new values on nearly every call (a message's text,
    its id) stops being cached: keeping fragments that never recur costs an insert each
    and, every 4,096, a clear.
    """

    __slots__ = ("room", "heads", "values", "calls", "since", "unique")

    def __init__(self, room: int) -> None:
        self.room = room  # message levels left for the AnyValue (see _span_batch.MAX_DEPTH)
        self.heads: dict[str, str] = {}  # key -> '{"key":"k","value":{"stringValue":'
        self.values: dict[str, dict[Any, str]] = {}  # key -> value -> whole fragment
        self.calls = 0  # text() calls so far
        self.since: dict[str, int] = {}  # key -> calls when its cache was last emptied
        self.unique: set[str] = set()  # keys whose values are not cached

    def _full(self, key: str, values: dict[Any, str]) -> None:
        """``key``'s cache is full: empty it, and stop caching a key that filled it in under
        two values a call."""
        values.clear()
        if self.calls - self.since.get(key, 0) < 2 * _CACHE_MAX_ENTRIES:
            self.unique.add(key)
        self.since[key] = self.calls

    def _key(self, key: str) -> dict[Any, str]:
        if len(self.values) >= _CACHE_MAX_ENTRIES:
            self.values.clear()
            self.heads.clear()
            self.since.clear()
            self.unique.clear()
        self.since[key] = self.calls
        self.heads[key] = '{"key":' + _quote(key) + ',"value":{"stringValue":'
        found: dict[Any, str] = {}
        self.values[key] = found
        return found

    def text(self, attributes: Mapping[str, Any]) -> str:
        """The JSON array of ``attributes``, without brackets."""
        out: list[str] = []
        append = out.append
        by_key = self.values
        self.calls += 1
        for key, value in attributes.items():
            kind = type(value)
            if type(key) is not str or (kind is not str and kind is not tuple):
                found = self._other(key, value)
                if found is not None:
                    append(found)
                continue
            values = by_key.get(key)
            if values is None:
                values = self._key(key)
            if kind is str:
                found = values.get(value)
                if found is None:
                    found = self.heads[key] + _quote(value) + "}}"
                    if len(value) <= _CACHE_MAX_VALUE_CHARS and key not in self.unique:
                        if len(values) >= _CACHE_MAX_ENTRIES:
                            self._full(key, values)
                        values[value] = found
                append(found)
            else:
                # a tuple: thread tags, the same on every span of a thread. Looked up first:
                # only tuples of 1-8 str are ever kept, and a tuple equal to one of those is
                # one. Its hash is its items': a list's raises TypeError, another object's anything
                # (then, as any value that fails, it is dropped alone, by the path below).
                try:
                    found = values.get(value)
                except Exception:  # noqa: BLE001
                    found = None
                if found is None:
                    found = self._other(key, value)
                    if found is None:
                        continue
                    if 0 < len(value) <= 8 and all(type(item) is str for item in value):
                        if len(values) >= _CACHE_MAX_ENTRIES:
                            self._full(key, values)
                        values[value] = found
                append(found)
        return ",".join(out)

    def _other(self, key: Any, value: Any) -> str | None:
        try:
            return '{"key":' + _quote(key) + ',"value":' + _any_value(value, self.room) + "}"
        except Exception as error:  # noqa: BLE001 - the SDK's encoder drops the attribute on any error
            log_dropped_value(key, value, str(error) or type(error).__name__)
            return None


def _double(value: float) -> str:
    if math.isfinite(value):
        return float.__repr__(value)
    if math.isnan(value):
        return '"NaN"'
    return '"Infinity"' if value > 0 else '"-Infinity"'


def _any_value(value: Any, room: int) -> str:
    """An ``AnyValue`` object with at most ``room`` message levels, with the SDK encoder's
    type order."""
    if room < 1:
        raise ValueError(NESTED_TOO_DEEP)
    if value is None:
        return "{}"
    if isinstance(value, bool):
        return _BOOL_VALUES[value]
    if isinstance(value, str):
        return '{"stringValue":' + _quote(value) + "}"
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise ValueError(f"integer out of int64 range: {value}")
        return '{"intValue":"%d"}' % value
    if isinstance(value, float):
        return '{"doubleValue":' + _double(value) + "}"
    if isinstance(value, bytes):
        return '{"bytesValue":"' + base64.b64encode(value).decode("ascii") + '"}'
    items = as_sequence(value)
    if items is not None:
        return '{"arrayValue":{"values":[' + ",".join([_any_value(item, room - 2) for item in items]) + "]}}"
    if isinstance(value, Mapping):
        entries = ['{"key":' + _quote(str(k)) + ',"value":' + _any_value(v, room - 3) + "}" for k, v in value.items()]
        return '{"kvlistValue":{"values":[' + ",".join(entries) + "]}}"
    raise TypeError(f"invalid type {type(value).__name__}")


def _attributes_member(attributes: Mapping[str, Any] | None, room: int) -> str:
    """``,"attributes":[...]`` of a rarely encoded object (resource, scope, event, link)."""
    if not attributes:
        return ""
    text = _AttributeFragments(room).text(attributes)
    return ',"attributes":[' + text + "]" if text else ""


_span_attributes = _AttributeFragments(ROOM["span"])
_event_attributes = _AttributeFragments(ROOM["event"])


# --- spans -------------------------------------------------------------------------------


def _event(event: Any) -> str:
    out = '{"timeUnixNano":"%d","name":%s' % (clamp_time(event.timestamp or 0), _quote(event.name or ""))
    attributes = event.attributes
    if attributes:
        text = _event_attributes.text(attributes._dict if type(attributes) is BoundedAttributes else attributes)
        if text:
            out += ',"attributes":[' + text + "]"
    count = event.dropped_attributes
    if count:
        out += ',"droppedAttributesCount":%d' % count
    return out + "}"


def _link(link: Any) -> str:
    context = link.context
    out = '{"traceId":"%032x","spanId":"%016x"' % (context.trace_id, context.span_id)
    out += _attributes_member(link.attributes, ROOM["link"])
    count = link.dropped_attributes
    if count:
        out += ',"droppedAttributesCount":%d' % count
    return out + (',"flags":768}' if context.is_remote else ',"flags":256}')


def _status(status: Any) -> str:
    if status is None:
        return ',"status":{}}'
    description, code = status.description, status.status_code.value
    if description:
        return ',"status":{"message":%s%s}}' % (_quote(description), ',"code":%d' % code if code else "")
    return ',"status":{"code":%d}}' % code if code else ',"status":{}}'


def _span(span: ReadableSpan) -> str:
    trace_id, span_id, trace_state, parent, name, kind, start, end, attributes, events, links, status = span_fields(span)
    out = '{"traceId":"%032x","spanId":"%016x"' % (trace_id, span_id)
    if trace_state:
        out += ',"traceState":' + _quote(trace_state_text(trace_state))
    if parent is not None:
        out += ',"parentSpanId":"%016x","flags":%d' % (parent.span_id, 768 if parent.is_remote else 256)
    else:
        out += ',"flags":256'
    if not (start and end and 0 < start <= MAX_FIXED64 and 0 < end <= MAX_FIXED64):
        start, end = clamp_time(start or 0), clamp_time(end or 0)
    out += _KIND_BY_VALUE[kind._value_] % (_quote(name or ""), start, end)
    if attributes:
        if type(attributes) is BoundedAttributes:
            text = _span_attributes.text(attributes._dict)
            count = attributes.dropped
        else:
            text = _span_attributes.text(attributes)
            count = 0 if type(attributes) is dict else dropped(attributes)
        if text:
            out += ',"attributes":[' + text + "]"
        if count:
            out += ',"droppedAttributesCount":%d' % count
    if events:
        out += ',"events":[' + ",".join([_event(event) for event in events]) + "]"
        count = dropped(events)
        if count:
            out += ',"droppedEventsCount":%d' % count
    if links:
        out += ',"links":[' + ",".join([_link(link) for link in links]) + "]"
        count = dropped(links)
        if count:
            out += ',"droppedLinksCount":%d' % count
    if status is UNSET_STATUS or (status is not None and status.status_code is StatusCode.UNSET and not status.description):
        return out + ',"status":{}}'
    return out + _status(status)


def _scope(scope: Any) -> str:
    if scope is None:
        return "{}"
    members = []
    if scope.name:
        members.append('"name":' + _quote(scope.name))
    if scope.version:
        members.append('"version":' + _quote(scope.version))
    attributes = _attributes_member(scope.attributes, ROOM["scope"])
    if attributes:
        members.append(attributes[1:])
    return "{" + ",".join(members) + "}"


def _request(spans: Sequence[ReadableSpan]) -> list[str]:
    """The request's text in parts, each span one part: a batch is ~0.6 MB, and every
    concatenation of the whole would be one more allocation of that size (fresh pages,
    faulted in), so the parts are joined only once, by the caller."""
    parts = ['{"resourceSpans":[']
    append = parts.append
    for r, (resource, scopes) in enumerate(group(spans)):
        append('{"resource":{' if not r else ',{"resource":{')
        append(_attributes_member(resource.attributes, ROOM["resource"])[1:])
        append('},"scopeSpans":[')
        for s, (scope, members) in enumerate(scopes):
            append('{"scope":' if not s else ',{"scope":')
            append(_scope(scope))
            append(',"spans":[')
            for i, span in enumerate(members):
                if i:
                    append(",")
                append(_span(span))
            append("]")
            schema_url = scope.schema_url if scope is not None else None
            if schema_url:
                append(',"schemaUrl":' + _quote(schema_url))
            append("}")
        append("]")
        if resource.schema_url:
            append(',"schemaUrl":' + _quote(resource.schema_url))
        append("}")
    append("]}\n")
    return parts


# --- the walker over the SDK encoder's protobuf (the reference the tests compare with) ---


def request_to_dict(request: Any) -> dict[str, Any]:
    """Map an ``ExportTraceServiceRequest`` protobuf to its OTLP JSON object."""
    return {"resourceSpans": [_walk_resource_spans(rs) for rs in request.resource_spans]}


def _walk_resource_spans(rs: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if rs.HasField("resource"):
        resource: dict[str, Any] = {}
        if rs.resource.attributes:
            resource["attributes"] = _walk_key_values(rs.resource.attributes)
        if rs.resource.dropped_attributes_count:
            resource["droppedAttributesCount"] = rs.resource.dropped_attributes_count
        out["resource"] = resource
    out["scopeSpans"] = [_walk_scope_spans(ss) for ss in rs.scope_spans]
    if rs.schema_url:
        out["schemaUrl"] = rs.schema_url
    return out


def _walk_scope_spans(ss: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if ss.HasField("scope"):
        scope: dict[str, Any] = {}
        sc = ss.scope
        if sc.name:
            scope["name"] = sc.name
        if sc.version:
            scope["version"] = sc.version
        if sc.attributes:
            scope["attributes"] = _walk_key_values(sc.attributes)
        if sc.dropped_attributes_count:
            scope["droppedAttributesCount"] = sc.dropped_attributes_count
        out["scope"] = scope
    out["spans"] = [_walk_span(s) for s in ss.spans]
    if ss.schema_url:
        out["schemaUrl"] = ss.schema_url
    return out


def _walk_span(s: Any) -> dict[str, Any]:
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
        out["attributes"] = _walk_key_values(s.attributes)
    if s.dropped_attributes_count:
        out["droppedAttributesCount"] = s.dropped_attributes_count
    if s.events:
        out["events"] = [_walk_event(e) for e in s.events]
    if s.dropped_events_count:
        out["droppedEventsCount"] = s.dropped_events_count
    if s.links:
        out["links"] = [_walk_link(link) for link in s.links]
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


def _walk_event(e: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"timeUnixNano": str(e.time_unix_nano), "name": e.name}
    if e.attributes:
        out["attributes"] = _walk_key_values(e.attributes)
    if e.dropped_attributes_count:
        out["droppedAttributesCount"] = e.dropped_attributes_count
    return out


def _walk_link(link: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"traceId": link.trace_id.hex(), "spanId": link.span_id.hex()}
    if link.trace_state:
        out["traceState"] = link.trace_state
    if link.attributes:
        out["attributes"] = _walk_key_values(link.attributes)
    if link.dropped_attributes_count:
        out["droppedAttributesCount"] = link.dropped_attributes_count
    if link.flags:
        out["flags"] = link.flags
    return out


def _walk_key_values(kvs: Any) -> list[dict[str, Any]]:
    return [{"key": kv.key, "value": _walk_any_value(kv.value)} for kv in kvs]


def _walk_double(value: float) -> float | str:
    if math.isfinite(value):
        return value
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def _walk_any_value(v: Any) -> dict[str, Any]:
    which = v.WhichOneof("value")
    if which == "string_value":
        return {"stringValue": v.string_value}
    if which == "int_value":
        return {"intValue": str(v.int_value)}
    if which == "bool_value":
        return {"boolValue": v.bool_value}
    if which == "double_value":
        return {"doubleValue": _walk_double(v.double_value)}
    if which == "array_value":
        return {"arrayValue": {"values": [_walk_any_value(x) for x in v.array_value.values]}}
    if which == "kvlist_value":
        return {"kvlistValue": {"values": _walk_key_values(v.kvlist_value.values)}}
    if which == "bytes_value":
        return {"bytesValue": base64.b64encode(v.bytes_value).decode("ascii")}
    return {}
