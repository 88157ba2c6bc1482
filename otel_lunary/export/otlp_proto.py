"""OTLP/protobuf encoding of SDK spans, written straight to the wire format.

``encode_request(spans)`` returns the bytes of the ``ExportTraceServiceRequest`` that the
OTel SDK's encoder would serialise (``encode_spans(spans).SerializeToString()``): the same
fields in the same order, byte for byte (tests/test_otlp_encoding.py decodes both with the
official ``opentelemetry.proto`` classes and compares them, for every span kind and
attribute type, and checks the bytes), except for the values ``_span_batch`` lists, which
the SDK's encoder drops or fails the batch on.

Why not the SDK's encoder: it builds a protobuf object per span, attribute, value, event
and link, then serialises them; that is ~26 µs a span here, most of the OTLP exporters'
time (docs/performance.md). This module writes the bytes directly: tags and lengths as
precomputed constants, the resource and scope encoded once per batch, the ids with
``int.to_bytes``, times with ``struct``, and an attribute's whole encoded field kept for
values that recur (a thread's id, tags and user, a span's type and role: ~70 % of a
chat span's attributes) in a small per-tag cache that is emptied when full.

Wire format reference: https://protobuf.dev/programming-guides/encoding/ and
opentelemetry-proto ``trace/v1/trace.proto``, ``common/v1/common.proto``.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from otel_lunary.export._span_batch import (
    INT64_MAX,
    NESTED_TOO_DEEP,
    ROOM,
    INT64_MIN,
    KIND_VALUES,
    UNSET_STATUS,
    MAX_FIXED64,
    as_sequence,
    clamp_time,
    clean_text,
    dropped,
    group,
    log_dropped_value,
    span_fields,
    trace_state_text,
)

__all__ = ["encode_request"]

_pack_double = struct.Struct("<d").pack
_pack_fixed64 = struct.Struct("<Q").pack
_pack_times = struct.Struct("<BQBQ").pack  # Span.start_time_unix_nano (7), end_time_unix_nano (8)

_BYTE = [bytes((n,)) for n in range(256)]

# Field tags: (field number << 3) | wire type (0 varint, 1 fixed64, 2 length-delimited, 5 fixed32).
_REQUEST_RESOURCE_SPANS = b"\x0a"  # ExportTraceServiceRequest.resource_spans = 1
_RESOURCE = b"\x0a"  # ResourceSpans.resource = 1
_SCOPE_SPANS = b"\x12"  # ResourceSpans.scope_spans = 2
_SCHEMA_URL = b"\x1a"  # ResourceSpans.schema_url = 3, ScopeSpans.schema_url = 3
_SCOPE = b"\x0a"  # ScopeSpans.scope = 1
_SPAN = b"\x12"  # ScopeSpans.spans = 2
_RESOURCE_ATTRIBUTE = b"\x0a"  # Resource.attributes = 1
_SCOPE_NAME, _SCOPE_VERSION, _SCOPE_ATTRIBUTE = b"\x0a", b"\x12", b"\x1a"
_SPAN_TRACE_STATE = b"\x1a"  # 3
_SPAN_PARENT = b"\x22\x08"  # parent_span_id = 4, 8 bytes
_SPAN_NAME = b"\x2a"  # 5
_SPAN_ATTRIBUTE = b"\x4a"  # 9
_SPAN_DROPPED_ATTRIBUTES = b"\x50"  # 10
_SPAN_EVENT = b"\x5a"  # 11
_SPAN_DROPPED_EVENTS = b"\x60"  # 12
_SPAN_LINK = b"\x6a"  # 13
_SPAN_DROPPED_LINKS = b"\x70"  # 14
_SPAN_STATUS = b"\x7a"  # 15
_START_TAG, _END_TAG = 0x39, 0x41  # fixed64 fields 7 and 8
_EVENT_TIME = b"\x09"  # Event.time_unix_nano = 1 (fixed64)
_EVENT_NAME, _EVENT_ATTRIBUTE, _EVENT_DROPPED = b"\x12", b"\x1a", b"\x20"
_LINK_IDS = b"\x0a\x10"  # Link.trace_id = 1 (16 bytes), then span_id = 2 (8 bytes)
_LINK_ATTRIBUTE, _LINK_DROPPED = b"\x22", b"\x28"
_STATUS_MESSAGE, _STATUS_CODE = b"\x12", b"\x18"
_KEY = b"\x0a"  # KeyValue.key = 1
_VALUE = b"\x12"  # KeyValue.value = 2
_STRING, _BOOL, _INT, _DOUBLE = b"\x0a", b"\x10", b"\x18", b"\x21"  # AnyValue oneof fields 1-4
_ARRAY, _KVLIST, _BYTES = b"\x2a", b"\x32", b"\x3a"  # 5, 6, 7
_LIST_ITEM = b"\x0a"  # ArrayValue.values = 1, KeyValueList.values = 1

# Span.flags (16, fixed32): "has is_remote" always, "is remote" when the parent/link is remote.
_FLAGS_LOCAL = b"\x85\x01" + struct.pack("<I", 0x100)
_FLAGS_REMOTE = b"\x85\x01" + struct.pack("<I", 0x300)
_KIND = {kind: b"\x30" + _BYTE[kind.value + 1] for kind in SpanKind}  # Span.kind = 6, enum = SDK value + 1
_KIND_BY_VALUE = {value: _KIND[kind] for value, kind in KIND_VALUES.items()}
_EMPTY_STATUS = _SPAN_STATUS + b"\x00"
_BOOL_VALUES = {True: _BOOL + b"\x01", False: _BOOL + b"\x00"}

_CACHE_MAX_VALUE_CHARS = 256  # ids, tags, roles, types; content and message ids are longer or unique
_CACHE_MAX_ENTRIES = 4096
_CACHED_KINDS = frozenset((str, float, tuple))


def _varint(n: int) -> bytes:
    if n < 0x80:
        return _BYTE[n]
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(tag: bytes, body: bytes) -> bytes:
    return tag + _varint(len(body)) + body


def _utf8(text: str) -> bytes:
    try:
        return text.encode()
    except UnicodeEncodeError:
        return clean_text(text).encode()


# --- attributes ------------------------------------------------------------------------


class _KeyFields:
    """What is known of one attribute key under one tag: its encoded key, the whole field
    of its recurring values, the start of a field for each size of string value.

    The caches are keyed by the value alone (str, or a tuple of str: the two never compare
    equal, unlike 1, True and 1.0, which are not kept), so they hold only strings, tuples
    and bytes: no lookup allocates, and the garbage collector has nothing to walk.
    """

    __slots__ = ("tag", "key_field", "values", "headers", "double", "since", "unique")

    def __init__(self, tag: bytes, key: str, calls: int = 0) -> None:
        self.tag = tag
        self.since = calls  # the owner's put() calls when ``values`` was last emptied
        # Its cache filled up with new values on nearly every call (a message's text, its
        # id): its values are not kept, since each insert (and every 4,096 a clear) is waste.
        self.unique = False
        self.key_field = _field(_KEY, _utf8(key)) if key else b""
        self.values: dict[Any, bytes] = {}  # short str value, or tuple of str -> whole field
        self.headers: dict[int, bytes] = {}  # UTF-8 size of a str value -> field up to the value
        # a double's field up to its 8 bytes: key, value (9 bytes: tag + fixed64)
        self.double = tag + _varint(len(self.key_field) + 11) + self.key_field + _VALUE + b"\x09" + _DOUBLE

    def string_header(self, size: int) -> bytes:
        """Everything of a string attribute's field before its ``size`` bytes of UTF-8."""
        length = _varint(size)
        any_value = 1 + len(length) + size
        any_length = _varint(any_value)
        key_value = len(self.key_field) + 1 + len(any_length) + any_value
        found = self.tag + _varint(key_value) + self.key_field + _VALUE + any_length + _STRING + length
        if len(self.headers) >= _CACHE_MAX_ENTRIES:
            self.headers.clear()
        self.headers[size] = found
        return found

    def keep(self, value: Any, field: bytes, calls: int) -> None:
        if len(self.values) >= _CACHE_MAX_ENTRIES:
            self.values.clear()
            self.unique = calls - self.since < 2 * _CACHE_MAX_ENTRIES
            self.since = calls
        self.values[value] = field


