"""Span ids the bridge chooses: a run's span id is fixed at its ``start`` event.

A Lunary run arrives as ``start`` then, maybe in a later request or after a restart,
``end``. Its children (an LLM call inside an agent) arrive in between and must name it
as their parent, so the run's span id exists before the span does. The SDK's own id
generator draws it at ``start``; the id and the start data go to the state store; the
span is created at ``end`` with exactly those ids, through this generator, which hands
out a forced id once and otherwise delegates to the SDK's random generator.
"""

from __future__ import annotations

import hashlib
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator


class ForcedIdGenerator(IdGenerator):
    """The SDK's random ids, except inside ``forced(...)`` on the same thread."""

    def __init__(self, inner: IdGenerator | None = None) -> None:
        self._inner = inner or RandomIdGenerator()
        self._local = threading.local()

    def generate_span_id(self) -> int:
        forced = getattr(self._local, "span_id", None)
        if forced is not None:
            self._local.span_id = None
            return int(forced)
        return self._inner.generate_span_id()

    def generate_trace_id(self) -> int:
        forced = getattr(self._local, "trace_id", None)
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


def python_wire_id(raw_id: str, app_id: str) -> str:
    """What the Python SDK puts on the wire for ``raw_id`` (lunary/utils.py create_uuid_from_string)."""
    return str(uuid.UUID(hashlib.sha256((raw_id + app_id).encode("utf-8")).hexdigest()[:32]))
