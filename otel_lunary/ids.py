"""Message ids: the W3C ``traceparent`` of the message span.

Handing the id to another process (a browser, a worker) must be enough to attach
feedback or child spans to the message's trace and span with no shared storage, so the
id *is* the span context, in the one text form every OTel SDK already parses.

Sometimes the id must exist before the span: a system message held for the thread's
first turn (recorded when the turn opens), a bridge run recorded at its ``end``. Those
spans get ids drawn in advance, through ``ForcedIdGenerator``.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.trace import SpanContext, TraceFlags

_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


_FLAGS = tuple("-%02x" % flags for flags in range(256))
# The last trace id formatted and its "00-<trace id>-": the messages, events and feedback of
# a turn share their trace, so most ids only need their span id written. One tuple,
# replaced whole: a thread reading it sees a matching pair.
_last_trace: tuple[int, str] = (0, "00-%032x-" % 0)


def format_message_id(span_context: SpanContext) -> str:
    """``"00-%032x-%016x-%02x" % (trace_id, span_id, trace_flags)``: a message's id, the
    traceparent of its span. Every message and feedback makes one, and ``%x`` of a 128-bit
    int costs more than the rest of the string: the trace id's part is reused from the
    previous id of the same trace, and the span id is written through ``bytes.hex``."""
    # SpanContext is a tuple (trace_id, span_id, is_remote, trace_flags, ...): indexing it
    # skips three property calls.
    global _last_trace
    trace_id, span_id, flags = span_context[0], span_context[1], span_context[3]
    last_trace, head = _last_trace
    try:
        if trace_id != last_trace:
            head = "00-%032x-" % trace_id
            if len(head) == 36:
                _last_trace = (trace_id, head)
        return head + span_id.to_bytes(8, "big").hex() + _FLAGS[flags]
    except (OverflowError, IndexError, TypeError, AttributeError):  # not the SDK's ints: written in full
        return "00-%032x-%016x-%02x" % (trace_id, span_id, flags)


def message_trace_hex(message_id: str) -> str | None:
    """The trace id (32 lowercase hex digits) of a message id ``parse_message_id`` accepts,
    else None: its trace without making a ``SpanContext`` (replay checks every message)."""
    match = _TRACEPARENT.match(message_id.strip().lower())
    if match is None:
        return None
    trace, span = match.group(1, 2)
    if trace == _ZERO_TRACE or span == _ZERO_SPAN:
        return None
    return trace


_ZERO_TRACE, _ZERO_SPAN = "0" * 32, "0" * 16


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


class _ForcedIds(threading.local):
    """The ids ``forced`` set on this thread. None by default on every thread, as class
    attributes: reading an attribute a thread never set through ``getattr(local, name,
    None)`` raises and catches AttributeError inside, ~0.25 us on every span started."""

    trace_id: int | None = None
    span_id: int | None = None


class ForcedIdGenerator(IdGenerator):
    """The SDK's random ids, except inside ``forced(...)`` on the same thread."""

    def __init__(self, inner: IdGenerator | None = None) -> None:
        self._inner = inner or RandomIdGenerator()
        self._local = _ForcedIds()

    def generate_span_id(self) -> int:
        forced = self._local.span_id
        if forced is not None:
            self._local.span_id = None
            return int(forced)
        return self._inner.generate_span_id()

    def generate_trace_id(self) -> int:
        forced = self._local.trace_id
        if forced is not None:
            self._local.trace_id = None
            return int(forced)
        return self._inner.generate_trace_id()

    @contextmanager
    def forced(self, trace_id: int, span_id: int) -> Iterator[None]:
        """The next span started on this thread gets these ids (the trace id if it is a root)."""
        self._local.trace_id, self._local.span_id = trace_id, span_id
        try:
            yield
        finally:
            self._local.trace_id = self._local.span_id = None
