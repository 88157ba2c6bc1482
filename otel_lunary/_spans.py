"""Instant spans: messages, events and feedback are points in time, not operations."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from opentelemetry.context import Context
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, set_span_in_context

from otel_lunary._runtime import Runtime
from otel_lunary.attributes import LUNARY_MESSAGE_ID
from otel_lunary.dialects import translate
from otel_lunary.ids import format_message_id

# A context with no span in it: starting a span here makes a new trace root.
NEW_TRACE = Context()
_INTERNAL = SpanKind.INTERNAL
time_ns = time.time_ns


def context_of(span_context: SpanContext) -> Context:
    """A context whose current span is ``span_context``: children started in it nest under it."""
    return set_span_in_context(NonRecordingSpan(span_context))


def with_dialects(runtime: Runtime, attributes: dict[str, Any]) -> dict[str, Any]:
    if runtime.settings.dialects:
        attributes.update(translate(runtime.settings.dialects, attributes))
    return attributes


def emit_instant(
    runtime: Runtime,
    name: str,
    attributes: dict[str, Any],
    parent: Context | None,
    *,
    links: Sequence[Link] = (),
    events: Sequence[tuple[str, dict[str, Any]]] = (),
    timestamp_ns: int | None = None,
) -> SpanContext:
    """Start and end one span at the same instant; ``parent`` None means the current context.

    ``timestamp_ns`` defaults to now; the bridge passes the time the client recorded.
    """
    now = time_ns() if timestamp_ns is None else timestamp_ns
    span = runtime.tracer.start_span(
        name,
        context=parent,
        kind=_INTERNAL,
        attributes=with_dialects(runtime, attributes),
        links=links or None,
        start_time=now,
    )
    for event_name, event_attributes in events:
        span.add_event(event_name, event_attributes, timestamp=now)
    span.end(end_time=now)
    return span.get_span_context()


def emit_stamped(runtime: Runtime, name: str, attributes: dict[str, Any], parent: Context | None, links: Sequence[Link] | None) -> tuple[SpanContext, str | None]:
    """``emit_instant`` for a message span with no events, as ``track_message`` needs it: without
    a ``lunary.message.id`` given, the span's own traceparent becomes it (known only once the
    span has started) and is returned too (None when the id was given). Written out rather
    than layered on ``emit_instant`` because it is the hot path (docs/performance.md)."""
    now = time_ns()
    dialects = runtime.settings.dialects
    if dialects:
        attributes.update(translate(dialects, attributes))
    span = runtime.tracer.start_span(name, context=parent, kind=_INTERNAL, attributes=attributes, links=links or None, start_time=now)
    span_context = span.get_span_context()
    stamped = None
    if LUNARY_MESSAGE_ID not in attributes:
        stamped = format_message_id(span_context)
        span.set_attribute(LUNARY_MESSAGE_ID, stamped)
    span.end(end_time=now)
    return span_context, stamped


def span_name(template: str, values: dict[str, str]) -> str:
    """Fill a span-name template from the conventions (placeholders are attribute ids)."""
    for key, value in values.items():
        template = template.replace("{" + key + "}", value)
    return template
