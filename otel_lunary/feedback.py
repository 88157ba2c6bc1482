"""User feedback on a message, which has ended by then: a new span in its trace.

Each call emits an instant ``feedback`` span, child of the message span, with one
``gen_ai.evaluation.result`` event per key, so the history is kept and a reader can
compute the latest feedback per message and key (a None value records a removal).
With ``configure(phoenix_annotations=...)`` the same values are mirrored as Phoenix
annotations on the message's turn and span (``otel_lunary.phoenix_feedback``), when the
message's span is known (its id is a traceparent, or it was tracked in this process).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from otel_lunary import _health, _record, _state
from otel_lunary._health import never_raises


@never_raises("track_feedback failed and was skipped")
def track_feedback(run_id: str | None, feedback: Mapping[str, Any]) -> None:
    """Record feedback (``{"thumb": "up"}``; ``{"thumb": None}`` removes it) on a message."""
    if not isinstance(run_id, str) or not run_id:
        _health.report("invalid_arguments", "otel_lunary: track_feedback needs the message id string, got %s", type(run_id).__name__)
        return
    if type(feedback) is not dict and not isinstance(feedback, Mapping):
        _health.report("invalid_arguments", "otel_lunary: track_feedback needs a dict of feedback, got %s", type(feedback).__name__)
        return
    runtime = _state.current or _state.get()
    target = _state.resolve(run_id)
    if target is None:
        _health.count("feedback_unlinked")
        parent = _state.NEW_TRACE
    else:
        parent = _state.context_of(target.span_context)
    conversation = (target.conversation_id if target else None) or _state.current_conversation.get()
    _, evaluations = _record.feedback(runtime, run_id, feedback, conversation, parent)
    sink = runtime.annotations
    if sink is not None and target is not None:
        from otel_lunary.phoenix_feedback import feedback_annotations

        sink.submit(
            feedback_annotations(
                target.span_context.trace_id, target.span_context.span_id, evaluations, message_id=run_id, conversation_id=conversation
            )
        )