class _AttributeFields:
    """Encoded ``KeyValue`` fields under one tag (span, event...), by key (``_KeyFields``)."""

    __slots__ = ("tag", "room", "by_key", "calls")

    def __init__(self, tag: bytes, room: int) -> None:
        self.tag = tag
        self.room = room  # message levels left for the AnyValue (see MAX_DEPTH)
        self.by_key: dict[str, _KeyFields] = {}
        self.calls = 0  # put() calls so far

    def key(self, key: str) -> _KeyFields:
        found = self.by_key.get(key)
        if found is None:
            if len(self.by_key) >= _CACHE_MAX_ENTRIES:
                self.by_key.clear()
            found = self.by_key[key] = _KeyFields(self.tag, key, self.calls)
        return found

    def put(self, out: list[bytes], attributes: Mapping[str, Any]) -> None:
        """Append the fields of ``attributes`` to ``out``."""
        append = out.append
        by_key = self.by_key
        self.calls += 1
        for key, value in attributes.items():
            kind = type(value)
            if type(key) is not str or kind not in _CACHED_KINDS:
                found = self._other_field(key, value)
                if found is not None:
                    append(found)
                continue
            entry = by_key.get(key) or self.key(key)
            if kind is str:
                found = entry.values.get(value)
                if found is not None:
                    append(found)
                    continue
                try:
                    encoded = value.encode()
                except UnicodeEncodeError:
                    encoded = clean_text(value).encode()
                header = entry.headers.get(len(encoded)) or entry.string_header(len(encoded))
                if len(value) <= _CACHE_MAX_VALUE_CHARS and not entry.unique:
                    found = header + encoded
                    entry.keep(value, found, self.calls)
                    append(found)
                else:
                    append(header)
                    append(encoded)
            elif kind is float:
                append(entry.double + _pack_double(value))
            else:
                # a tuple: thread tags, the same on every span of a thread. Looked up first:
                # only tuples of 1-8 str are ever kept, and a tuple equal to one of those is
                # one. Its hash is its items': a list's raises TypeError, another object's anything
                # (then, as any value that fails, it is dropped alone, by the path below).
                try:
                    found = entry.values.get(value)
                except Exception:  # noqa: BLE001
                    found = None
                if found is None:
                    found = self._other_field(key, value)
                    if found is None:
                        continue
                    if 0 < len(value) <= 8 and all(type(item) is str for item in value):
                        entry.keep(value, found, self.calls)
                append(found)

    def _other_field(self, key: Any, value: Any) -> bytes | None:
        try:
            key_field = self.key(key).key_field if type(key) is str else _field(_KEY, _utf8(key))
            return _field(self.tag, key_field + _field(_VALUE, _any_value(value, self.room)))
        except Exception as error:  # noqa: BLE001 - the SDK's encoder drops the attribute on any error
            log_dropped_value(key, value, str(error) or type(error).__name__)
            return None


