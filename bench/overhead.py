"""Section 1: cost per call in the calling thread, next to the raw-span floor.

The floor is a plain ``tracer.start_span(...)``/``end()`` of a span with the *same final
attribute values*, prebuilt once (the JSON of the content, the thread's tags, the message
id string...), with the same parent, links and events, through the same TracerProvider,
the same BatchSpanProcessor and the same do-nothing exporter. What the SDK costs above
the floor is what it does to get there: validating the message, building the attribute
dict, redaction/truncation policy, JSON of the content, choosing the parent, the message
id, the bounded index.

    python bench/overhead.py [--quick]
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import common
from workload import ASSISTANT_MESSAGE, EVENT_METADATA, EVENT_NAME, FEEDBACK, THREAD_TAGS, USER_ID, USER_MESSAGE

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanKind, set_span_in_context

import otel_lunary as lunary
from otel_lunary import _turns
from otel_lunary._state import NEW_TRACE
from otel_lunary.attributes import GEN_AI_OUTPUT_MESSAGES, LUNARY_TURN_ENDED_BY, OUTPUT_MIME_TYPE, OUTPUT_VALUE

# What a turn span gets when it ends, left out of the floor's start attributes.
TURN_END_KEYS = frozenset({GEN_AI_OUTPUT_MESSAGES, OUTPUT_VALUE, OUTPUT_MIME_TYPE, LUNARY_TURN_ENDED_BY})


def recorded_shapes() -> dict[str, object]:
    """One real call of each kind, recorded in memory: the floor's prebuilt attributes
    (a user message records two spans: its turn, which the reply ends, and itself)."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "bench"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    lunary.configure(tracer_provider=provider, capture_content=True)
    thread = lunary.open_thread(tags=THREAD_TAGS, user_id=USER_ID)
    user_id = thread.track_message(USER_MESSAGE)
    thread.track_message(ASSISTANT_MESSAGE)
    thread.track_event(EVENT_NAME, metadata=EVENT_METADATA)
    lunary.track_feedback(user_id, FEEDBACK)
    by_name = {span.name: span for span in memory.get_finished_spans()}
    lunary.shutdown()
    provider.shutdown()
    names = {"turn": "invoke_workflow turn", "user": "message user", "assistant": "message assistant", "event": f"event {EVENT_NAME}", "feedback": "feedback"}
    return {kind: by_name[name] for kind, name in names.items()}


class AppSpanProcessor(SpanProcessor):
    """A processor of the application's own class (not the SDK's stock ones): otel-lunary
    then records with the SDK's spans, as the floor does (otel_lunary.export.light_spans)."""


