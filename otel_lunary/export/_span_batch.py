"""What the OTLP protobuf and JSON encoders share: the batch nested as OTLP nests it, and
the few values OTLP cannot carry as given.

Both encoders (``otlp_proto``, ``otlp_json``) produce exactly what the OTel SDK's own
encoder (``opentelemetry.exporter.otlp.proto.common.trace_encoder.encode_spans``)
produces for the same spans (tests/test_otlp_encoding.py holds them to it), except where
the SDK's encoder fails a whole batch or drops data because of one value:

- a string that is not valid Unicode (a lone surrogate such as ``"\\ud800"``, from
  ``surrogateescape``-decoded bytes or a JSON ``"\\ud800"`` escape) cannot be UTF-8 encoded;
  the SDK's encoder drops the attribute (and fails the whole batch when it is a span or
  event name). Here each lone surrogate becomes U+FFFD and a surrogate pair the character
  it stands for, everywhere (names, keys, values, status messages);
- a timestamp outside OTLP's ``fixed64`` range (negative, or past 2**64 ns) fails the
  whole batch in the SDK's encoder; here it is clamped into the range.

Everything else the SDK's encoder drops, this drops too, and says so on the
``otel_lunary.export`` logger: an integer attribute outside int64 (OTLP ``intValue``), a
value of an unsupported type, a value nested deeper than protobuf decoders accept
(``MAX_DEPTH``; the SDK's encoder writes the first few levels past it, or fails the batch).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Iterable, Sequence
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext, SpanKind

_logger = logging.getLogger("otel_lunary.export")

MAX_FIXED64 = 2**64 - 1

# Protobuf decoders refuse messages nested deeper than 100 levels (the default of upb,
# the Python and C++ runtimes), counted from the ExportTraceServiceRequest. An attribute
# value nested deeper than what is left at its place is dropped, so every request parses:
# the SDK's encoder drops the deepest ones too, but writes requests that no decoder takes
# or fails the whole batch for the few levels just under its own limit.
MAX_DEPTH = 100
# Message levels above an attribute's AnyValue: request, resource spans, (scope spans,)
# resource/scope/span, (event/link,) key-value.
ROOM = {"resource": MAX_DEPTH - 4, "scope": MAX_DEPTH - 5, "span": MAX_DEPTH - 5, "event": MAX_DEPTH - 6, "link": MAX_DEPTH - 6}
NESTED_TOO_DEEP = f"nested deeper than OTLP decoders accept ({MAX_DEPTH} message levels)"
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

# ReadableSpan's properties return these private fields unchanged (``attributes`` wraps
# them in a read-only proxy, ``events``/``links`` copy them to a tuple): the encoders read
# the fields directly for the classes that keep those properties, which saves a Python
# call per field per span, and fall back to the properties for any class that overrides one.
# The status every span starts with (ReadableSpan's default, shared by the SDK's spans and
# otel-lunary's light ones): an encoder that finds it needs no property call to know it is unset.
UNSET_STATUS: Any = inspect.signature(ReadableSpan.__init__).parameters["status"].default
# The OTLP enum value of a span kind by the SDK's value (an Enum's hash is a Python call).
KIND_VALUES = {kind.value: kind for kind in SpanKind}

_FIELD_PROPERTIES = ("name", "context", "kind", "parent", "start_time", "end_time", "attributes", "events", "links", "status")
_plain_classes: dict[type, bool] = {}
# Span classes that keep their ids as the fields ``_trace_id``, ``_span_id``, ``_trace_state``
# (otel_lunary.export.light_spans.LightSpan, once ended): read without making a SpanContext.
ID_FIELD_CLASSES: set[type] = set()


def reads_fields_directly(cls: type) -> bool:
    """Whether spans of ``cls`` can be read through ReadableSpan's private fields."""
    known = _plain_classes.get(cls)
    if known is None:
        known = issubclass(cls, ReadableSpan) and all(
            getattr(cls, name, None) is getattr(ReadableSpan, name) for name in _FIELD_PROPERTIES
        )
        _plain_classes[cls] = known
    return known