def _any_value(value: Any, room: int) -> bytes:
    """The body of an ``AnyValue`` with at most ``room`` message levels, with the SDK
    encoder's type order."""
    if room < 1:
        raise ValueError(NESTED_TOO_DEEP)
    if value is None:
        return b""
    if isinstance(value, bool):
        return _BOOL_VALUES[value]
    if isinstance(value, str):
        return _field(_STRING, _utf8(value))
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise ValueError(f"integer out of int64 range: {value}")
        return _INT + _varint(value if value >= 0 else value + 2**64)
    if isinstance(value, float):
        return _DOUBLE + _pack_double(value)
    if isinstance(value, bytes):
        return _field(_BYTES, value)
    items = as_sequence(value)
    if items is not None:
        return _field(_ARRAY, b"".join([_field(_LIST_ITEM, _any_value(item, room - 2)) for item in items]))
    if isinstance(value, Mapping):
        entries = [_field(_LIST_ITEM, _key_value(str(k), v, room - 3)) for k, v in value.items()]
        return _field(_KVLIST, b"".join(entries))
    raise TypeError(f"invalid type {type(value).__name__}")


def _key_value(key: str, value: Any, room: int) -> bytes:
    return (_field(_KEY, _utf8(key)) if key else b"") + _field(_VALUE, _any_value(value, room))


