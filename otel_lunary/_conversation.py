"""Which conversation the current code runs in, for spans otel-lunary does not create.

``lunary.parent(msg_id)`` and ``parent=`` make a message's span current; any span
started in there (OpenAI, LangChain or HTTP instrumentation) then nests under it by
ordinary OTel context. To also carry ``gen_ai.conversation.id`` on those spans, the
conversation rides in a context variable and a span processor stamps it at span start.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from otel_lunary.attributes import GEN_AI_CONVERSATION_ID
from otel_lunary.dialects import translate

current_conversation: ContextVar[str | None] = ContextVar("otel_lunary_conversation", default=None)
# True inside lunary.parent(...) / parent=: the current span was chosen by the caller.
explicit_parent: ContextVar[bool] = ContextVar("otel_lunary_explicit_parent", default=False)


class ConversationStamper(SpanProcessor):
    """Adds the current conversation id to spans started inside a conversation context."""

    def __init__(self, dialects: frozenset[str] = frozenset()) -> None:
        self.dialects = dialects

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        conversation = current_conversation.get()
        if conversation is None or not span.is_recording():
            return
        attributes: Any = span.attributes or {}
        if GEN_AI_CONVERSATION_ID in attributes:
            return
        extra = {GEN_AI_CONVERSATION_ID: conversation}
        if self.dialects:
            extra.update(translate(self.dialects, extra))
        span.set_attributes(extra)

    def on_end(self, span: ReadableSpan) -> None:
        return None

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
