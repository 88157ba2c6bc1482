"""Light spans (otel_lunary.export.light_spans) export exactly what the SDK's spans export.

The same scripted conversation (every message role, tool calls, events, feedback, a
remote parent, a monitor()ed LLM call on the fake model, an agent whose span is changed
through the span API, a failing tool) is recorded by two fresh interpreters with the same
clock, ids and uuids: one with otel-lunary's own pipeline (light spans), one with a
do-nothing processor added to the provider (the SDK's spans). The decoded OTLP, to the
file and over HTTP, must be equal span for span: resource, scope, ids, parent, kind,
times, attributes, events, links, status, flags.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.json_format import MessageToDict
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import otel_lunary as lunary
from otel_lunary import _state
from otel_lunary._fake_llm import FakeLLM
from otel_lunary._settings import resolve_settings
from otel_lunary.export import ExportOptions, build_provisional_provider, build_tracer_provider, shutdown
from otel_lunary.export.light_spans import LightSpan, LightTracer
from tests.helpers.servers import OtlpSink, free_port

ROOT = Path(__file__).resolve().parents[1]


def run_script(mode: str, exporter: str, target: str, llm: FakeLLM) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "LUNARY_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-m", "tests.helpers.light_spans_script", mode, exporter, target, llm.base_url],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def flat(requests: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """Every span with its resource and scope, in span id order (batches may split differently)."""
    spans = []
    for request in requests:
        for resource_spans in request["resourceSpans"]:
            for scope_spans in resource_spans["scopeSpans"]:
                for span in scope_spans["spans"]:
                    spans.append((span["spanId"], json.dumps(resource_spans["resource"], sort_keys=True), scope_spans["scope"], span))
    return sorted(spans, key=lambda item: item[0])


def recorded(exporter: str, tmp_path: Path) -> dict[str, list[tuple[Any, ...]]]:
    out = {}
    port = free_port()
    for mode in ("light", "sdk"):
        with FakeLLM(port=port) as llm:  # a fresh one on the same port: its response ids count from 1
            out[mode] = record_once(mode, exporter, tmp_path, llm)
    return out


def record_once(mode: str, exporter: str, tmp_path: Path, llm: FakeLLM) -> list[tuple[Any, ...]]:
    if exporter == "file":
        path = tmp_path / f"{mode}.jsonl"
        printed = run_script(mode, "file", str(path), llm)
        spans = flat([json.loads(line) for line in path.read_text().splitlines()])
    else:
        sink = OtlpSink().start()
        try:
            printed = run_script(mode, "otlp", sink.endpoint, llm)
            requests = []
            for body in sink.bodies:
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                requests.append(MessageToDict(request, use_integers_for_enums=True))
            spans = flat(requests)
        finally:
            sink.stop()
    assert f"lightweight={mode == 'light'}" in printed, printed
    return spans


@pytest.mark.parametrize("exporter", ["file", "otlp"])
def test_light_spans_export_what_sdk_spans_export(exporter: str, tmp_path: Path) -> None:
    runs = recorded(exporter, tmp_path)
    light, sdk = runs["light"], runs["sdk"]
    assert len(light) >= 15
    names = {span["name"] for _, _, _, span in light}
    assert {"invoke_workflow turn", "message user", "message assistant", "message tool", "feedback", "invoke_agent planner (renamed)"} <= names
    assert any(span.get("status", {}).get("code") == 2 for _, _, _, span in light)  # the failing tool
    assert any(span.get("links") for _, _, _, span in light) and any(span.get("events") for _, _, _, span in light)
    assert any(span.get("flags") == 0x300 for _, _, _, span in light)  # the remote parent
    for light_span, sdk_span in zip(light, sdk):
        assert light_span == sdk_span
    assert len(light) == len(sdk)


def test_spans_of_other_providers_nest_under_a_light_span(tmp_path: Path) -> None:
    """An instrumentation on the application's provider (here: any SDK provider) starts its
    spans under the agent's light span, by span context; the span API works on it."""
    lunary.configure(exporter="file", file_path=str(tmp_path / "t.jsonl"))
    try:
        assert isinstance(_state.get().tracer, LightTracer)
        memory = InMemorySpanExporter()
        app = TracerProvider()
        app.add_span_processor(SimpleSpanProcessor(memory))
        seen: list[Any] = []

        @lunary.agent("nesting")
        def work() -> None:
            current = trace.get_current_span()
            seen.append(current)
            assert current.is_recording() and isinstance(current, ReadableSpan)
            with app.get_tracer("app").start_as_current_span("http call"):
                pass
            with trace.use_span(current, end_on_exit=False):
                app.get_tracer("app").start_span("inner").end()

        work()
        (agent,) = seen
        assert type(agent) is LightSpan and not agent.is_recording()
        children = memory.get_finished_spans()
        assert [span.name for span in children] == ["http call", "inner"]
        for child in children:
            assert child.parent is not None and child.parent.span_id == agent.get_span_context().span_id
            assert child.context.trace_id == agent.get_span_context().trace_id
    finally:
        lunary.shutdown(timeout=5)