def _attributes_body(tag: bytes, attributes: Mapping[str, Any] | None, room: int) -> bytes:
    """Attribute fields of a rarely encoded message (resource, scope, event, link), uncached."""
    if not attributes:
        return b""
    out: list[bytes] = []
    _AttributeFields(tag, room).put(out, attributes)
    return b"".join(out)


_span_attributes = _AttributeFields(_SPAN_ATTRIBUTE, ROOM["span"])
_event_attributes = _AttributeFields(_EVENT_ATTRIBUTE, ROOM["event"])


# --- spans -------------------------------------------------------------------------------


def _event(event: Any) -> bytes:
    timestamp = clamp_time(event.timestamp or 0)
    parts = [_EVENT_TIME + _pack_fixed64(timestamp)] if timestamp else []
    name = event.name
    if name:
        parts.append(_field(_EVENT_NAME, _utf8(name)))
    attributes = event.attributes
    if attributes:
        _event_attributes.put(parts, attributes._dict if type(attributes) is BoundedAttributes else attributes)
    count = event.dropped_attributes
    if count:
        parts.append(_EVENT_DROPPED + _varint(count))
    return _field(_SPAN_EVENT, b"".join(parts))


def _link(link: Any) -> bytes:
    context = link.context
    parts = [
        _LINK_IDS,
        context.trace_id.to_bytes(16, "big"),
        b"\x12\x08",
        context.span_id.to_bytes(8, "big"),
        _attributes_body(_LINK_ATTRIBUTE, link.attributes, ROOM["link"]),
    ]
    count = link.dropped_attributes
    if count:
        parts.append(_LINK_DROPPED + _varint(count))
    parts.append(b"\x35" + struct.pack("<I", 0x300 if context.is_remote else 0x100))  # Link.flags = 6 (fixed32)
    return _field(_SPAN_LINK, b"".join(parts))


def _status(status: Any) -> bytes:
    if status is None:
        return b""
    description, code = status.description, status.status_code.value
    if not description and not code:
        return _EMPTY_STATUS
    body = _field(_STATUS_MESSAGE, _utf8(description)) if description else b""
    if code:
        body += _STATUS_CODE + _varint(code)
    return _field(_SPAN_STATUS, body)


def _times(start: int | None, end: int | None) -> bytes:
    """Start and end fields; protobuf leaves a zero (or missing) time out."""
    if start and end and 0 < start <= MAX_FIXED64 and 0 < end <= MAX_FIXED64:
        return _pack_times(_START_TAG, start, _END_TAG, end)
    out = b""
    for tag, value in ((_START_TAG, start), (_END_TAG, end)):
        clamped = clamp_time(value) if value else 0
        if clamped:
            out += _BYTE[tag] + _pack_fixed64(clamped)
    return out


# A span name's whole field (few names recur: "message user", "invoke_workflow turn"...).
_NAME_FIELDS: dict[str, bytes] = {}


def _name_field(name: str) -> bytes:
    found = _field(_SPAN_NAME, _utf8(name))
    if len(name) <= _CACHE_MAX_VALUE_CHARS and type(name) is str:
        if len(_NAME_FIELDS) >= _CACHE_MAX_ENTRIES:
            _NAME_FIELDS.clear()
        _NAME_FIELDS[name] = found
    return found


