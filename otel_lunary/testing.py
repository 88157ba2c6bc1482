"""Assert on what your own code records: spans captured in memory, no exporter needed.

    from otel_lunary.testing import capture_spans

    with capture_spans() as spans:
        thread.track_message({"role": "user", "content": "hi"})
    assert spans()[0].attributes["gen_ai.conversation.id"] == thread.id
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_lunary._state import configure, shutdown


@contextmanager
def capture_spans(**settings: Any) -> Iterator[Callable[[], tuple[ReadableSpan, ...]]]:
    """Route otel-lunary's spans to memory for the block; ``settings`` go to ``configure``."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    configure(tracer_provider=provider, **settings)
    try:
        yield exporter.get_finished_spans
    finally:
        shutdown()