def span_fields(span: ReadableSpan) -> tuple[Any, ...]:
    """What both encoders write of ``span``, read once: ``(trace_id, span_id, trace_state,
    parent, name, kind, start, end, attributes, events, links, status)``.

    Through the private fields where ``reads_fields_directly`` allows it (one Python call
    per span instead of one per field), and unpacks a plain SpanContext as the tuple it is.
    """
    context: Any
    if type(span) in ID_FIELD_CLASSES:
        s: Any = span
        return (
            s._trace_id, s._span_id, s._trace_state, s._parent, s._name, s._kind, s._start_time, s._end_time,
            s._attributes, s._events, s._links, s._status,
        )
    if reads_fields_directly(type(span)):
        context = span._context
        parent, name, kind, start, end = span._parent, span._name, span._kind, span._start_time, span._end_time
        attributes, events, links, status = span._attributes, span._events, span._links, span._status
    else:
        context = span.context
        parent, name, kind, start, end = span.parent, span.name, span.kind, span.start_time, span.end_time
        attributes, events, links, status = span.attributes, span.events, span.links, span.status
    if type(context) is SpanContext:  # a tuple: (trace_id, span_id, is_remote, flags, trace_state, valid)
        trace_id, span_id, _, _, trace_state, _ = context
    else:
        trace_id, span_id, trace_state = context.trace_id, context.span_id, context.trace_state
    return trace_id, span_id, trace_state, parent, name, kind, start, end, attributes, events, links, status


def clean_text(text: str) -> str:
    """``text`` with surrogate pairs joined and lone surrogates replaced by U+FFFD."""
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def clamp_time(ns: int) -> int:
    """A timestamp in OTLP's unsigned 64-bit nanoseconds."""
    return 0 if ns < 0 else MAX_FIXED64 if ns > MAX_FIXED64 else ns


def group(spans: Iterable[ReadableSpan]) -> list[tuple[Resource, list[tuple[Any, list[ReadableSpan]]]]]:
    """Spans by resource, then by instrumentation scope, in order of first appearance.

    Groups by equality, as the SDK's encoder does (its dict keys), but looks objects up by
    identity first: ``Resource.__hash__`` serialises every attribute to JSON on each call.
    """
    resources: list[tuple[Resource, list[tuple[Any, list[ReadableSpan]]]]] = []
    scopes_by_id: dict[tuple[int, int], list[ReadableSpan]] = {}
    last_key: tuple[int, int] | None = None
    last: list[ReadableSpan] = []
    for span in spans:
        resource = span.resource
        scope = span.instrumentation_scope or None
        key = (id(resource), id(scope))
        if key == last_key:
            last.append(span)
            continue
        found = scopes_by_id.get(key)
        if found is None:
            found = _find_or_add(resources, resource, scope)
            scopes_by_id[key] = found
        found.append(span)
        last_key, last = key, found
    return resources


def _find_or_add(
    resources: list[tuple[Resource, list[tuple[Any, list[ReadableSpan]]]]], resource: Resource, scope: Any
) -> list[ReadableSpan]:
    for known_resource, scopes in resources:
        if known_resource is resource or known_resource == resource:
            for known_scope, spans in scopes:
                if known_scope is scope or (known_scope is not None and scope is not None and known_scope == scope):
                    return spans
            added: list[ReadableSpan] = []
            scopes.append((scope, added))
            return added
    added = []
    resources.append((resource, [(scope, added)]))
    return added


def trace_state_text(trace_state: Any) -> str:
    """The W3C ``tracestate`` header value of a span context's TraceState ('' when empty)."""
    return ",".join(f"{key}={value}" for key, value in trace_state.items()) if trace_state else ""


def dropped(collection: Any) -> int:
    """The ``dropped`` count of the SDK's bounded attribute maps and lists (0 for plain ones)."""
    return getattr(collection, "dropped", 0) or 0


def log_dropped_value(key: Any, value: Any, why: str) -> None:
    """One line for an attribute OTLP cannot carry (the SDK's encoder drops it too)."""
    _logger.warning("otel-lunary: attribute %r not exported: %s (%s)", key, why, type(value).__name__)


def as_sequence(value: Any) -> Sequence[Any] | None:
    """``value`` as the SDK's encoder sees a sequence (str and bytes are not), else None."""
    if isinstance(value, (str, bytes)):
        return None
    return value if isinstance(value, Sequence) else None