def _span(span: ReadableSpan, out: list[bytes]) -> None:
    """Append the ``ScopeSpans.spans`` field of ``span`` to ``out``."""
    trace_id, span_id, trace_state, parent, name, kind, start, end, attributes, events, links, status = span_fields(span)
    parts = [b"\x0a\x10", trace_id.to_bytes(16, "big"), b"\x12\x08", span_id.to_bytes(8, "big")]
    append = parts.append
    if trace_state:
        append(_field(_SPAN_TRACE_STATE, _utf8(trace_state_text(trace_state))))
    if parent is not None:
        append(_SPAN_PARENT)
        append(parent.span_id.to_bytes(8, "big"))
    if name:
        append(_NAME_FIELDS.get(name) or _name_field(name))
    append(_KIND_BY_VALUE[kind._value_])
    if start and end and 0 < start <= MAX_FIXED64 and 0 < end <= MAX_FIXED64:
        append(_pack_times(_START_TAG, start, _END_TAG, end))
    else:
        append(_times(start, end))
    if attributes:
        if type(attributes) is BoundedAttributes:
            _span_attributes.put(parts, attributes._dict)
            count = attributes.dropped
        else:
            _span_attributes.put(parts, attributes)
            count = 0 if type(attributes) is dict else dropped(attributes)
        if count:
            append(_SPAN_DROPPED_ATTRIBUTES + _varint(count))
    if events:
        for event in events:
            append(_event(event))
        count = dropped(events)
        if count:
            append(_SPAN_DROPPED_EVENTS + _varint(count))
    if links:
        for link in links:
            append(_link(link))
        count = dropped(links)
        if count:
            append(_SPAN_DROPPED_LINKS + _varint(count))
    if status is UNSET_STATUS or (status is not None and status.status_code is StatusCode.UNSET and not status.description):
        append(_EMPTY_STATUS)
    else:
        append(_status(status))
    append(_FLAGS_REMOTE if parent is not None and parent.is_remote else _FLAGS_LOCAL)
    body = b"".join(parts)
    out.append(_SPAN)
    size = len(body)  # a chat span's is 2 bytes as a varint: written here, not by a call
    out.append(_BYTE[size] if size < 0x80 else bytes(((size & 0x7F) | 0x80, size >> 7)) if size < 0x4000 else _varint(size))
    out.append(body)


def _scope(scope: Any) -> bytes:
    if scope is None:
        return _SCOPE + b"\x00"
    parts = []
    if scope.name:
        parts.append(_field(_SCOPE_NAME, _utf8(scope.name)))
    if scope.version:
        parts.append(_field(_SCOPE_VERSION, _utf8(scope.version)))
    parts.append(_attributes_body(_SCOPE_ATTRIBUTE, scope.attributes, ROOM["scope"]))
    return _field(_SCOPE, b"".join(parts))


def encode_request(spans: Sequence[ReadableSpan]) -> bytes:
    """The serialised ``ExportTraceServiceRequest`` holding ``spans``.

    Written as a flat list of parts joined once: nested messages get their length from the
    sizes of their parts, not by joining them first. A batch is ~0.4 MB, and every copy of
    the whole would be one more allocation of that size (fresh pages, faulted in).
    """
    request: list[bytes] = []
    for resource, scopes in group(spans):
        resource_parts = [_field(_RESOURCE, _attributes_body(_RESOURCE_ATTRIBUTE, resource.attributes, ROOM["resource"]))]
        for scope, members in scopes:
            scope_parts = [_scope(scope)]
            for span in members:
                _span(span, scope_parts)
            schema_url = scope.schema_url if scope is not None else None
            if schema_url:
                scope_parts.append(_field(_SCHEMA_URL, _utf8(schema_url)))
            resource_parts.append(_SCOPE_SPANS)
            resource_parts.append(_varint(sum(map(len, scope_parts))))
            resource_parts.extend(scope_parts)
        if resource.schema_url:
            resource_parts.append(_field(_SCHEMA_URL, _utf8(resource.schema_url)))
        request.append(_REQUEST_RESOURCE_SPANS)
        request.append(_varint(sum(map(len, resource_parts))))
        request.extend(resource_parts)
    return b"".join(request)
