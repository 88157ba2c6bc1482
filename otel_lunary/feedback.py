"""User feedback on a message, which has ended by then: a new span in its trace.

Each call emits an instant ``feedback`` span, child of the message span, with one
``gen_ai.evaluation.result`` event per key, so the history is kept and a reader can
compute the latest feedback per message and key (a None value records a removal).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from otel_lunary import _health, _index, _runtime
from otel_lunary._content import ContentPolicy
from otel_lunary._conversation import current_conversation
from otel_lunary._guard import never_raises
from otel_lunary._serialize import to_json
from otel_lunary._spans import NEW_TRACE, context_of, emit_instant
from otel_lunary.attributes import (
    EVENT_NAME_GEN_AI_EVALUATION_RESULT,
    GEN_AI_CONVERSATION_ID,
    GEN_AI_EVALUATION_EXPLANATION,
    GEN_AI_EVALUATION_NAME,
    GEN_AI_EVALUATION_SCORE_LABEL,
    GEN_AI_EVALUATION_SCORE_VALUE,
    LUNARY_FEEDBACK,
    LUNARY_FEEDBACK_MESSAGE_ID,
    LUNARY_FEEDBACK_REMOVED,
    LUNARY_SPAN_TYPE,
    SPAN_NAME_LUNARY_FEEDBACK,
    LunarySpanTypeValues,
)

# Keys whose values are the user's words: captured and redacted like message content.
CONTENT_KEYS = frozenset({"comment"})
NOT_CAPTURED = "[content not captured]"
THUMB_SCORES = {"up": 1.0, "down": -1.0}


def evaluation_attributes(key: str, value: Any, policy: ContentPolicy) -> dict[str, Any]:
    """The ``gen_ai.evaluation.result`` attributes for one feedback key."""
    attributes: dict[str, Any] = {GEN_AI_EVALUATION_NAME: key}
    if value is None:
        attributes[LUNARY_FEEDBACK_REMOVED] = True
    elif key in CONTENT_KEYS:
        if policy.capture:
            attributes[GEN_AI_EVALUATION_EXPLANATION] = policy.text(value)
    elif key == "thumb" and value in THUMB_SCORES:
        attributes[GEN_AI_EVALUATION_SCORE_LABEL] = value
        attributes[GEN_AI_EVALUATION_SCORE_VALUE] = THUMB_SCORES[value]
    elif isinstance(value, bool):
        attributes[GEN_AI_EVALUATION_SCORE_VALUE] = 1.0 if value else 0.0
    elif isinstance(value, (int, float)):
        attributes[GEN_AI_EVALUATION_SCORE_VALUE] = float(value)
    elif isinstance(value, str):
        attributes[GEN_AI_EVALUATION_SCORE_LABEL] = policy.bound(value)
    else:
        attributes[GEN_AI_EVALUATION_SCORE_LABEL] = policy.bound(to_json(value))
    return attributes


def feedback_record(feedback: Mapping[Any, Any], policy: ContentPolicy) -> tuple[str, list[tuple[str, dict[str, Any]]]]:
    """The raw feedback as JSON (content keys redacted or withheld) and its events."""
    raw: dict[str, Any] = {}
    events = []
    for key, value in feedback.items():
        name = key if isinstance(key, str) else str(key)
        attributes = evaluation_attributes(name, value, policy)
        if name in CONTENT_KEYS and value is not None:
            raw[name] = attributes.get(GEN_AI_EVALUATION_EXPLANATION, NOT_CAPTURED)
        else:
            raw[name] = value
        events.append((EVENT_NAME_GEN_AI_EVALUATION_RESULT, attributes))
    return to_json(raw), events


def feedback_attributes(message_id: str, raw: str, conversation: str | None) -> dict[str, Any]:
    """The attributes of a feedback span (conventions: span.lunary.feedback)."""
    attributes: dict[str, Any] = {
        LUNARY_SPAN_TYPE: LunarySpanTypeValues.FEEDBACK.value,
        LUNARY_FEEDBACK_MESSAGE_ID: message_id,
        LUNARY_FEEDBACK: raw,
    }
    if conversation is not None:
        attributes[GEN_AI_CONVERSATION_ID] = conversation
    return attributes


@never_raises()
def track_feedback(run_id: str | None, feedback: Mapping[str, Any]) -> None:
    """Record feedback (``{"thumb": "up"}``; ``{"thumb": None}`` removes it) on a message."""
    if not isinstance(run_id, str) or not run_id:
        _health.report("invalid_arguments", "otel_lunary: track_feedback needs the message id string, got %s", type(run_id).__name__)
        return
    if not isinstance(feedback, Mapping):
        _health.report("invalid_arguments", "otel_lunary: track_feedback needs a dict of feedback, got %s", type(feedback).__name__)
        return
    runtime = _runtime.get()
    target = _index.resolve(run_id)
    policy = runtime.policy.fresh()
    raw, events = feedback_record(feedback, policy)
    conversation = (target.conversation_id if target else None) or current_conversation.get()
    attributes = feedback_attributes(run_id, raw, conversation)
    if target is None:
        _health.count("feedback_unlinked")
    parent = NEW_TRACE if target is None else context_of(target.span_context)
    emit_instant(runtime, SPAN_NAME_LUNARY_FEEDBACK, attributes, parent, events=events)