def test_a_processor_added_later_switches_to_sdk_spans(tmp_path: Path) -> None:
    """A processor the application adds to otel-lunary's provider gets the SDK's spans (it
    may rely on them) from then on, and the spans already recorded still reach the file."""
    provider = lunary.configure(exporter="file", file_path=str(tmp_path / "t.jsonl"))
    try:
        thread = lunary.open_thread()
        thread.track_message({"role": "user", "content": "before"})
        memory = InMemorySpanExporter()
        provider.add_span_processor(_ReadsSpansAtStart(memory))  # type: ignore[attr-defined]
        thread.track_message({"role": "assistant", "content": "after"})
        assert not _state.get().tracer.lightweight  # type: ignore[attr-defined]
        assert [span.name for span in memory.get_finished_spans()] == ["message assistant", "invoke_workflow turn"]
        assert all(type(span) is ReadableSpan for span in memory.get_finished_spans())
    finally:
        lunary.shutdown(timeout=5)
    lines = (tmp_path / "t.jsonl").read_text().splitlines()
    names = [s["name"] for line in lines for rs in json.loads(line)["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"]]
    assert sorted(names) == ["invoke_workflow turn", "message assistant", "message user"]


@pytest.mark.parametrize(
    ("variable", "value"),
    [("OTEL_TRACES_SAMPLER", "always_on"), ("OTEL_TRACES_SAMPLER", "traceidratio"), ("OTEL_SDK_DISABLED", "true")],
)
def test_a_sampler_or_a_disabled_sdk_from_the_environment_keeps_sdk_spans(
    variable: str, value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, value)
    lunary.configure(exporter="file", file_path=str(tmp_path / "t.jsonl"))
    try:
        assert not isinstance(_state.get().tracer, LightTracer)
    finally:
        lunary.shutdown(timeout=5)


