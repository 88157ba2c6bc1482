"""Message ids: the W3C ``traceparent`` of the message span.

Handing the id to another process (a browser, a worker) must be enough to attach
feedback or child spans to the message's trace and span with no shared storage, so the
id *is* the span context, in the one text form every OTel SDK already parses.
"""

from __future__ import annotations

import re

from opentelemetry.trace import SpanContext, TraceFlags

_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


def format_message_id(span_context: SpanContext) -> str:
    # SpanContext is a tuple (trace_id, span_id, is_remote, trace_flags, ...): indexing it
    # skips three property calls; same string as the .trace_id/.span_id/.trace_flags form.
    return "00-%032x-%016x-%02x" % (span_context[0], span_context[1], span_context[3])


def parse_message_id(message_id: object) -> SpanContext | None:
    """The span context a message id stands for, or None for ids we did not generate."""
    if not isinstance(message_id, str):
        return None
    match = _TRACEPARENT.match(message_id.strip().lower())
    if match is None:
        return None
    trace_id, span_id = int(match.group(1), 16), int(match.group(2), 16)
    if trace_id == 0 or span_id == 0:
        return None
    return SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(int(match.group(3), 16) & 0x01))
