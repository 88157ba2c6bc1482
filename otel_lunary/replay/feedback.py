"""Feedback from feedback spans: the changes each call made, and their merge.

A feedback span holds the raw object (``lunary.feedback``) and one
``gen_ai.evaluation.result`` event per key. The raw object is exact (a rating stays the
int 5, a thumb stays "up"), so it wins when present; the events are the fallback for
spans written by other emitters. Merging all changes of a message in time order gives
the latest value per key, and a removal (``None``) clears the key, as Lunary does.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from otel_lunary.attributes import (
    EVENT_NAME_GEN_AI_EVALUATION_RESULT,
    GEN_AI_EVALUATION_EXPLANATION,
    GEN_AI_EVALUATION_NAME,
    GEN_AI_EVALUATION_SCORE_LABEL,
    GEN_AI_EVALUATION_SCORE_VALUE,
    LUNARY_FEEDBACK_REMOVED,
)
from otel_lunary.replay.content import load_json
from otel_lunary.replay.model import FeedbackChange
from otel_lunary.replay.records import EventRecord, SpanAttributes


def _event_value(attributes: SpanAttributes) -> Any:
    if GEN_AI_EVALUATION_EXPLANATION in attributes:
        return attributes[GEN_AI_EVALUATION_EXPLANATION]
    if GEN_AI_EVALUATION_SCORE_LABEL in attributes:
        return attributes[GEN_AI_EVALUATION_SCORE_LABEL]
    value = attributes.get(GEN_AI_EVALUATION_SCORE_VALUE)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def changes_of(feedback: Any, events: Iterable[EventRecord], start_ns: int) -> list[FeedbackChange]:
    """The changes one feedback span records, in the order the call gave them: from the
    span's ``lunary.feedback`` value, else from its evaluation events; ``start_ns`` is the
    time of a key no event times."""
    raw = load_json(feedback)
    if isinstance(raw, dict):
        event_times = {
            event.attributes.get(GEN_AI_EVALUATION_NAME): event.time_ns
            for event in events
            if event.name == EVENT_NAME_GEN_AI_EVALUATION_RESULT
        }
        return [
            FeedbackChange(event_times.get(key, start_ns), str(key), value, value is None)
            for key, value in raw.items()
        ]
    changes = []
    for event in events:
        if event.name != EVENT_NAME_GEN_AI_EVALUATION_RESULT:
            continue
        key = event.attributes.get(GEN_AI_EVALUATION_NAME)
        if not isinstance(key, str):
            continue
        removed = bool(event.attributes.get(LUNARY_FEEDBACK_REMOVED))
        value = None if removed else _event_value(event.attributes)
        changes.append(FeedbackChange(event.time_ns, key, value, removed))
    return changes


def merge(changes: Iterable[tuple[int, FeedbackChange]]) -> tuple[dict[str, Any], list[FeedbackChange]]:
    """Latest value per key and the time-ordered history; input pairs are (arrival, change)."""
    history = [change for _, change in sorted(changes, key=lambda pair: (pair[1].time_ns, pair[0]))]
    latest: dict[str, Any] = {}
    for change in history:
        if change.removed:
            latest.pop(change.key, None)
        else:
            latest[change.key] = change.value
    return latest, history
