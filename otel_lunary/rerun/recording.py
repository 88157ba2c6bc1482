"""The rerun recorded through otel-lunary, as a thread of its own linked to the original.

The rerun is a conversation like any other (the recorded questions, the new model's
answers, the recorded tool results it was given), written with the public tracking
API so replay, filters and backends treat it as one. What ties it to the recording is
on each message span: ``lunary.rerun.original_message_id`` and a span link to the
original message's span (message ids are W3C traceparents, see ``otel_lunary.ids``).

The tracking API has no argument for links, and should not grow one for this: a span
processor adds them, at the start of the message spans ``track_message`` emits while
``original(message_id)`` names what they rerun. That is the SDK's own extension point,
so the spans are otherwise exactly what any application records.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import Span
from opentelemetry.trace import TracerProvider

import otel_lunary as lunary
from otel_lunary._state import SpanStartHook
from otel_lunary.attributes import LUNARY_RERUN_ORIGINAL_MESSAGE_ID, LUNARY_SPAN_TYPE, LunarySpanTypeValues
from otel_lunary.ids import parse_message_id

RERUN_TAG = "rerun"
# Thread metadata keys of a rerun thread: what it reran, and how.
RERUN_OF = "rerun_of"
RERUN_MODEL = "rerun_model"
RERUN_HISTORY = "rerun_history"

_MESSAGE = LunarySpanTypeValues.MESSAGE.value
_original: ContextVar[str | None] = ContextVar("otel_lunary_rerun_original", default=None)


@contextmanager
def original(message_id: str | None) -> Iterator[None]:
    """Message spans started inside stand for the recorded message ``message_id``."""
    token = _original.set(message_id)
    try:
        yield
    finally:
        _original.reset(token)


class OriginalMessageLinks(SpanStartHook):
    """Adds the original message's id and a link to its span to rerun message spans."""

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        message_id = _original.get()
        if message_id is None or (span.attributes or {}).get(LUNARY_SPAN_TYPE) != _MESSAGE:
            return
        span.set_attribute(LUNARY_RERUN_ORIGINAL_MESSAGE_ID, message_id)
        span_context = parse_message_id(message_id)
        if span_context is not None:
            span.add_link(span_context)


_linked: weakref.WeakSet[Any] = weakref.WeakSet()
_linked_lock = threading.Lock()


def install_links(provider: TracerProvider) -> bool:
    """Add the link processor to ``provider`` once; False when it takes no processors (not the SDK's)."""
    add = getattr(provider, "add_span_processor", None)
    if add is None:
        return False
    with _linked_lock:
        if provider not in _linked:
            add(OriginalMessageLinks())
            _linked.add(provider)
    return True


class RerunThread:
    """The thread one conversation's rerun is recorded as."""

    def __init__(self, original_id: str, user_id: str | None, model: str, history: str) -> None:
        metadata = {RERUN_OF: original_id, RERUN_MODEL: model, RERUN_HISTORY: history}
        self._thread = lunary.open_thread(tags=[RERUN_TAG], user_id=user_id, metadata=metadata)
        self.id = self._thread.id

    def track(self, message: Mapping[str, Any], original_id: str | None) -> str | None:
        """Track ``message`` as the rerun of the recorded message ``original_id``; returns its id."""
        with original(original_id):
            return self._thread.track_message(dict(message))


def is_rerun(metadata: Mapping[str, Any]) -> bool:
    """Whether a thread's metadata says it was recorded by a rerun."""
    return RERUN_OF in metadata
