"""The application's span around a tracking call: usually the request a turn is served in.

Two things link a conversation and the application's request spans (``POST /chat`` from
the FastAPI instrumentation, a websocket message handler):

- the current span gets ``gen_ai.conversation.id`` when a thread tracks something under
  it, so a request trace can be found from its conversation (the first conversation
  wins: a span that served two threads keeps the first id);
- where a turn starts: by default a user message is the root of a new trace with a span
  link to the current span, so a long-lived span (a websocket connection) cannot
  swallow every turn; ``turn_parent="current_span"`` (``OTEL_LUNARY_TURN_PARENT``, read by
  ``_settings``) keeps each turn under the current span, for applications where one request is one turn.
"""

from __future__ import annotations

from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, SpanContext

from otel_lunary._settings import TurnParent
from otel_lunary._state import NEW_TRACE
from otel_lunary.attributes import GEN_AI_CONVERSATION_ID
from otel_lunary.dialects import translate


def mark_conversation(span: Span, conversation_id: str, dialects: frozenset[str]) -> None:
    """Put the conversation on the application's current span, unless it has one already."""
    if not span.is_recording():
        return
    attributes = getattr(span, "attributes", None)
    if attributes is not None and GEN_AI_CONVERSATION_ID in attributes:
        return
    extra = {GEN_AI_CONVERSATION_ID: conversation_id}
    if dialects:
        extra.update(translate(dialects, extra))
    span.set_attributes(extra)


def turn_start(mode: TurnParent, ambient: SpanContext) -> tuple[Context | None, list[Link] | None]:
    """(parent context, links) of a user message's span, given the current span's context.

    ``None`` as the context means the current one: the turn nests under the current span.
    """
    if mode == "current_span":
        return None, None
    return NEW_TRACE, [Link(ambient)] if ambient.is_valid else None
