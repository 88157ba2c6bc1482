"""Real spans for the export and replay sections: recorded with the SDK, kept in memory."""

from __future__ import annotations

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from workload import ASSISTANT_MESSAGE, EVENT_METADATA, EVENT_NAME, FEEDBACK, THREAD_TAGS, USER_ID, USER_MESSAGE

import otel_lunary as lunary


def numbered(message: dict[str, str], turn: int) -> dict[str, str]:
    """``message`` with the turn number in its text, so no two messages are the same."""
    return {**message, "content": f"{message['content']} (turn {turn})"}


def record_turns(turns: int, threads: int = 8, *, distinct_content: bool = False) -> list[ReadableSpan]:
    """``turns`` turns spread over ``threads`` threads: user message, event, assistant
    reply, feedback on the reply (4 spans a turn), as the SDK records them.

    ``distinct_content`` numbers every message's text, as real conversations never repeat
    a message: an encoder that caches recurring values must not gain from the workload.
    """
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "bench"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    lunary.configure(tracer_provider=provider, capture_content=True)
    opened = [lunary.open_thread(tags=THREAD_TAGS, user_id=f"{USER_ID}-{i}") for i in range(threads)]
    for turn in range(turns):
        thread = opened[turn % threads]
        thread.track_message(numbered(USER_MESSAGE, turn) if distinct_content else USER_MESSAGE)
        thread.track_event(EVENT_NAME, metadata=EVENT_METADATA)
        reply = thread.track_message(numbered(ASSISTANT_MESSAGE, turn) if distinct_content else ASSISTANT_MESSAGE)
        lunary.track_feedback(reply, FEEDBACK)
    spans = list(memory.get_finished_spans())
    lunary.shutdown()
    provider.shutdown()
    return spans


def record_demo_threads(threads: int) -> list[ReadableSpan]:
    """``threads`` runs of the ``otel-lunary demo`` conversation, as the SDK records them:
    the real ``openai`` client wrapped by ``monitor()`` against the offline fake model, so
    the LLM call spans carry their whole message history (``gen_ai.input.messages``), a
    tool call and its result, custom events and feedback given, removed and given again.
    A realistic replay workload: about 1.2 KB a span where ``record_turns`` has 0.8 KB.
    """
    import openai

    from otel_lunary._fake_llm import FakeLLM
    from otel_lunary.demo import _script

    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "otel-lunary-demo"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    lunary.configure(tracer_provider=provider, capture_content=True)
    try:
        with FakeLLM() as llm:
            client = lunary.monitor(openai.OpenAI(base_url=llm.base_url, api_key="bench-key-not-used", max_retries=0))
            for _ in range(threads):
                _script(client)
        lunary.flush()
    finally:
        lunary.shutdown()
        provider.shutdown()
    return list(memory.get_finished_spans())
