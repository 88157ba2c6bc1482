"""The spans otel-lunary records before the application's provider exists are not lost to it."""

from __future__ import annotations

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_lunary._adoption import HoldingProcessor
from helpers.servers import poll_until


def own_provider(hold_s: float = 60.0, max_held: int = 100) -> tuple[TracerProvider, HoldingProcessor, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "otel-lunary-own"}))
    holding = HoldingProcessor([SimpleSpanProcessor(exporter)], hold_s=hold_s, max_held=max_held)
    provider.add_span_processor(holding)
    return provider, holding, exporter


def app_provider() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "chat-app"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def end_spans(provider: TracerProvider, *names: str) -> None:
    tracer = provider.get_tracer("otel_lunary")
    for name in names:
        tracer.start_span(name).end()


class TestHoldingProcessor:
    def test_held_spans_go_to_the_application_under_its_resource(self):
        own, holding, own_exporter = own_provider()
        end_spans(own, "message system", "event started")
        app, app_exporter = app_provider()
        assert holding.hand_over(app) == 2
        spans = app_exporter.get_finished_spans()
        assert [span.name for span in spans] == ["message system", "event started"]
        assert {span.resource.attributes["service.name"] for span in spans} == {"chat-app"}
        assert own_exporter.get_finished_spans() == ()

    def test_a_span_ending_after_the_hand_over_follows(self):
        """Started under otel-lunary's provider, ended after the move: the application's too."""
        own, holding, own_exporter = own_provider()
        span = own.get_tracer("otel_lunary").start_span("chat gpt-4o-mini")
        app, app_exporter = app_provider()
        holding.hand_over(app)
        span.end()
        assert [s.name for s in app_exporter.get_finished_spans()] == ["chat gpt-4o-mini"]
        assert own_exporter.get_finished_spans() == ()

    def test_without_an_application_the_hold_ends_on_its_own(self):
        own, holding, own_exporter = own_provider(hold_s=0.2)
        end_spans(own, "message user")
        assert own_exporter.get_finished_spans() == ()
        poll_until(own_exporter.get_finished_spans, timeout=10, what="the hold to end")
        end_spans(own, "message assistant")  # no longer held
        assert [s.name for s in own_exporter.get_finished_spans()] == ["message user", "message assistant"]

    def test_flush_and_shutdown_release_what_is_held(self):
        own, _, own_exporter = own_provider()
        end_spans(own, "message user")
        assert own.force_flush()
        assert [s.name for s in own_exporter.get_finished_spans()] == ["message user"]

    def test_beyond_max_held_spans_go_out_unheld(self):
        own, holding, own_exporter = own_provider(max_held=2)
        end_spans(own, "a", "b", "c")
        assert [s.name for s in own_exporter.get_finished_spans()] == ["c"]
        app, app_exporter = app_provider()
        assert holding.hand_over(app) == 2
        assert [s.name for s in app_exporter.get_finished_spans()] == ["a", "b"]
