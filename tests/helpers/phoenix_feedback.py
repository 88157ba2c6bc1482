"""Phoenix feedback helpers: otel-lunary recording into SDK exporters, feedback mirrored to
the Phoenix annotation sink as ``track_feedback`` does with the sink on, message ids as
hex ids, and ``otel-lunary annotate`` in a child process."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter

import otel_lunary as lunary
from otel_lunary import _state
from otel_lunary._record import feedback_record
from otel_lunary.ids import parse_message_id
from otel_lunary.phoenix_feedback import PhoenixAnnotationSink, feedback_annotations

from helpers.servers import PhoenixProcess


@contextmanager
def recording(*exporters: SpanExporter, hold_until_flushed: bool = False) -> Iterator[TracerProvider]:
    """otel-lunary on an SDK provider exporting to ``exporters``; ``hold_until_flushed`` keeps spans until ``force_flush``."""
    provider = TracerProvider()
    for exporter in exporters:
        if hold_until_flushed:
            provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=3_600_000))
        else:
            provider.add_span_processor(SimpleSpanProcessor(exporter))
    lunary.configure(tracer_provider=provider)
    try:
        yield provider
    finally:
        provider.shutdown()


def mirror_feedback(sink: PhoenixAnnotationSink, message_id: str, feedback: Mapping[str, Any]) -> None:
    """``track_feedback`` with the Phoenix sink on: the feedback span, then its annotations."""
    lunary.track_feedback(message_id, feedback)
    target = _state.resolve(message_id)
    assert target is not None
    _, events = feedback_record(feedback, _state.get().policy.fresh())
    context = target.span_context
    sink.submit(feedback_annotations(context.trace_id, context.span_id, [a for _, a in events], message_id=message_id))


def ids(message_id: str) -> tuple[str, str]:
    """(trace id, span id) in hex of a message id (a traceparent)."""
    context = parse_message_id(message_id)
    assert context is not None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


def annotate(phoenix: PhoenixProcess, *args: str) -> subprocess.CompletedProcess[str]:
    """``otel-lunary annotate --phoenix URL ARGS`` in a child process."""
    return subprocess.run(
        [sys.executable, "-m", "otel_lunary", "annotate", "--phoenix", phoenix.url, "--wait", "30", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
