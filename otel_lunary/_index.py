"""What this process remembers about recent messages and turns, bounded.

Two lookups need memory: a caller-supplied message id (``message["id"]``) does not
encode its span, and a thread's current turn (the last user message) decides where an
assistant reply goes. Both are LRU-bounded so a long-running server does not grow.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Generic, NamedTuple, TypeVar

from opentelemetry.trace import SpanContext

from otel_lunary.ids import parse_message_id

K = TypeVar("K")
V = TypeVar("V")

MAX_MESSAGES = 50_000
MAX_CONVERSATIONS = 10_000


class MessageRef(NamedTuple):
    span_context: SpanContext
    conversation_id: str | None


class BoundedLRU(Generic[K, V]):
    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, key: K, value: V) -> None:
        items = self._items
        with self._lock:
            if key in items:
                items.move_to_end(key)
            items[key] = value  # a new key goes to the end by itself
            if len(items) > self._capacity:
                items.popitem(last=False)

    def get(self, key: K) -> V | None:
        # One dict lookup is atomic under the GIL; the lock only orders the writers.
        return self._items.get(key)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


messages: BoundedLRU[str, MessageRef] = BoundedLRU(MAX_MESSAGES)
turns: BoundedLRU[str, SpanContext] = BoundedLRU(MAX_CONVERSATIONS)


def resolve(message_id: object) -> MessageRef | None:
    """The span (and conversation, when known here) a message id points to."""
    if not isinstance(message_id, str):
        return None
    known = messages.get(message_id)
    if known is not None:
        return known
    span_context = parse_message_id(message_id)
    return None if span_context is None else MessageRef(span_context, None)