def test_span_limits_from_the_environment_apply_to_light_spans(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT and OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT: the SDK's rules
    (oldest attribute evicted and counted, strings cut)."""
    monkeypatch.setenv("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "3")
    monkeypatch.setenv("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "4")
    provider = lunary.configure(exporter="file", file_path=str(tmp_path / "t.jsonl"))
    try:
        tracer = _state.get().tracer
        assert isinstance(tracer, LightTracer)
        sdk_tracer = provider.get_tracer("otel_lunary", lunary.__version__)  # type: ignore[attr-defined]
        spans = []
        for start in (tracer.start_span, sdk_tracer.start_span):
            span = start("limits", attributes={"a": "abcdefgh", "b": 1, "c": ["xyzxyz"], "d": True})
            span.set_attribute("e", "long value")
            spans.append(span)
        light, sdk = spans
        assert type(light) is LightSpan and dict(light.attributes) == dict(sdk.attributes) == {"c": ("xyzx",), "d": True, "e": "long"}  # type: ignore[attr-defined]
        assert light.dropped_attributes == sdk.dropped_attributes == 2  # type: ignore[attr-defined]
        for span in spans:
            span.end()
    finally:
        lunary.shutdown(timeout=5)


class _ReadsSpansAtStart(SimpleSpanProcessor):
    """An application's processor that is not the SDK's stock one (it overrides on_start, as
    OpenInference's and Langfuse's processors do): it may rely on the SDK's spans."""

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        span.set_attribute("app.seen_at_start", True)


def test_an_application_provider_with_stock_processors_records_light_spans(tmp_path: Path) -> None:
    """The application's own provider gets light spans while its processors are the SDK's
    stock Batch/SimpleSpanProcessor (they hand ended ReadableSpans to the exporter); its
    exporter sees what the SDK's spans give it. A processor of any other class switches the
    provider to the SDK's spans, which it then gets (it may rely on them)."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "the-app"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    lunary.configure(tracer_provider=provider)
    try:
        thread = lunary.open_thread(tags=["t"])
        thread.track_message({"role": "user", "content": "light?"})
        assert _state.get().tracer.lightweight  # type: ignore[attr-defined]
        (message,) = memory.get_finished_spans()
        assert type(message) is LightSpan and message.resource.attributes["service.name"] == "the-app"
        assert message.attributes["lunary.message.role"] == "user" and message.parent is not None
        provider.add_span_processor(_ReadsSpansAtStart(memory))
        thread.track_message({"role": "assistant", "content": "no: the SDK's"})
        assert not _state.get().tracer.lightweight  # type: ignore[attr-defined]
        after = memory.get_finished_spans()[1:]
        assert {span.name for span in after} == {"message assistant", "invoke_workflow turn"}
        assistant = next(span for span in after if span.name == "message assistant")
        assert type(assistant) is ReadableSpan and assistant.attributes["app.seen_at_start"] is True
    finally:
        lunary.shutdown(timeout=5)
        provider.shutdown()


def test_spans_handed_to_the_application_provider_are_sdk_readable_spans(tmp_path: Path) -> None:
    """Recorded before the application set its provider (light spans, held), then handed
    over: the application's processors get the SDK's ReadableSpans under its resource."""
    provider, holding = build_provisional_provider(ExportOptions(exporter="file", file_path=str(tmp_path / "t.jsonl")))
    runtime = _state.new_runtime(provider, resolve_settings(), owns_provider=True, holding=holding)
    try:
        assert isinstance(runtime.tracer, LightTracer)
        turn = runtime.tracer.start_span("invoke_workflow turn", _state.NEW_TRACE, attributes={"lunary.span.type": "turn"})
        message = runtime.tracer.start_span("message user", trace.set_span_in_context(turn), attributes={"lunary.message.role": "user"})
        message.end()
        memory = InMemorySpanExporter()
        app = TracerProvider(resource=Resource.create({"service.name": "the-app"}))
        app.add_span_processor(SimpleSpanProcessor(memory))
        assert holding.hand_over(app) == 1  # the ended one; the turn goes over when it ends
        turn.end()
        spans = memory.get_finished_spans()
        assert [span.name for span in spans] == ["message user", "invoke_workflow turn"]
        assert all(type(span) is ReadableSpan and span.resource.attributes["service.name"] == "the-app" for span in spans)
        assert spans[0].parent == turn.get_span_context() and dict(spans[0].attributes or {}) == {"lunary.message.role": "user"}
    finally:
        shutdown(provider, 5)


def test_under_an_unsampled_parent_nothing_is_recorded_as_with_the_sdk(tmp_path: Path) -> None:
    """ParentBased sampling: a parent that is not sampled gives a non-recording span,
    with the parent's trace and flags, and nothing reaches the file."""
    lunary.configure(exporter="file", file_path=str(tmp_path / "t.jsonl"))
    try:
        tracer = _state.get().tracer
        assert isinstance(tracer, LightTracer)
        parent = SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=TraceFlags(0))
        span = tracer.start_span("child", trace.set_span_in_context(NonRecordingSpan(parent)))
        assert not span.is_recording() and type(span) is NonRecordingSpan
        assert span.get_span_context().trace_id == 0xABC and not span.get_span_context().trace_flags.sampled
        span.end()
        sampled_parent = SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=TraceFlags(1))
        sampled = tracer.start_span("child", trace.set_span_in_context(NonRecordingSpan(sampled_parent)))
        assert type(sampled) is LightSpan and sampled.parent == sampled_parent  # type: ignore[attr-defined]
        sampled.end()
        assert lunary.flush(5)
    finally:
        lunary.shutdown(timeout=5)
    lines = (tmp_path / "t.jsonl").read_text().splitlines()
    spans = [s for line in lines for rs in json.loads(line)["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"]]
    assert len(spans) == 1 and spans[0]["parentSpanId"] == f"{0xDEF:016x}" and spans[0]["flags"] == 0x300


def test_an_ended_light_span_keeps_its_ids_not_its_span_context(tmp_path: Path) -> None:
    """Once ended (waiting in the batch queue), a light span holds its ids, not a
    SpanContext (one garbage-collected object fewer per queued span); its context reads
    back equal to the one it had, with the same flags and trace state, through every way
    a processor or exporter reads it."""
    import gc

    lunary.configure(exporter="file", file_path=str(tmp_path / "t.jsonl"))
    try:
        tracer = _state.get().tracer
        assert isinstance(tracer, LightTracer)
        parent = tracer.start_span("parent")
        with trace.use_span(parent):
            span = tracer.start_span("child")
        live = span.get_span_context()
        assert span.context is live and span.get_span_context() is live  # the same object while it records
        span.end()
        held = [o for o in gc.get_referents(span) if type(o) is SpanContext]
        assert len(held) == 1 and held[0] is parent.get_span_context()  # its parent's, not its own
        for read in (span.get_span_context(), span.context, span.readable().context):  # type: ignore[attr-defined]
            assert type(read) is SpanContext and read == live
            assert read.trace_flags is live.trace_flags and read.trace_state is live.trace_state
            assert read.is_valid and not read.is_remote
        assert span.parent == parent.get_span_context()
        parent.end()
    finally:
        lunary.shutdown(timeout=5)