def setup(sdk_spans: bool = False) -> tuple[dict[str, Callable[[], object]], TracerProvider, common.NullExporter]:
    """The calls section 1 times, as ``{name: call}`` (each otel-lunary call beside its
    floor), through one provider with a BatchSpanProcessor and the do-nothing exporter (plus
    an ``AppSpanProcessor`` with ``sdk_spans``); ``bench/instructions.py`` counts the same
    calls' instructions. The floor always starts the SDK's own spans, through the same
    provider: what any instrumentation pays for a span with these attributes."""
    shapes = recorded_shapes()
    provider = TracerProvider(resource=Resource.create({"service.name": "bench"}))
    exporter = common.NullExporter()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    if sdk_spans:
        provider.add_span_processor(AppSpanProcessor())
    lunary.configure(tracer_provider=provider, capture_content=True)
    tracer = provider.get_tracer("otel-lunary-bench-floor")
    thread = lunary.open_thread(tags=THREAD_TAGS, user_id=USER_ID)
    turn_id = thread.track_message(USER_MESSAGE)
    current = _turns.registry.current(thread.id)
    assert current is not None
    in_turn = set_span_in_context(NonRecordingSpan(current.span_context))

    def floor(shape, parent):
        name, attributes = shape.name, dict(shape.attributes)
        events = [(e.name, dict(e.attributes)) for e in shape.events]

        def call() -> None:
            now = time.time_ns()
            span = tracer.start_span(name, context=parent, kind=SpanKind.INTERNAL, attributes=attributes, start_time=now)
            for event_name, event_attributes in events:
                span.add_event(event_name, event_attributes, timestamp=now)
            span.end(end_time=now)

        return call

    def floor_question(turn_shape, message_shape):
        """A user message's floor: end the previous turn span, start the new one, record the
        message under it (what ``track_message(user)`` does when questions follow questions)."""
        turn_attributes = {k: v for k, v in turn_shape.attributes.items() if k not in TURN_END_KEYS}
        turn_name, message_name, message_attributes = turn_shape.name, message_shape.name, dict(message_shape.attributes)
        previous: list = [None]

        def call() -> None:
            now = time.time_ns()
            if previous[0] is not None:
                previous[0].set_attribute(LUNARY_TURN_ENDED_BY, "next_message")
                previous[0].end(end_time=now)
            turn = tracer.start_span(turn_name, context=NEW_TRACE, kind=SpanKind.INTERNAL, attributes=turn_attributes, start_time=now)
            span = tracer.start_span(message_name, context=set_span_in_context(turn), kind=SpanKind.INTERNAL, attributes=message_attributes, start_time=now)
            span.end(end_time=now)
            previous[0] = turn

        return call

    track_message, track_event, track_feedback = thread.track_message, thread.track_event, lunary.track_feedback
    variants = {
        "track_message(user)": lambda: track_message(USER_MESSAGE),
        "floor(user)": floor_question(shapes["turn"], shapes["user"]),
        # the assistant reply goes in the thread's current turn (answered after its first reply)
        "track_message(assistant)": lambda: track_message(ASSISTANT_MESSAGE),
        "floor(assistant)": floor(shapes["assistant"], in_turn),
        "track_event": lambda: track_event(EVENT_NAME, metadata=EVENT_METADATA),
        "floor(event)": floor(shapes["event"], in_turn),
        "track_feedback": lambda: track_feedback(turn_id, FEEDBACK),
        "floor(feedback)": floor(shapes["feedback"], in_turn),
    }
    return variants, provider, exporter


ROWS = (("track_message(user)", "floor(user)"), ("track_message(assistant)", "floor(assistant)"),
        ("track_event", "floor(event)"), ("track_feedback", "floor(feedback)"))


def main() -> None:
    calls, repeats = common.per_call_counts()
    result: dict[str, Any] = {"calls": calls, "repeats": repeats, "rows": {}}
    # First the application's standard pipeline (the SDK's BatchSpanProcessor: otel-lunary
    # records light spans), then the same with a processor of the application's own class
    # (otel-lunary records the SDK's spans, like the floor).
    for suffix, sdk_spans in (("", False), (" [SDK spans]", True)):
        variants, provider, exporter = setup(sdk_spans)

        def between() -> None:
            provider.force_flush()

        measured = common.interleaved(variants, calls, repeats, between)
        for sdk, base in ROWS:
            cpu, cpu_floor = measured[sdk]["cpu_us"], measured[base]["cpu_us"]
            ratios = [a / b for a, b in zip(cpu, cpu_floor)]
            result["rows"][sdk + suffix] = {
                "sdk_cpu_us": common.stats(cpu),
                "floor_cpu_us": common.stats(cpu_floor),
                "sdk_wall_us": common.stats(measured[sdk]["wall_us"]),
                "floor_wall_us": common.stats(measured[base]["wall_us"]),
                "ratio": common.stats(ratios),
            }
        result["exported" + suffix] = exporter.spans
        result["stats" + suffix] = lunary.stats()
        lunary.shutdown()
        provider.shutdown()
    common.emit(result)


if __name__ == "__main__":
    sys.exit(main())
